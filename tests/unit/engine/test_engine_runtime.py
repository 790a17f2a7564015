"""Running organisms: delivery, branching, fan-out, cycles, limits, timeouts, inputs, outputs and logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import timezone

import pytest
from engine_fakes import LocalServer, Reply

from bloxserver.engine import (
    DEFAULT_ORGANISM_YAML,
    REFERENCE_FLOW_INPUT,
    REFERENCE_FLOW_YAML,
    EngineSettings,
    run_flow,
    runtime,
)

LOCAL_ONLY = EngineSettings(allowed_private_cidrs=("127.0.0.1/32",))


def organism(listeners: str, header: str = "organism: {name: test}") -> str:
    return header + "\nlisteners:\n" + textwrap.indent(textwrap.dedent(listeners), "  ")


def run(yaml_text: str, payload: str | None, seconds: float = 10.0, settings: EngineSettings = LOCAL_ONLY):
    return run_flow(yaml_text, payload, execution_id="exec-1", deadline=time.monotonic() + seconds, settings=settings)


def test_the_default_template_greets_the_named_payload():
    result = run(DEFAULT_ORGANISM_YAML, '{"name": "Ada"}')
    assert (result.status, result.error) == ("success", None)
    assert json.loads(result.output) == {"name": "Ada", "greeting": "Hello, Ada!"}


@pytest.mark.parametrize(("payload", "output"), [(None, {}), ("{}", {})], ids=["no input", "no name"])
def test_the_default_template_greets_the_world_without_a_name(payload, output):
    result = run(DEFAULT_ORGANISM_YAML, payload)
    assert (result.status, json.loads(result.output)) == ("success", {**output, "greeting": "Hello, world!"})


@pytest.mark.parametrize(
    ("order", "tier", "total"),
    [(REFERENCE_FLOW_INPUT, "premium", 150), ('{"name":"bolt","qty":2,"price":10}', "standard", 20)],
)
def test_the_reference_flow_prices_labels_and_tiers_an_order(order, tier, total):
    result = run(REFERENCE_FLOW_YAML, order)
    assert result.status == "success"
    output = json.loads(result.output)
    assert (output["total"], output["tier"], output["label"]) == (total, tier, json.loads(order)["name"].upper())


def test_custom_functions_do_arithmetic_and_text():
    yaml_text = organism("""
        - name: calc
          description: x
          handler: output
          config:
            expression: >-
              {sum: add(a, b), diff: subtract(a, b), product: multiply(a, b), ratio: divide(a, b),
               rounded: round(divide(a, `3`), `2`), up: upper(s), low: lower(s), trimmed: trim(pad),
               joined: concat(s, '-', a, '-', flag, missing)}
    """)
    result = run(yaml_text, '{"a": 7, "b": 2, "s": "MiXed", "pad": "  x  ", "flag": true}')
    assert json.loads(result.output) == {
        "sum": 9,
        "diff": 5,
        "product": 14,
        "ratio": 3.5,
        "rounded": 2.33,
        "up": "MIXED",
        "low": "mixed",
        "trimmed": "x",
        "joined": "MiXed-7-true",
    }


def test_a_failing_expression_ends_the_run_as_an_error_naming_the_listener():
    yaml_text = organism("- {name: divider, description: x, handler: output, config: {expression: 'divide(a, `0`)'}}")
    result = run(yaml_text, '{"a": 1}')
    assert result.status == "error"
    assert result.error == "listener 'divider' failed: divide() by zero"
    assert result.output is None


def test_set_on_a_non_object_message_is_an_error():
    yaml_text = organism("- {name: setter, description: x, handler: transform, config: {set: {x: '`1`'}}}")
    result = run(yaml_text, "[1, 2]")
    assert result.status == "error"
    assert "listener 'setter' failed" in result.error


CONDITIONAL = organism("""
    - name: route
      description: x
      handler: conditional
      config:
        when:
          - {if: "kind == 'refund'", to: refunds}
          - {if: "amount > `1000`", to: review}
        default: ledger
      peers: [refunds, review, ledger]
    - {name: refunds, description: x, handler: output, config: {expression: "'refunds'"}}
    - {name: review, description: x, handler: output, config: {expression: "'review'"}}
    - {name: ledger, description: x, handler: output, config: {expression: "'ledger'"}}
