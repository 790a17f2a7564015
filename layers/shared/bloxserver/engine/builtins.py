"""The built-in handlers that only reshape and route messages: transform, conditional and output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bloxserver.engine.base import (
    HandlerResult,
    InvalidConfig,
    ListenerFailed,
    check_entry_count,
    compile_config_expression,
    config_keys,
    evaluate,
    is_truthy,
    optional_expression,
)
from bloxserver.engine.yamlvalues import shown

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation


class Transform:
    """Builds a new message: `expression` replaces it, or `set` adds/overwrites keys of an object message."""

    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config = config_keys(spec, {"expression", "set"})
        if ("expression" in config) == ("set" in config):
            raise InvalidConfig("transform needs exactly one of config.expression or config.set")
        self.expression = optional_expression(config, "expression")
        assignments = config.get("set", {})
        if not isinstance(assignments, dict) or ("set" in config and not assignments):
            raise InvalidConfig("config.set must be a non-empty mapping of key: JMESPath expression")
        check_entry_count("set", assignments)
        self.assignments = tuple(
            (key, compile_config_expression(f"set.{key}", source)) for key, source in assignments.items()
        )

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        if self.expression is not None:
            return HandlerResult(evaluate(self.expression, message))
        if message is not None and not isinstance(message, dict):
            raise ListenerFailed(f"config.set needs an object message, got {type(message).__name__}")
        result = dict(message or {})  # no input (null): the keys set make a new object
        for key, expression in self.assignments:
            result[key] = evaluate(expression, message)
        return HandlerResult(result)


class Conditional:
    """Sends the message, unchanged, to the `to` of the first `when` whose `if` is true, else to `default`."""

    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config = config_keys(spec, {"when", "default"}, {"when"})
        branches = config["when"]
        if not isinstance(branches, list) or not branches:
            raise InvalidConfig("config.when must be a non-empty list of {if: <JMESPath>, to: <peer>}")
        check_entry_count("when", branches)
        compiled = []
        for index, branch in enumerate(branches):
            if not isinstance(branch, dict) or set(branch) != {"if", "to"}:
                raise InvalidConfig(f"config.when[{index}] must have exactly the keys `if` and `to`")
            condition = compile_config_expression(f"when[{index}].if", branch["if"])
            compiled.append((condition, self._peer(spec, branch["to"])))
        self.branches = tuple(compiled)
        self.default = self._peer(spec, config["default"]) if config.get("default") is not None else None

    @staticmethod
    def _peer(spec: ListenerSpec, target: Any) -> str:
        if not isinstance(target, str) or target not in spec.peers:
            raise InvalidConfig(f"conditional target {shown(target)} must be one of the listener's peers {list(spec.peers)}")
        return target

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        for condition, target in self.branches:
            if is_truthy(evaluate(condition, message)):
                return HandlerResult(message, (target,))
        return HandlerResult(message, (self.default,) if self.default else ())


class Output:
    """Marks the flow's result, optionally shaped by `expression`. Output listeners are terminal."""

    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config = config_keys(spec, {"expression"})
        if spec.peers:
            raise InvalidConfig("an output listener is terminal: remove its peers")
        self.expression = optional_expression(config, "expression")

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        return HandlerResult(message if self.expression is None else evaluate(self.expression, message))
