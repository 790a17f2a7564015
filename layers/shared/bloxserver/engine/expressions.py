"""JMESPath with the functions flows need and JMESPath lacks (arithmetic, case, concatenation), and `{{ }}` templates.

Expressions are compiled once when an organism loads; running a flow only evaluates them. Nothing interrupts an
evaluation (the engine checks its deadlines between listener invocations), so each is bounded by construction:
numbers stay finite and under MAX_INT_DIGITS digits, a value turned into text under MAX_MESSAGE_BYTES, and the whole
evaluation under MAX_EVALUATION_STEPS steps. Values may share parts (`[@, @]` doubles a list's size as JSON but not
in memory), so the bounds count what is built or gone through, not what is held.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_exceptions
from jmespath import functions, visitor

from bloxserver import jsonvalues
from bloxserver import secrets as secret_syntax
from bloxserver.engine.yamlvalues import shown

# What one listener may hand on (runtime.py refuses larger messages), and the most text one value may become: far
# above any real message (a webhook's input is at most 256 KiB), low enough that a flow growing its message every
# round stops long before the executor runs out of memory or time.
MAX_MESSAGE_BYTES = 1024 * 1024
# A step is an expression node evaluated, or an element or character that a function, a flatten, a slice or a
# comparison goes through: room for several passes over the largest message, and at most seconds of CPU.
MAX_EVALUATION_STEPS = 4 * MAX_MESSAGE_BYTES
# Evaluation recurses once per level of the parsed expression; this keeps it far from the interpreter's stack limit.
MAX_EXPRESSION_DEPTH = 100
_TOO_DEEP = f"expression nests too deeply (at most {MAX_EXPRESSION_DEPTH} levels)"
# An integer of more bits has more than MAX_INT_DIGITS digits (log2(10) bits a digit).
_MAX_INT_BITS = math.ceil(jsonvalues.MAX_INT_DIGITS * math.log2(10))
# More digits than any number here has (integers about MAX_INT_DIGITS, floats about 330): rounding to more keeps the
# number and to fewer gives zero, as it would without the bound, but without Python computing 10 ** -digits first.
_MAX_ROUND_DIGITS = 2 * jsonvalues.MAX_INT_DIGITS
# Functions that take the same time whatever the size of their arguments.
_CONSTANT_TIME_FUNCTIONS = frozenset({"length", "not_null", "to_array", "type"})


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate; the message is meant for the flow author."""


class _OverBudget(ExpressionError):
    """An evaluation spent its MAX_EVALUATION_STEPS; the expression adds its source to the message."""


class _Steps:
    """The steps one evaluation has left."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_EVALUATION_STEPS

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise self.exhausted()

    def exhausted(self) -> _OverBudget:
        return _OverBudget(
            f"the evaluation takes more than {MAX_EVALUATION_STEPS} steps (it builds or goes through too much data)"
        )


def _number(function: str, value: Any) -> Any:
    """`value`, a result of `function`, unless it is an integer with too many digits for JSON or is not finite.

    Failing here stops a growing integer while it is still cheap: multiplying n-digit integers takes about n**1.6
    steps, so each squaring of an unbounded one took three times longer than the last.
    """
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise ExpressionError(f"{function}() result has more than {jsonvalues.MAX_INT_DIGITS} digits")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{function}() result is not a finite number")
    return value


def _check_size(value: Any, what: str) -> None:
    # Serialising walks the value as a tree, which shared parts can make exponentially larger than its memory.
    problem = jsonvalues.size_problem(value, MAX_MESSAGE_BYTES)
    if problem is not None:
        raise ExpressionError(f"{what} has {problem}")


def _as_text(value: Any, what: str) -> str:
    """A value as concat() and templates show it: strings as is, null as empty, others as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    _check_size(value, what)
    return jsonvalues.compact(value)


def _equal(left: Any, right: Any, steps: _Steps) -> bool:
    """Python's `left == right`, spending a step per element and character compared.

    `==` stops at a difference or at a part both values share, but values whose parts are equal without being the
    same objects take as long as their tree is large: exponentially long for parts built by `[@, @]`.
    """
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            steps.spend(len(a))
            pairs: Any = zip(a, b)
        elif isinstance(a, dict) and isinstance(b, dict):
            steps.spend(len(a))
            if a.keys() != b.keys():
                return False
            pairs = ((a[key], b[key]) for key in a)
        else:
            if isinstance(a, str) and isinstance(b, str) and len(a) == len(b):
                steps.spend(len(a))
            if a != b:
                return False
            continue
        # A part both values hold is equal to itself, as Python's comparison of containers assumes.
        pending.extend((x, y) for x, y in pairs if x is not y)
    return True


