"""JMESPath with the functions flows need and JMESPath lacks (arithmetic, case, concatenation), and `{{ }}` templates.

Expressions are compiled once when an organism loads; running a flow only evaluates them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_exceptions
from jmespath import functions


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate; the message is meant for the flow author."""


class FlowFunctions(functions.Functions):
    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, left, right):
        return left + right

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, left, right):
        return left - right

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, left, right):
        return left * right

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, left, right):
        if right == 0:
            raise ExpressionError("divide() by zero")
        return left / right

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, value, digits):
        return round(value, int(digits))

    @functions.signature({"types": ["string"]})
    def _func_upper(self, value):
        return value.upper()

    @functions.signature({"types": ["string"]})
    def _func_lower(self, value):
        return value.lower()

    @functions.signature({"types": ["string"]})
    def _func_trim(self, value):
        return value.strip()

    @functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *values):
        return "".join(_as_text(value) for value in values)


OPTIONS = jmespath.Options(custom_functions=FlowFunctions())
# Evaluation recurses once per level of the parsed expression; this keeps it far from the interpreter's stack limit.
MAX_EXPRESSION_DEPTH = 100
_TOO_DEEP = f"expression nests too deeply (at most {MAX_EXPRESSION_DEPTH} levels)"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Expression:
    source: str
    _compiled: Any

    def search(self, data: Any) -> Any:
        try:
            return self._compiled.search(data, options=OPTIONS)
        except ExpressionError:
            raise
        except jmespath_exceptions.JMESPathTypeError as exc:
            # JMESPath's own message (and so the chained exception) quotes the value, which is message payload.
            raise ExpressionError(f"expression {self.source!r} failed: {_type_mismatch(exc)}") from None
        except RecursionError:
            raise ExpressionError(f"expression {self.source!r} failed: the value nests too deeply") from None
        except (jmespath_exceptions.JMESPathError, TypeError, ValueError, ArithmeticError) as exc:
            # These (arity errors, the functions' Python errors such as an infinite floor()) name types, not values.
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from exc


def _type_mismatch(exc: jmespath_exceptions.JMESPathTypeError) -> str:
    # Checks of array elements report Python type names ("str"), the others JMESPath's ("string").
    actual = functions.TYPES_MAP.get(exc.actual_type, exc.actual_type)
    return f"{exc.function_name}() expected {' or '.join(exc.expected_types)}, got {actual}"


def compile_expression(source: Any) -> Expression:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(f"expected a JMESPath expression string, got {source!r}")
    try:
        compiled = jmespath.compile(source)
    except jmespath_exceptions.JMESPathError as exc:
        raise ExpressionError(f"invalid JMESPath expression {source!r}: {exc}") from exc
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None
    _check_tree(source, compiled.parsed)
    return Expression(source, compiled)


def _check_tree(source: str, tree: dict[str, Any]) -> None:
    """Refuses at load what evaluation would fail on: unknown functions, and nesting too deep to evaluate."""
    unknown: set[str] = set()
    pending = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(_TOO_DEEP)
        if node["type"] == "function_expression" and node["value"] not in OPTIONS.custom_functions.FUNCTION_TABLE:
            unknown.add(node["value"])
        # A slice's children are its bounds (numbers or None), not nodes.
        pending.extend((child, depth + 1) for child in node["children"] if isinstance(child, dict))
    if unknown:
        names = ", ".join(f"{name}()" for name in sorted(unknown))
        raise ExpressionError(f"unknown function{'s' if len(unknown) > 1 else ''} {names} in expression {source!r}")


_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


@dataclass(frozen=True)
class Template:
    """Text with `{{ expression }}` placeholders, each replaced by the expression's value on the message."""

    parts: tuple[str | Expression, ...]

    def render(self, data: Any) -> str:
        return "".join(part if isinstance(part, str) else _as_text(part.search(data)) for part in self.parts)


def compile_template(source: Any) -> Template:
    if not isinstance(source, str):
        raise ExpressionError(f"expected a text template, got {source!r}")
    parts: list[str | Expression] = []
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        if match.start() > position:
            parts.append(source[position : match.start()])
        parts.append(compile_expression(match.group(1).strip()))
        position = match.end()
    if position < len(source):
        parts.append(source[position:])
    return Template(tuple(parts))
