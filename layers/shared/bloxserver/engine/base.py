"""What every handler depends on, and nothing else: the handler interface, its result, its errors and the config
helpers. A handler is built once per load from its listener's config and context (compiling expressions, refusing
bad config) and then run once per message; instances hold no per-run state. No handler module imports another:
the registry (registry.py) lists them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bloxserver.engine.expressions import Expression, ExpressionError, Template, compile_expression, compile_template
from bloxserver.engine.yamlvalues import shown

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation


class InvalidConfig(Exception):
    """A listener's config cannot be used; the message says what to fix."""


class ListenerFailed(Exception):
    """A handler could not produce a result for this message; the run ends as `error`."""


class ListenerTimedOut(ListenerFailed):
    """A handler ran out of its own time limit (a WASM call's timeout_seconds); the run ends as `timeout`."""


@dataclass(frozen=True)
class HandlerResult:
    value: Any
    # Which peers get the value; None means all of the listener's onward targets.
    route: tuple[str, ...] | None = None


class Handler(Protocol):
    """May also hold `validation_warnings`: (code, message) pairs that validation reports as warnings."""

    def run(self, message: Any, invocation: Invocation) -> HandlerResult: ...


class HandlerFactory(Protocol):
    """A handler class: built from the listener's spec and the flow's context, raising InvalidConfig."""

    def __call__(self, spec: ListenerSpec, context: FlowContext) -> Handler: ...


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


def compile_config_template(key: str, source: Any, secrets: bool = False) -> Template:
    """Config `key`'s template; with `secrets`, it may reference the owner's secrets (`secret('NAME')`)."""
    try:
        return compile_template(source, secrets=secrets)
    except ExpressionError as exc:
        raise InvalidConfig(f"config {key}: {exc}") from exc


def render(template: Template, message: Any) -> str:
    try:
        return template.render(message)
    except ExpressionError as exc:
        raise ListenerFailed(str(exc)) from exc


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


def memory_tier_warnings(context: FlowContext, consequence: str) -> tuple[tuple[str, str], ...]:
    """A `memory_unavailable` warning for a listener using project memory when the flow's owner is known and their
    tier has none: the flow may still be saved and started (the tier may change before it runs), but meanwhile
    `consequence`."""
    if context.owner_tier is None:
        return ()
    from bloxserver.contract import Tier  # the owner's tier is known only to the API, which has it loaded
    from bloxserver.limits import TIER_LIMITS

    if TIER_LIMITS[Tier(context.owner_tier)].project_memory_bytes:
        return ()
    return (("memory_unavailable", f"the {context.owner_tier} tier has no project memory: {consequence}"),)