def _orderable(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


class FlowFunctions(functions.Functions):
    """JMESPath's functions and the engine's for one evaluation: those that can grow numbers or text are bounded,
    and work beyond going through their arguments once is paid from `steps`."""

    def __init__(self, steps: _Steps) -> None:
        self.steps = steps

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_add(self, left, right):
        return _number("add", left + right)

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_subtract(self, left, right):
        return _number("subtract", left - right)

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_multiply(self, left, right):
        return _number("multiply", left * right)

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_divide(self, left, right):
        if right == 0:
            raise ExpressionError("divide() by zero")
        return _number("divide", left / right)

    @functions.signature({"types": ["number"]}, {"types": ["number"]})
    def _func_round(self, value, digits):
        return round(value, max(-_MAX_ROUND_DIGITS, min(_MAX_ROUND_DIGITS, int(digits))))

    @functions.signature({"types": ["array-number"]})
    def _func_sum(self, values):
        return _number("sum", super()._func_sum(values))

    @functions.signature({"types": ["array-number"]})
    def _func_avg(self, values):
        return _number("avg", super()._func_avg(values))

    @functions.signature({"types": []})
    def _func_to_number(self, value):
        # float() reads "1e999", "inf" and "nan".
        return _number("to_number", super()._func_to_number(value))

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
        texts = []
        for value in values:
            texts.append(_as_text(value, "concat() argument"))
            self.steps.spend(len(texts[-1]))  # as it is built: the result copies every part, shared or not
        return "".join(texts)

    @functions.signature({"types": []})
    def _func_to_string(self, value):
        if isinstance(value, str):
            return value
        _check_size(value, "to_string() argument")
        text = super()._func_to_string(value)
        self.steps.spend(len(text))
        return text

    @functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator, parts):
        self.steps.spend(sum(map(len, parts)) + len(separator) * len(parts))  # before: it copies every part
        return super()._func_join(separator, parts)

    @functions.signature({"types": ["array", "string"]}, {"types": []})
    def _func_contains(self, subject, search):
        if isinstance(subject, str):
            return super()._func_contains(subject, search)
        return any(element is search or _equal(element, search, self.steps) for element in subject)

    @functions.signature({"types": ["array-string", "array-number"]})
    def _func_sort(self, values):
        self._pay_for_strings(values)
        return super()._func_sort(values)

    @functions.signature({"types": ["array-number", "array-string"]})
    def _func_max(self, values):
        self._pay_for_strings(values)
        return super()._func_max(values)

    @functions.signature({"types": ["array-number", "array-string"]})
    def _func_min(self, values):
        self._pay_for_strings(values)
        return super()._func_min(values)

    def _pay_for_strings(self, values: list[Any]) -> None:
        # Ordering strings compares their characters, those of a long string shared by many elements each time.
        if values and isinstance(values[0], str):
            self.steps.spend(sum(map(len, values)))

    def _create_key_func(self, expref, allowed_types, function_name):
        """The keys of sort_by(), min_by() and max_by(), string keys paid for as _pay_for_strings does."""
        key_of = super()._create_key_func(expref, allowed_types, function_name)

        def paid_key(element: Any) -> Any:
            key = key_of(element)
            if isinstance(key, str):
                self.steps.spend(len(key))
            return key

        return paid_key


