"""`wasm:<module id>` listeners: validated against the owner's module facts, run through wasmtime with their time
and memory limits, their failures naming the module and the cause (docs/wasm.md)."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import pytest

from bloxserver.engine import FlowContext, RunServices, WasmModuleFacts, run_flow, validate, wasm
from tests import wasm_modules as modules
from tests.unit.engine.engine_fakes import DictMemory

ECHO_ID = "11111111-1111-4111-8111-111111111111"
MODULES = {
    ECHO_ID: modules.ECHO,
    "fixed": modules.FIXED,
    "loop": modules.LOOP,
    "bomb": modules.MEMORY_BOMB,
    "logging": modules.LOGGING,
    "kv": modules.KV,
    "bad-output": modules.BAD_OUTPUT,
    "counter": modules.COUNTER,
    "big-memory": modules.BIG_MEMORY,
}


def facts(module_id: str, status: str = "ready") -> WasmModuleFacts:
    shape, _ = wasm.validate(MODULES[module_id])
    return WasmModuleFacts(module_id, status, f"sha-of-{module_id}", shape.interfaces, shape.host_imports)


CONTEXT = FlowContext(wasm_modules=tuple(facts(module_id) for module_id in MODULES))


class CompiledModules:
    """The run's module source, as the executor's would be: compiled modules by (id, sha256)."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, str]] = []

    def load(self, module_id: str, sha256: str) -> Any:
        self.loads.append((module_id, sha256))
        if sha256 != f"sha-of-{module_id}":
            raise LookupError("no such version")
        return wasm.compile_module(MODULES[module_id])


def flow(handler: str, config: str = "{}", timeout: str = "") -> str:
    return textwrap.dedent(f"""
        organism: {{name: wasm}}
        listeners:
          - name: tool
            description: an uploaded module
            handler: {handler}
            config: {config}
            {timeout}
            peers: [done]
          - name: done
            description: result
            handler: output
        """)


def run(yaml_text: str, payload: Any, context: FlowContext = CONTEXT, seconds: float = 10.0, memory: Any = None):
    return run_flow(
        yaml_text,
        json.dumps(payload),
        execution_id="exec-wasm",
        deadline=time.monotonic() + seconds,
        context=context,
        services=RunServices(wasm_modules=CompiledModules(), memory=memory),
    )


def errors(yaml_text: str, context: FlowContext = CONTEXT) -> list[tuple[str, str]]:
    return [(issue.code, issue.message) for issue in validate(yaml_text, context) if issue.severity == "error"]


def test_given_an_echo_module_when_a_message_runs_through_it_then_the_output_is_the_message():
    result = run(flow(f"wasm:{ECHO_ID}"), {"text": "héllo", "n": [1, 2.5, None]})

    assert (result.status, result.error) == ("success", None)
    assert json.loads(result.output) == {"text": "héllo", "n": [1, 2.5, None]}


def test_given_a_module_with_a_fixed_answer_when_its_interface_is_chosen_then_the_answer_is_the_output():
    result = run(flow("wasm:fixed", "{interface: answer}"), {"ignored": True})

    assert json.loads(result.output) == modules.FIXED_ANSWER


def test_given_the_same_module_twice_then_each_call_gets_a_fresh_instance():
    first, second = run(flow("wasm:counter"), {}), run(flow("wasm:counter"), {})

    assert (first.output, second.output) == ("1", "1")


def test_given_an_infinite_loop_when_run_then_it_times_out_at_its_limit_and_names_the_module():
    started = time.monotonic()
    result = run(flow("wasm:loop", "{timeout_seconds: 0.3}"), {})

    assert result.status == "timeout"
    assert "loop" in result.error and "0.3 s time limit" in result.error
    assert time.monotonic() - started < 3  # the loop did not hold the run past its limit


def test_given_an_infinite_loop_under_the_listeners_own_timeout_then_the_listener_times_out():
    result = run(flow("wasm:loop", "{timeout_seconds: 0.2}", "timeout_seconds: 0.2"), {})

    assert result.status == "timeout" and "tool" in result.error


def test_given_a_memory_bomb_when_run_then_it_fails_at_its_memory_limit_saying_so():
    result = run(flow("wasm:bomb", "{memory_limit_mb: 8}"), {})

    assert result.status == "error"
    assert "bomb" in result.error and "8 MiB limit" in result.error and "unreachable" in result.error


def test_given_a_module_needing_more_memory_than_its_cap_when_run_then_it_fails_saying_so():
    result = run(flow("wasm:big-memory", "{memory_limit_mb: 16}"), {})

    assert result.status == "error" and "big-memory" in result.error and "16 MiB" in result.error


@pytest.mark.parametrize(
    ("interface", "cause"),
    [("text", "not UTF-8 JSON"), ("outside", "outside the module's memory")],
)
def test_given_bad_output_when_run_then_the_listener_fails_naming_the_cause(interface, cause):
    result = run(flow("wasm:bad-output", f"{{interface: {interface}}}"), {})

    assert result.status == "error" and "bad-output" in result.error and cause in result.error


def test_given_the_log_capability_when_the_module_logs_then_the_record_joins_the_executions_logs():
    result = run(flow("wasm:logging", "{capabilities: [log]}"), {"note": "hi"})

    assert result.status == "success"
    logged = [log for log in result.logs if log.metadata.get("wasmModule") == "logging"]
    assert [(log.level, log.message, log.metadata["listener"]) for log in logged] == [("info", '{"note":"hi"}', "tool")]


def test_given_a_version_the_source_cannot_load_then_the_listener_fails_naming_the_module():
    context = FlowContext(wasm_modules=(WasmModuleFacts(ECHO_ID, "ready", "sha-gone", ("echo",)),))

    result = run(flow(f"wasm:{ECHO_ID}"), {}, context)

    assert result.status == "error" and ECHO_ID in result.error and "no such version" in result.error


