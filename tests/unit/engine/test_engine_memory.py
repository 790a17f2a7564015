"""The `memory` handler (docs/memory.md): its operations against the run's memory port, its config, its errors
(naming the key, never the value) and its validation warning on a tier without memory."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import pytest

from bloxserver.engine import FlowContext, RunServices, run_flow, validate
from tests.unit.engine.engine_fakes import DictMemory


def organism(listeners: str) -> str:
    return "organism: {name: remembers}\nlisteners:\n" + textwrap.indent(textwrap.dedent(listeners), "  ")


def run(yaml_text: str, payload: Any, memory: Any = None):
    return run_flow(
        yaml_text,
        json.dumps(payload),
        execution_id="exec-1",
        deadline=time.monotonic() + 10,
        services=RunServices(memory=memory),
    )


COUNTER = organism(
    """
    - name: count
      description: Counts visits per user
      handler: memory
      config: {op: increment, key: "visits:{{ user }}", by: 2, ttl_seconds: 60}
      peers: [done]
    - name: done
      description: The count
      handler: output
    """
)


def test_given_increment_then_the_new_number_is_the_result_and_the_key_is_rendered_from_the_message():
    memory = DictMemory()
    assert json.loads(run(COUNTER, {"user": "ada"}, memory).output) == 2
    assert json.loads(run(COUNTER, {"user": "ada"}, memory).output) == 4
    assert memory.values == {"visits:ada": 4} and memory.ttls == {"visits:ada": 60}


def test_given_set_then_get_then_the_stored_value_comes_back_and_set_passes_the_message_on():
    memory = DictMemory()
    setter = organism(
        """
        - name: remember
          description: Stores the order's total
          handler: memory
          config: {op: set, key: last-total, value: "total"}
          peers: [done]
        - name: done
          description: The message, unchanged
          handler: output
        """
    )
    assert json.loads(run(setter, {"total": 42, "id": 7}, memory).output) == {"total": 42, "id": 7}
    getter = organism(
        """
        - name: recall
          description: Reads the last total
          handler: memory
          config: {op: get, key: last-total}
        """
    )
    assert json.loads(run(getter, None, memory).output) == 42
    assert json.loads(run(getter.replace("last-total", "never-set"), None, memory).output) is None


def test_given_set_without_value_then_the_whole_message_is_stored_and_delete_removes_it():
    memory = DictMemory()
    store_all = organism(
        """
        - name: remember
          description: Stores the message
          handler: memory
          config: {op: set, key: "{{ id }}"}
        """
    )
    run(store_all, {"id": "a1", "n": [1, 2]}, memory)
    assert memory.values == {"a1": {"id": "a1", "n": [1, 2]}} and memory.ttls == {"a1": None}
    remover = organism(
        """
        - name: forget
          description: Deletes the message's entry
          handler: memory
          config: {op: delete, key: "{{ id }}"}
        """
    )
    assert json.loads(run(remover, {"id": "a1"}, memory).output) == {"id": "a1"}
    assert memory.values == {}


def test_given_a_refusal_then_the_listener_fails_naming_the_key_never_the_value():
    memory = DictMemory()
    memory.values["visits:ada"] = "secret-text"
    result = run(COUNTER, {"user": "ada"}, memory)
    assert result.status == "error"
    assert "visits:ada" in result.error and "secret-text" not in result.error
    disabled = run(COUNTER, {"user": "ada"}, DictMemory(enabled=False))
    assert disabled.status == "error" and "disabled" in disabled.error and "visits:ada" in disabled.error


def test_given_no_memory_port_then_a_memory_listener_fails_the_run():
    result = run(COUNTER, {"user": "ada"}, None)
    assert result.status == "error"
    assert "not available" in result.error and "visits:ada" in result.error


def test_given_a_rendered_key_that_is_not_a_key_then_the_listener_fails_naming_it():
    result = run(COUNTER, {"user": "x" * 600}, DictMemory())
    assert result.status == "error" and "at most 512 bytes" in result.error


@pytest.mark.parametrize(
    "config, problem",
    [
        ("{key: k}", "needs config key(s): op"),
        ("{op: get}", "needs config key(s): key"),
        ("{op: fetch, key: k}", "config.op must be one of get, set, delete, increment"),
        ("{op: get, key: k, value: '@'}", "config.op get takes no value"),
        ("{op: set, key: k, by: 2}", "config.op set takes no by"),
        ("{op: increment, key: k, by: .nan}", "config.by must be a finite number"),
        ("{op: increment, key: k, by: 'one'}", "config.by must be a finite number"),
        ("{op: set, key: k, ttl_seconds: 0}", "ttl_seconds must be a whole number of seconds from 1 to 31536000"),
        ("{op: set, key: k, ttl_seconds: 31536001}", "from 1 to 31536000"),
        ("{op: get, key: \"line\\nbreak\"}", "control characters"),
        ("{op: get, key: \"{{ length( }}\"}", "config key"),
        ("{op: set, key: k, value: 'length('}", "config value"),
    ],
)
def test_given_bad_config_then_validation_reports_invalid_config(config, problem):
    issues = validate(organism(f"- name: m\n  description: memory\n  handler: memory\n  config: {config}\n"))
    errors = [issue for issue in issues if issue.severity == "error"]
    assert [issue.code for issue in errors] == ["invalid_config"], issues
    assert problem in errors[0].message


def test_given_an_owner_whose_tier_has_no_memory_then_validation_warns_and_the_flow_still_validates():
    free = validate(COUNTER, FlowContext(owner_tier="free"))
    assert [(issue.code, issue.severity, issue.listener) for issue in free] == [
        ("memory_unavailable", "warning", "count")
    ]
    assert validate(COUNTER, FlowContext(owner_tier="paid")) == []
    assert validate(COUNTER) == []
