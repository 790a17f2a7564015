"""The `memory` handler: reads and writes the flow's project memory through the run's memory port (RunServices),
which the executor builds for the flow; the engine itself never touches storage. See docs/memory.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bloxserver import memory_rules
from bloxserver.engine.base import (
    HandlerResult,
    InvalidConfig,
    ListenerFailed,
    compile_config_template,
    config_keys,
    evaluate,
    is_finite_number,
    memory_tier_warnings,
    optional_expression,
    render,
)
from bloxserver.engine.context import StoreRefused
from bloxserver.engine.yamlvalues import shown

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation

OPERATIONS = ("get", "set", "delete", "increment")
# The settings each operation takes besides `op` and `key`.
OPERATION_KEYS = {
    "get": set(),
    "set": {"value", "ttl_seconds"},
    "delete": set(),
    "increment": {"by", "ttl_seconds"},
}


class MemoryHandler:
    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config = config_keys(spec, {"op", "key", "value", "by", "ttl_seconds"}, {"op", "key"})
        self.op = config["op"]
        if self.op not in OPERATIONS:
            raise InvalidConfig(f"config.op must be one of {', '.join(OPERATIONS)}, got {shown(self.op)}")
        misplaced = sorted(set(config) - {"op", "key"} - OPERATION_KEYS[self.op])
        if misplaced:
            raise InvalidConfig(f"config.op {self.op} takes no {', '.join(misplaced)}")
        self.key = compile_config_template("key", config["key"])
        if all(isinstance(part, str) for part in self.key.parts):  # no placeholders: it can be checked now
            problem = memory_rules.key_problem(config["key"])
            if problem:
                raise InvalidConfig(f"config.key: {problem}")
        self.value = optional_expression(config, "value")
        self.by = config.get("by", 1)
        if not is_finite_number(self.by):
            raise InvalidConfig(f"config.by must be a finite number, got {shown(self.by)}")
        self.ttl_seconds = config.get("ttl_seconds")
        problem = memory_rules.ttl_problem(self.ttl_seconds)
        if problem:
            raise InvalidConfig(f"config.{problem}")
        self.validation_warnings = memory_tier_warnings(context, "this listener fails whenever it runs")

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        key = render(self.key, message)
        problem = memory_rules.key_problem(key)
        if problem:
            raise ListenerFailed(f"memory key {memory_rules.shown_key(key)}: {problem}")
        memory = invocation.run.services.memory
        if memory is None:
            raise ListenerFailed(f"project memory is not available to this run (key {memory_rules.shown_key(key)})")
        try:
            if self.op == "get":
                return HandlerResult(invocation.call_blocking(memory.get, key))
            if self.op == "increment":
                return HandlerResult(invocation.call_blocking(memory.increment, key, self.by, self.ttl_seconds))
            if self.op == "set":
                value = message if self.value is None else evaluate(self.value, message)
                invocation.call_blocking(memory.set, key, value, self.ttl_seconds)
            else:
                invocation.call_blocking(memory.delete, key)
        except StoreRefused as refused:
            raise ListenerFailed(str(refused)) from refused
        return HandlerResult(message)

