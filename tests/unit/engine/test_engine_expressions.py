"""Expressions at run time: a failure names the function, the types and the expression, never the message's values."""

from __future__ import annotations

import json
import time

import pytest

from bloxserver.engine import EngineSettings, run_flow
from bloxserver.engine.expressions import ExpressionError, compile_expression

CARD = {"card": {"number": "4111111111111111", "cvv": "123"}, "cards": [{"number": "4111111111111111"}]}


def charge(expression: str) -> str:
    return (
        "organism: {name: payments}\nlisteners:\n"
        f"  - {{name: charge, description: x, handler: transform, config: {{expression: {json.dumps(expression)}}}}}\n"
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("upper(card)", "upper() expected string, got object"),
        ("sum(values(card))", "sum() expected array-number, got string"),
        ("sort_by(cards, &{n: number})", "sort_by() expected string or number, got object"),
    ],
)
def test_a_type_error_names_function_expression_and_types_but_never_the_value(expression, problem):
    payload, deadline = json.dumps(CARD), time.monotonic() + 10
    result = run_flow(charge(expression), payload, execution_id="e", deadline=deadline, settings=EngineSettings())
    assert result.status == "error"
    assert result.error == f"listener 'charge' failed: expression {expression!r} failed: {problem}"
    logged = " ".join(f"{log.message} {log.metadata}" for log in result.logs)
    assert "4111" not in logged and "cvv" not in logged


def test_a_message_nested_too_deeply_to_evaluate_is_an_expression_error():
    deep = None
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="nests too deeply"):
        compile_expression("to_string(@)").search(deep)
