"""WASM tools and project memory (docs/wasm.md, docs/memory.md): a module granted `kv` reads and writes its flow's
memory through the executor's real memory port on embedded DynamoDB, with the API's size accounting and quota."""

from __future__ import annotations

import dataclasses
import json

from bloxserver import limits
from bloxserver.contract import Tier
from tests import wasm_modules as wasm
from tests.integration.test_memory_runs import enable, run_manually
from tests.integration.test_modules_api import uploaded
from tests.support import call, claims_for

PRO = claims_for("user_alice", tier="pro")


def kv_flow(module_id: str, interface: str) -> str:
    return f"""
organism: {{name: kv-{interface}}}
listeners:
  - name: tool
    description: the module, with the flow's memory
    handler: wasm:{module_id}
    config: {{interface: {interface}, capabilities: [kv]}}
    peers: [done]
  - name: done
    description: result
    handler: output
"""


def flows_of(system, modules, *interfaces: str) -> list[str]:
    """Running flows of one uploaded kv module, one per interface."""
    module_id = uploaded(modules, wasm.KV, PRO)["id"]
    return [system.running_flow(claims=PRO, organism_yaml=kv_flow(module_id, name), name=name) for name in interfaces]


def memory_of(flow_id: str) -> dict:
    import memory_handler

    reply = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory", claims=PRO)
    assert reply.status == 200, reply.body
    return reply.json


def test_given_a_counter_module_with_kv_when_it_runs_three_times_then_it_counts_across_runs(system, modules):
    import memory_handler

    (flow_id,) = flows_of(system, modules, "count")
    enable(memory_handler.handler, flow_id)

    outputs = [run_manually(system, flow_id, {})["outputPayload"] for _ in range(3)]

    assert outputs == ["1", "2", "3"]
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory/entries/count", claims=PRO).json
    assert (entry["value"], memory_of(flow_id)["usedBytes"]) == ("3", len("count") + len("3"))


def test_given_a_module_writing_a_value_then_the_api_reads_it_and_used_bytes_is_exact(system, modules):
    import memory_handler

    set_flow, get_flow = flows_of(system, modules, "set", "get")
    enable(memory_handler.handler, set_flow)
    value = {"city": "Zürich", "tags": ["a", "b"], "score": 9.5, "seen": None}

    written = run_manually(system, set_flow, value)

    assert (written["status"], json.loads(written["outputPayload"])) == ("success", {"code": 0})
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{set_flow}/memory/entries/note", claims=PRO).json
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert entry["value"] == compact and entry["sizeBytes"] == len("note") + len(compact.encode())
    assert memory_of(set_flow)["usedBytes"] == entry["sizeBytes"]
    # Another flow of the same owner (and module) never sees it.
    enable(memory_handler.handler, get_flow)
    assert json.loads(run_manually(system, get_flow, {})["outputPayload"]) == "absent"


def test_given_a_write_past_the_quota_then_the_module_gets_memory_full_and_nothing_is_written(system, modules, monkeypatch):
    import memory_handler

    small = dataclasses.replace(limits.TIER_LIMITS[Tier.PRO], project_memory_bytes=40)
    monkeypatch.setitem(limits.TIER_LIMITS, Tier.PRO, small)
    (flow_id,) = flows_of(system, modules, "set")
    enable(memory_handler.handler, flow_id)
    fits = run_manually(system, flow_id, {"n": 1})  # 4 + 7 bytes

    refused = run_manually(system, flow_id, {"text": "x" * 40})

    assert json.loads(fits["outputPayload"]) == {"code": 0}
    assert (refused["status"], json.loads(refused["outputPayload"])) == ("success", {"code": -1})
    query = {"execution_id": refused["id"], "level": "warning"}
    logs = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=PRO, query=query).json
    warnings = [log["message"] for log in logs]
    assert any(message.startswith("host.kv_set returned -1: Project memory is full: key 'note'") for message in warnings)
    entry = call(memory_handler.handler, "GET", f"/api/v1/flows/{flow_id}/memory/entries/note", claims=PRO).json
    assert entry["value"] == '{"n":1}' and memory_of(flow_id)["usedBytes"] == len("note") + len('{"n":1}')


def test_given_disabled_memory_when_the_module_calls_kv_then_the_run_ends_as_an_error_naming_module_and_key(
    system, modules
):
    import memory_handler

    (flow_id,) = flows_of(system, modules, "count")
    enable(memory_handler.handler, flow_id)
    assert run_manually(system, flow_id, {})["outputPayload"] == "1"
    disabled = call(memory_handler.handler, "PATCH", f"/api/v1/flows/{flow_id}/memory", body={"enabled": False}, claims=PRO)
    assert disabled.status == 200

    execution = run_manually(system, flow_id, {})

    assert execution["status"] == "error"
    assert "(handle_count)" in execution["errorMessage"] and "disabled" in execution["errorMessage"]
    assert "'count'" in execution["errorMessage"]
    assert memory_of(flow_id)["usedBytes"] == len("count") + 1  # kept while disabled


def test_given_30_concurrent_runs_of_the_counter_module_then_the_count_ends_at_exactly_30(flows, aws):
    import time
    from concurrent.futures import ThreadPoolExecutor
    from uuid import UUID

    import memory_handler
    from bloxserver.auth import user_id_for
    from bloxserver.engine import FlowContext, RunServices, WasmModuleFacts, run_flow
    from bloxserver.engine import wasm as runtime
    from bloxserver.project_memory import EngineMemory

    shape, artifact = runtime.validate(wasm.KV)
    compiled = runtime.deserialize(artifact)
    context = FlowContext(wasm_modules=(WasmModuleFacts("kv", "ready", "sha", shape.interfaces, shape.host_imports),))
    # The runs contend for one key on a shared machine: a generous time limit keeps the test about counting.
    organism = kv_flow("kv", "count").replace("capabilities: [kv]", "capabilities: [kv], timeout_seconds: 30")
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "Counter", "organismYaml": organism}, claims=PRO).json["id"]
    enable(memory_handler.handler, flow_id)

    class CompiledModule:
        def load(self, module_id: str, sha256: str):
            return compiled

    def one_run(index: int) -> str:
        # Each run with its own port, as each executor container builds one for its run.
        services = RunServices(wasm_modules=CompiledModule(), memory=EngineMemory(user_id_for("user_alice"), UUID(flow_id)))
        result = run_flow(
            organism, "{}", execution_id=f"exec-{index}", deadline=time.monotonic() + 60, context=context, services=services
        )
        assert result.status == "success", result.error
        return result.output

    with ThreadPoolExecutor(max_workers=30) as pool:
        outputs = list(pool.map(one_run, range(30)))

    assert sorted(json.loads(output) for output in outputs) == list(range(1, 31))
    assert memory_of(flow_id)["usedBytes"] == len("count") + len("30")