class _Evaluation(visitor.TreeInterpreter):
    """JMESPath's interpreter, spending a step per node it evaluates and paying for work that is not one node's."""

    def __init__(self) -> None:
        self.steps = _Steps()
        super().__init__(jmespath.Options(custom_functions=FlowFunctions(self.steps)))

    def visit(self, node: dict[str, Any], value: Any) -> Any:
        # JMESPath's Visitor.visit and a step, inline: this runs for every node evaluated.
        steps = self.steps
        steps.left -= 1
        if steps.left < 0:
            raise steps.exhausted()
        method = self._method_cache.get(node["type"])
        if method is None:
            method = self._method_cache[node["type"]] = getattr(self, f"visit_{node['type']}")
        return method(node, value)

    def visit_function_expression(self, node: dict[str, Any], value: Any) -> Any:
        arguments = [self.visit(child, value) for child in node["children"]]
        if node["value"] not in _CONSTANT_TIME_FUNCTIONS:
            # The others go through their arguments (to check the types of an array's elements, at least).
            size = 0
            for argument in arguments:
                if isinstance(argument, (str, list, dict)):
                    size += len(argument)
            self.steps.spend(size)
        return self._functions.call_function(node["value"], arguments)

    def visit_flatten(self, node: dict[str, Any], value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        # Paid before copying: a list the base holds many times is copied as many times.
        self.steps.spend(len(base) + sum(len(element) for element in base if isinstance(element, list)))
        flattened: list[Any] = []
        for element in base:
            if isinstance(element, list):
                flattened.extend(element)
            else:
                flattened.append(element)
        return flattened

    def visit_slice(self, node: dict[str, Any], value: Any) -> Any:
        sliced = super().visit_slice(node, value)
        if sliced is not None:
            self.steps.spend(len(sliced))  # after: the copy is no longer than a list that exists
        return sliced

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        comparison = node["value"]
        if comparison in ("eq", "ne"):
            # As in JMESPath, a boolean equals only a boolean (Python's 1 == True does not count).
            equal = isinstance(left, bool) == isinstance(right, bool) and _equal(left, right, self.steps)
            return equal if comparison == "eq" else not equal
        if not (_orderable(left) and _orderable(right)):
            return None  # JMESPath orders numbers and strings only
        if isinstance(left, str) and isinstance(right, str):
            self.steps.spend(min(len(left), len(right)))
        return self.COMPARATOR_FUNC[comparison](left, right)


@dataclass(frozen=True)
class Expression:
    source: str
    _tree: dict[str, Any]

    def search(self, data: Any) -> Any:
        return self._evaluate(data, _Evaluation())

    def _evaluate(self, data: Any, evaluation: _Evaluation) -> Any:
        try:
            return evaluation.visit(self._tree, data)
        except _OverBudget as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from None
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
        raise ExpressionError(f"expected a JMESPath expression string, got {shown(source)}")
    try:
        compiled = jmespath.compile(source)
    except (jmespath_exceptions.JMESPathError, ValueError) as exc:
        # ValueError: an index or slice bound with more digits than Python converts to an integer.
        raise ExpressionError(f"invalid JMESPath expression {source!r}: {exc}") from exc
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None
    _check_tree(source, compiled.parsed)
    return Expression(source, compiled.parsed)


def _check_tree(source: str, tree: dict[str, Any]) -> None:
    """Refuses at load what evaluation would fail on: unknown functions, and nesting too deep to evaluate."""
    unknown: set[str] = set()
    pending = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(_TOO_DEEP)
        if node["type"] == "function_expression" and node["value"] not in FlowFunctions.FUNCTION_TABLE:
            unknown.add(node["value"])
        # A slice's children are its bounds (numbers or None), not nodes.
        pending.extend((child, depth + 1) for child in node["children"] if isinstance(child, dict))
    if unknown:
        names = ", ".join(f"{name}()" for name in sorted(unknown))
        raise ExpressionError(f"unknown function{'s' if len(unknown) > 1 else ''} {names} in expression {source!r}")


_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


@dataclass(frozen=True)
class SecretRef:
    """`secret('NAME')` in a template: the owner's secret value, supplied when the run starts (never in the YAML)."""

    name: str


TemplatePart = str | Expression | SecretRef


@dataclass(frozen=True)
class Template:
    """Text with `{{ expression }}` placeholders, each replaced by the expression's value on the message, and (where
    compiled with secrets) `secret('NAME')` references, replaced by the secret's value."""

    parts: tuple[TemplatePart, ...]

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(part.name for part in self.parts if isinstance(part, SecretRef))

    @property
    def is_literal(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def render(
        self,
        data: Any,
        secrets: Mapping[str, str] | None = None,
        encode: Callable[[int, str], str] | None = None,
    ) -> str:
        """The text; `encode(index, text)`, when given, rewrites each substituted value (part `index`) where it
        lands."""
        evaluation = _Evaluation()  # one budget for all the placeholders
        texts = []
        for index, part in enumerate(self.parts):
            if isinstance(part, str):
                texts.append(part)
                continue
            if isinstance(part, SecretRef):
                if secrets is None or part.name not in secrets:
                    raise ExpressionError(f"secret {part.name!r} is not available to this run")
                text = secrets[part.name]
            else:
                text = _as_text(part._evaluate(data, evaluation), f"the value of {{{{ {part.source} }}}}")
                evaluation.steps.spend(len(text))  # the result copies every value, shared or not
            texts.append(encode(index, text) if encode else text)
        return "".join(texts)


def _secret_ref(name: str) -> SecretRef:
    if not secret_syntax.NAME_PATTERN.fullmatch(name):
        raise ExpressionError(f"secret name {name!r} must be {secret_syntax.NAME_RULE}")
    return SecretRef(name)


def _literal_parts(text: str, secrets: bool) -> list[TemplatePart]:
    """Literal template text, with its bare `secret('NAME')` references as SecretRef parts when `secrets`."""
    if not secrets:
        return [text] if text else []
    parts: list[TemplatePart] = []
    position = 0
    for match in secret_syntax.REFERENCE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        parts.append(_secret_ref(match.group(2)))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return parts


def compile_template(source: Any, secrets: bool = False) -> Template:
    """`source` as a template; with `secrets`, `secret('NAME')` (bare, or alone in a placeholder) is a SecretRef."""
    if not isinstance(source, str):
        raise ExpressionError(f"expected a text template, got {shown(source)}")
    parts: list[TemplatePart] = []
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        parts.extend(_literal_parts(source[position : match.start()], secrets))
        inner = match.group(1).strip()
        name = secret_syntax.referenced_name(inner) if secrets else None
        parts.append(_secret_ref(name) if name is not None else compile_expression(inner))
        position = match.end()
    parts.extend(_literal_parts(source[position:], secrets))
    return Template(tuple(parts))