""")


@pytest.mark.parametrize(
    ("payload", "destination"),
    [
        ('{"kind": "refund", "amount": 5000}', "refunds"),  # the first true condition wins
        ('{"kind": "sale", "amount": 5000}', "review"),
        ('{"kind": "sale", "amount": 10}', "ledger"),
    ],
)
def test_a_conditional_sends_to_the_first_matching_branch_else_the_default(payload, destination):
    assert json.loads(run(CONDITIONAL, payload).output) == destination


def test_a_conditional_without_default_stops_an_unmatched_message():
    yaml_text = organism("""
        - {name: gate, description: x, handler: conditional, config: {when: [{if: ok, to: done}]}, peers: [done]}
        - {name: done, description: x, handler: output}
    """)
    result = run(yaml_text, '{"ok": false}')
    assert (result.status, result.output) == ("success", None)
    assert any("routed its message nowhere" in log.message for log in result.logs)


def test_zero_is_true_in_conditions_as_in_jmespath():
    yaml_text = organism("""
        - {name: gate, description: x, handler: conditional, config: {when: [{if: n, to: done}]}, peers: [done]}
        - {name: done, description: x, handler: output}
    """)
    assert json.loads(run(yaml_text, '{"n": 0}').output) == {"n": 0}


def test_fan_out_to_several_terminals_outputs_a_map_by_listener_name():
    yaml_text = organism("""
        - {name: start, description: x, handler: transform, config: {expression: '@'}, peers: [double, negate]}
        - {name: double, description: x, handler: output, config: {expression: 'multiply(@, `2`)'}}
        - {name: negate, description: x, handler: transform, config: {expression: 'subtract(`0`, @)'}}
    """)
    assert json.loads(run(yaml_text, "21").output) == {"double": 42, "negate": -21}


def test_a_terminal_reached_several_times_contributes_its_results_in_order():
    yaml_text = organism("""
        - {name: start, description: x, handler: transform, config: {expression: '@'}, peers: [a, b]}
        - {name: a, description: x, handler: transform, config: {expression: "'from a'"}, peers: [sink]}
        - {name: b, description: x, handler: transform, config: {expression: "'from b'"}, peers: [sink]}
        - {name: sink, description: x, handler: output}
    """)
    assert json.loads(run(yaml_text, "null").output) == ["from a", "from b"]


def test_an_explicit_entry_receives_the_payload():
    yaml_text = organism(
        """
        - {name: first, description: x, handler: output, config: {expression: "'first'"}}
        - {name: second, description: x, handler: output, config: {expression: "'second'"}}
        """,
        "organism: {name: t, entry: second}",
    )
    assert json.loads(run(yaml_text, "{}").output) == "second"


@pytest.mark.parametrize(
    ("payload", "received"),
    [
        ("not json", "not json"),
        (None, None),
        ("", ""),
        ('{"a": NaN}', '{"a": NaN}'),
        ("[1e999]", "[1e999]"),
        ("[" * 100_000 + "]" * 100_000, "[" * 100_000 + "]" * 100_000),
    ],
    ids=["text", "none", "empty", "NaN", "overflowing number", "nested past the parser"],
)
def test_a_payload_that_is_not_json_enters_as_a_string(payload, received):
    yaml_text = organism("- {name: echo, description: x, handler: output}")
    assert json.loads(run(yaml_text, payload).output) == received


def test_a_cycle_without_exit_stops_at_max_iterations_naming_the_listener():
    yaml_text = organism(
        """
        - {name: ping, description: x, handler: transform, config: {set: {n: 'add(n, `1`)'}}, peers: [pong]}
        - {name: pong, description: x, handler: transform, config: {expression: '@'}, peers: [ping]}
        """,
        "organism: {name: t}\nmax_iterations: 7",
    )
    result = run(yaml_text, '{"n": 0}')
    assert result.status == "error"
    assert result.error == "max_iterations (7) exceeded at listener 'pong'"
    assert [log.metadata["listener"] for log in result.logs if log.level == "error"] == ["pong"]
    assert result.logs[-1].metadata["iterations"] == 7


def test_a_message_growing_every_round_stops_the_run_at_the_message_cap_within_the_timeout():
    # given a cycle that doubles its message each round (shared parts: cheap in memory, exponential as JSON), with a
    # timeout long enough that only the message cap can end it on a loaded machine
    yaml_text = organism(
        """
        - {name: grow, description: x, handler: transform, config: {set: {d: '[d, d]', n: 'add(n, `1`)'}}, peers: [check]}
        - name: check
          description: x
          handler: conditional
          config: {when: [{if: 'n < `40`', to: grow}], default: done}
          peers: [grow, done]
        - {name: done, description: x, handler: output}
        """,
        "organism: {name: t}\ntimeout_seconds: 60",
    )
    # when it runs
    result = run(yaml_text, '{"d": 1, "n": 0}')
    # then it ends as an error at the listener that crossed the cap, not as a timeout
    assert result.status == "error"
    assert result.error == "listener 'grow' produced a message with more than 1048576 bytes"


def test_an_input_with_an_unpaired_surrogate_ends_the_run_as_an_error_naming_it():
    yaml_text = organism("- {name: echo, description: x, handler: output}")
    result = run(yaml_text, '{"name": "\\ud800"}')
    assert (result.status, result.error) == (
        "error", "the input has text that is not valid Unicode (an unpaired surrogate such as \\ud800)"
    )


def test_a_listener_producing_an_unpaired_surrogate_ends_the_run_as_an_error():
    yaml_text = organism("- {name: odd, description: x, handler: output, config: {expression: '`\"\\udc00\"`'}}")
    result = run(yaml_text, "{}")
    assert result.status == "error" and result.error.startswith("listener 'odd' produced a message with text that")


def test_an_input_nesting_deeper_than_messages_may_ends_the_run_as_an_error():
    yaml_text = organism("- {name: echo, description: x, handler: output}")
    result = run(yaml_text, "[" * 300 + "]" * 300)
    assert (result.status, result.error) == ("error", "the input has nesting deeper than 256 levels")


def test_a_message_nesting_deeper_every_round_stops_the_run_at_the_nesting_cap():
    yaml_text = organism(
        "- {name: wrap, description: x, handler: transform, config: {expression: '{d: @}'}, peers: [wrap]}",
        "organism: {name: t}\nmax_iterations: 1000",
    )
    result = run(yaml_text, "1")
    assert (result.status, result.error) == ("error", "listener 'wrap' produced a message with nesting deeper than 256 levels")


def test_a_run_whose_messages_add_up_past_the_run_budget_ends_as_an_error(monkeypatch):
    # given a cycle passing on a 100 KB message every round, and a budget of five such messages
    monkeypatch.setattr(runtime, "MAX_RUN_MESSAGE_BYTES", 500_000)
    yaml_text = organism(
        "- {name: relay, description: x, handler: transform, config: {expression: '@'}, peers: [relay]}",
        "organism: {name: t}\nmax_iterations: 50",
    )
    result = run(yaml_text, json.dumps("x" * 100_000))
    assert (result.status, result.error) == (
        "error", "the execution's messages exceed 500000 bytes in all, at listener 'relay'"
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("`1e999`", "a number JSON cannot carry (infinity or NaN)"),
        ("[`-1e999`]", "a number JSON cannot carry (infinity or NaN)"),
    ],
)
def test_a_listener_producing_a_number_json_cannot_carry_ends_the_run_as_an_error(expression, problem):
    yaml_text = organism(f"- {{name: calc, description: x, handler: output, config: {{expression: '{expression}'}}}}")
    result = run(yaml_text, "{}")
    assert (result.status, result.error, result.output) == ("error", f"listener 'calc' produced a message with {problem}", None)


def test_invalid_yaml_is_an_error_result_not_an_exception():
    result = run("listeners: [", "{}")
    assert result.status == "error"
    assert result.error.startswith("invalid organism: invalid YAML")
    assert result.logs[0].metadata["issues"][0]["code"] == "yaml_syntax"


def slow_flow(listener_timeout: float, url: str) -> str:
    return organism(f"""
        - name: slow-call
          description: x
          handler: http
          timeout_seconds: {listener_timeout}
          config: {{url: "{url}", timeout_seconds: 10}}
          peers: [done]
        - {{name: done, description: x, handler: output}}
    """)


def test_a_listener_exceeding_its_timeout_ends_the_run_as_timeout():
    with LocalServer(lambda request: Reply(body="late", delay_seconds=3)) as server:
        result = run(slow_flow(0.2, server.url), "{}")
    assert result.status == "timeout"
    assert result.error == "listener 'slow-call' timed out after 0.2 s"


def test_the_executors_deadline_ends_the_run_as_timeout_naming_the_listener():
    with LocalServer(lambda request: Reply(body="late", delay_seconds=3)) as server:
        result = run(slow_flow(30, server.url), "{}", seconds=0.2)
    assert result.status == "timeout"
    assert result.error == "execution timed out while listener 'slow-call' was running"


def test_the_flows_own_timeout_applies_when_it_is_sooner_than_the_executors():
    with LocalServer(lambda request: Reply(body="late", delay_seconds=3)) as server:
        yaml_text = slow_flow(30, server.url).replace("organism: {name: test}", "organism: {name: test}\ntimeout_seconds: 0.2")
        result = run(yaml_text, "{}", seconds=60)
    assert result.status == "timeout"
    assert "slow-call" in result.error


def test_an_expired_deadline_stops_before_the_first_listener():
    result = run(DEFAULT_ORGANISM_YAML, "{}", seconds=-1)
    assert result.status == "timeout"
    assert result.error == "execution timed out while listener 'greeter' was running"


def test_logs_record_start_each_invocation_and_end_with_execution_and_listener():
    result = run(REFERENCE_FLOW_YAML, REFERENCE_FLOW_INPUT)
    assert [log.message for log in result.logs] == [
        "execution started: flow 'order-tiering', entry 'price'",
        "listener 'price' invoked",
        "listener 'route' invoked",
        "listener 'premium' invoked",
        "listener 'result' invoked",
        "execution finished: success",
    ]
    for log in result.logs:
        assert log.level == "info"
        assert log.timestamp.tzinfo == timezone.utc
        assert log.metadata["executionId"] == "exec-1"
        assert "listener" in log.metadata
        assert "payload" not in log.metadata and "result" not in log.metadata
    assert result.logs[-1].metadata["iterations"] == 4


def test_payloads_are_logged_only_when_the_flow_asks():
    yaml_text = "log_payloads: true\n" + REFERENCE_FLOW_YAML
    result = run(yaml_text, REFERENCE_FLOW_INPUT)
    invoked = next(log for log in result.logs if log.message == "listener 'price' invoked")
    assert invoked.metadata["payload"] == json.loads(REFERENCE_FLOW_INPUT)
    results = [log for log in result.logs if log.level == "debug" and log.metadata["listener"] == "price"]
    assert results[0].metadata["result"]["total"] == 150


def test_importing_the_engine_and_running_a_flow_loads_neither_httpx_nor_boto3():
    script = (
        "import sys, time\n"
        "from bloxserver.engine import run_flow, REFERENCE_FLOW_YAML, REFERENCE_FLOW_INPUT\n"
        "deadline = time.monotonic() + 5\n"
        "result = run_flow(REFERENCE_FLOW_YAML, REFERENCE_FLOW_INPUT, execution_id='x', deadline=deadline)\n"
        "assert result.status == 'success', result\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'httpcore', 'boto3', 'botocore'}))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=environment
    )
    assert completed.stdout.strip() == "[]"
