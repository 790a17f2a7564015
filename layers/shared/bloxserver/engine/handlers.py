"""The handler registry: built-in handlers by name. A handler is built once per load from its listener's config
(compiling expressions, refusing bad config) and then run once per message; instances hold no per-run state.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from bloxserver.engine.expressions import Expression, ExpressionError, compile_expression
from bloxserver.engine.yamlvalues import shown

if TYPE_CHECKING:
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation


class InvalidConfig(Exception):
    """A listener's config cannot be used; the message says what to fix."""


class ListenerFailed(Exception):
    """A handler could not produce a result for this message; the run ends as `error`."""


@dataclass(frozen=True)
class HandlerResult:
    value: Any
    # Which peers get the value; None means all of the listener's onward targets.
    route: tuple[str, ...] | None = None


class Handler(Protocol):
    def run(self, message: Any, invocation: Invocation) -> HandlerResult: ...


# Each expression's evaluation is bounded on its own (expressions.py): this bounds how many one invocation runs.
MAX_ENTRIES_PER_SETTING = 100


def check_entry_count(setting: str, entries: dict | list) -> None:
    if len(entries) > MAX_ENTRIES_PER_SETTING:
        raise InvalidConfig(f"config.{setting} may hold at most {MAX_ENTRIES_PER_SETTING} entries")


def is_finite_number(value: Any) -> bool:
    """A number that is not a bool, NaN, an infinity, nor an integer too large to be a float (deadlines add them to
    one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= sys.float_info.max


def is_positive_number(value: Any, integer: bool = False) -> bool:
    """A finite positive number (an int when `integer`)."""
    return is_finite_number(value) and value > 0 and (isinstance(value, int) or not integer)


def _require_text_keys(config: dict[str, Any]) -> None:
    """Refuses a mapping key, at any depth of a config, that is not text: YAML reads `1:`, `null:` or `yes:` as a
    number, null or boolean, which no setting, `set` key or header name can be."""
    pending: list[tuple[str, Any]] = [("config", config)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidConfig(f"{where} keys must be text (quote them in the YAML), got {shown(key)}")
                pending.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


def config_keys(spec: ListenerSpec, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:
    _require_text_keys(spec.config)
    unknown = sorted(set(spec.config) - allowed)
    if unknown:
        raise InvalidConfig(f"unknown config key(s) for handler {spec.handler_name!r}: {', '.join(unknown)}")
    missing = sorted(required - set(spec.config))
    if missing:
        raise InvalidConfig(f"handler {spec.handler_name!r} needs config key(s): {', '.join(missing)}")
    return spec.config


def compile_config_expression(key: str, source: Any) -> Expression:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise InvalidConfig(f"config {key}: {exc}") from exc


def optional_expression(config: dict[str, Any], key: str) -> Expression | None:
    return compile_config_expression(key, config[key]) if key in config else None


def evaluate(expression: Expression, message: Any) -> Any:
    try:
        return expression.search(message)
    except ExpressionError as exc:
        raise ListenerFailed(str(exc)) from exc


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null and empty strings, arrays and objects are false; every number is true."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (str, list, dict)) and not value)


class Transform:
    """Builds a new message: `expression` replaces it, or `set` adds/overwrites keys of an object message."""

    def __init__(self, spec: ListenerSpec) -> None:
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

    def __init__(self, spec: ListenerSpec) -> None:
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

    def __init__(self, spec: ListenerSpec) -> None:
        config = config_keys(spec, {"expression"})
        if spec.peers:
            raise InvalidConfig("an output listener is terminal: remove its peers")
        self.expression = optional_expression(config, "expression")

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        return HandlerResult(message if self.expression is None else evaluate(self.expression, message))


def _registry() -> dict[str, Callable[[ListenerSpec], Handler]]:
    # Imported here: these modules import this one for the handler base types.
    from bloxserver.engine.agent import Agent
    from bloxserver.engine.http_handler import HttpRequest

    return {"transform": Transform, "conditional": Conditional, "output": Output, "http": HttpRequest, "llm": Agent}


BUILTIN_HANDLERS = _registry()