def test_given_no_module_source_then_the_listener_fails_saying_so():
    result = run_flow(
        flow(f"wasm:{ECHO_ID}"), "{}", execution_id="x", deadline=time.monotonic() + 5, context=CONTEXT
    )

    assert result.status == "error" and "no module store" in result.error


@pytest.mark.parametrize(
    ("handler", "config", "code", "says"),
    [
        ("wasm:not-mine", "{}", "unknown_handler", "not one of the flow owner's modules"),
        ("wasm:fixed", "{}", "invalid_config", "exports several interfaces (answer, echo)"),
        ("wasm:fixed", "{interface: nope}", "invalid_config", "exports no handle_nope"),
        ("wasm:logging", "{}", "invalid_config", "imports host.log, which needs the 'log' capability"),
        ("wasm:kv", "{interface: get, capabilities: [log]}", "invalid_config", "host.kv_delete, which needs the 'kv' capability"),
        (f"wasm:{ECHO_ID}", "{capabilities: [fetch]}", "invalid_config", "unknown capability 'fetch'"),
        (f"wasm:{ECHO_ID}", "{capabilities: log}", "invalid_config", "config.capabilities must be a list"),
        (f"wasm:{ECHO_ID}", "{timeout_seconds: 31}", "invalid_config", "at most the listener's timeout_seconds (30)"),
        (f"wasm:{ECHO_ID}", "{timeout_seconds: 0}", "invalid_config", "config.timeout_seconds"),
        (f"wasm:{ECHO_ID}", "{memory_limit_mb: 257}", "invalid_config", "from 1 to 256"),
        (f"wasm:{ECHO_ID}", "{memory: 1}", "invalid_config", "unknown config key(s)"),
    ],
)
def test_a_wasm_listener_is_refused_naming_it_when(handler, config, code, says):
    found = errors(flow(handler, config))

    assert any(found_code == code and says in message and "'tool'" in message for found_code, message in found), found


@pytest.mark.parametrize("status", ["pending", "invalid"])
def test_a_module_that_is_not_ready_is_refused(status):
    context = FlowContext(wasm_modules=(facts(ECHO_ID, status),))

    assert errors(flow(f"wasm:{ECHO_ID}"), context) == [
        ("invalid_config", f"listener 'tool': WASM module {ECHO_ID} is {status}, not ready: upload a valid module first")
    ]


def test_a_valid_wasm_listener_validates_and_its_defaults_apply():
    assert errors(flow(f"wasm:{ECHO_ID}", "{capabilities: []}")) == []
    assert errors(flow("wasm:logging", "{capabilities: [log], timeout_seconds: 2, memory_limit_mb: 256}")) == []


def kv_flow(interface: str) -> str:
    return flow("wasm:kv", f"{{interface: {interface}, capabilities: [kv]}}")


def test_given_the_kv_capability_when_a_counter_module_runs_three_times_then_it_counts_in_the_flows_memory():
    memory = DictMemory()

    outputs = [run(kv_flow("count"), {}, memory=memory).output for _ in range(3)]

    assert outputs == ["1", "2", "3"] and memory.values == {"count": 3}


def test_given_kv_set_then_kv_get_answers_the_value_as_compact_json_and_kv_delete_removes_it():
    memory = DictMemory()
    value = {"b": [True, None, 2.5], "a": "héllo"}

    stored = run(kv_flow("set"), value, memory=memory)
    assert json.loads(stored.output) == {"code": 0} and memory.values == {"note": value}

    read = run(kv_flow("get"), {}, memory=memory)
    assert read.output == json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    forgotten = run(kv_flow("forget"), {}, memory=memory)
    assert json.loads(forgotten.output) == {"code": 0} and memory.values == {}
    assert json.loads(run(kv_flow("get"), {}, memory=memory).output) == "absent"


@pytest.mark.parametrize(
    ("memory", "interface", "code", "logged"),
    [
        (DictMemory(max_bytes=10), "set", -1, "host.kv_set returned -1: Project memory is full: key 'note'"),
        (DictMemory(), "count", -4, "host.kv_increment returned -4: key 'count' holds a string, not a number"),
    ],
)
def test_given_a_refused_kv_call_then_the_module_gets_the_code_and_the_logs_say_why(memory, interface, code, logged):
    memory.values.update({"count": "many"} if interface == "count" else {})

    result = run(kv_flow(interface), {"long": "x" * 20}, memory=memory)

    assert (result.status, json.loads(result.output)) == ("success", {"code": code})
    warnings = [log.message for log in result.logs if log.level == "warning" and log.metadata.get("wasmModule") == "kv"]
    assert len(warnings) == 1 and warnings[0].startswith(logged), warnings
    assert "xxxx" not in warnings[0]  # the value is never quoted


@pytest.mark.parametrize(("memory", "says"), [(DictMemory(enabled=False), "disabled"), (None, "not available to this run")])
def test_given_no_usable_memory_when_the_module_calls_kv_then_the_listener_fails_naming_the_module_and_key(memory, says):
    result = run(kv_flow("count"), {}, memory=memory)

    assert result.status == "error"
    assert "WASM module kv (handle_count)" in result.error and says in result.error and "'count'" in result.error


def test_given_a_tier_without_memory_then_a_kv_listener_validates_with_a_warning():
    context = FlowContext(owner_tier="free", wasm_modules=CONTEXT.wasm_modules)

    issues = [(issue.code, issue.severity) for issue in validate(kv_flow("count"), context)]

    assert issues == [("memory_unavailable", "warning")]
    assert errors(kv_flow("count"), FlowContext(owner_tier="pro", wasm_modules=CONTEXT.wasm_modules)) == []
