"""Project memory in flows (docs/memory.md): the executor gives each run its flow's memory, the `memory` handler
reads and writes it through the real store, concurrent runs increment exactly, and refusals fail the run."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from bloxserver.auth import user_id_for
from tests.support import call, claims_for

PRO = claims_for("user_alice", tier="pro")
FREE = claims_for("user_frank", tier="free")

COUNTER_YAML = """
organism: {name: counter}
listeners:
  - name: count
    description: Counts this run
    handler: memory
    config: {op: increment, key: runs}
    peers: [done]
  - name: done
    description: The count
    handler: output
"""

REMEMBER_YAML = """
organism: {name: remember, entry: recall}
listeners:
  - name: recall
    description: The last note this user sent (null the first time)
    handler: memory
    config: {op: get, key: "last:{{ user }}"}
    peers: [done]
  - name: done
    description: What was remembered
    handler: output
"""

# Remembers the note for one hour, then reads it back through REMEMBER_YAML's listeners.
KEEP_YAML = REMEMBER_YAML.replace("entry: recall", "entry: keep") + """
  - name: keep
    description: Remembers the note for one hour, passes the message on
    handler: memory
    config: {op: set, key: "last:{{ user }}", value: "note", ttl_seconds: 3600}
    peers: [recall]
"""


def enable(memory, flow_id: str, claims=PRO) -> None:
    reply = call(memory, "PATCH", f"/api/v1/flows/{flow_id}/memory", body={"enabled": True}, claims=claims)
    assert reply.status == 200, reply.body


def run_manually(system, flow_id: str, payload, claims=PRO) -> dict:
    started = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=payload, claims=claims)
    assert started.status == 201, started.body
    system.drain()
    return system.execution(flow_id, started.json["id"], claims=claims)


def test_given_enabled_memory_then_runs_through_the_executor_share_the_flows_memory(system, aws):
    import memory_handler

    flow_id = system.running_flow(claims=PRO, organism_yaml=COUNTER_YAML, name="Counter")
    enable(memory_handler.handler, flow_id)
    outputs = [run_manually(system, flow_id, {})["outputPayload"] for _ in range(3)]
    assert outputs == ["1", "2", "3"]
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory/entries/runs", claims=PRO)
    assert entry.json["value"] == "3"


def test_given_disabled_memory_then_the_run_ends_as_an_error_naming_the_key(system, aws):
    flow_id = system.running_flow(claims=PRO, organism_yaml=COUNTER_YAML, name="Counter")
    execution = run_manually(system, flow_id, {})
    assert execution["status"] == "error"
    assert "disabled" in execution["errorMessage"] and "'runs'" in execution["errorMessage"]


def test_given_the_free_tier_then_validation_warns_and_runs_fail(system, aws):
    flow = call(system.flows, "POST", "/api/v1/flows", body={"name": "Free", "organismYaml": COUNTER_YAML}, claims=FREE)
    flow_id = flow.json["id"]
    issues = call(system.flows, "POST", f"/api/v1/flows/{flow_id}/validate", claims=FREE).json
    assert [(issue["code"], issue["severity"]) for issue in issues] == [("memory_unavailable", "warning")]
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=FREE).status == 200
    execution = run_manually(system, flow_id, {}, claims=FREE)
    assert execution["status"] == "error" and "'runs'" in execution["errorMessage"]


def test_given_50_concurrent_increment_runs_then_the_counter_ends_at_exactly_plus_50(flows, aws):
    import memory_handler
    from bloxserver.engine import RunServices, run_flow
    from bloxserver.project_memory import EngineMemory

    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "Counter", "organismYaml": COUNTER_YAML}, claims=PRO)
    flow_id = flow_id.json["id"]
    enable(memory_handler.handler, flow_id)

    def one_run(index: int) -> str:
        # Each run with its own port, as each executor container builds one for its run.
        memory = EngineMemory(user_id_for("user_alice"), UUID(flow_id))
        result = run_flow(
            COUNTER_YAML,
            "{}",
            execution_id=f"exec-{index}",
            deadline=time.monotonic() + 60,
            services=RunServices(memory=memory),
        )
        assert result.status == "success", result.error
        return result.output

    with ThreadPoolExecutor(max_workers=50) as pool:
        outputs = list(pool.map(one_run, range(50)))
    assert sorted(json.loads(output) for output in outputs) == list(range(1, 51))
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory/entries/runs", claims=PRO).json
    state = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory", claims=PRO).json
    assert entry["value"] == "50" and state["usedBytes"] == entry["sizeBytes"] == len("runs") + 2


def test_given_a_flow_then_its_runs_never_see_another_flows_memory(system, aws):
    import memory_handler

    first = system.running_flow(claims=PRO, organism_yaml=COUNTER_YAML, name="First")
    second = system.running_flow(claims=PRO, organism_yaml=COUNTER_YAML, name="Second")
    enable(memory_handler.handler, first)
    enable(memory_handler.handler, second)
    assert run_manually(system, first, {})["outputPayload"] == "1"
    assert run_manually(system, first, {})["outputPayload"] == "2"
    assert run_manually(system, second, {})["outputPayload"] == "1"


def test_given_set_then_get_in_one_run_then_the_value_is_read_back_and_absent_keys_are_null(system, aws):
    import memory_handler

    keeper = system.running_flow(claims=PRO, organism_yaml=KEEP_YAML, name="Keep")
    enable(memory_handler.handler, keeper)
    assert run_manually(system, keeper, {"user": "ada", "note": {"likes": "tea"}})["outputPayload"] == '{"likes":"tea"}'
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{keeper}/memory/entries/last%3Aada", claims=PRO).json
    assert entry["value"] == '{"likes":"tea"}' and entry["expiresAt"] is not None
    reader = system.running_flow(claims=PRO, organism_yaml=REMEMBER_YAML, name="Remember")
    enable(memory_handler.handler, reader)
    assert run_manually(system, reader, {"user": "ada"})["outputPayload"] == "null"
