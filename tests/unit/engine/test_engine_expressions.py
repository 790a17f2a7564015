"""Expressions at run time: a failure names the function, the types and the expression, never the message's values;
and every evaluation is bounded, however its values share parts, since nothing interrupts one."""

from __future__ import annotations

import json
import time

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloxserver.engine import EngineSettings, expressions, run_flow
from bloxserver.engine.expressions import ExpressionError, compile_expression, compile_template

CARD = {"card": {"number": "4111111111111111", "cvv": "123"}, "cards": [{"number": "4111111111111111"}]}


def charge(expression: str) -> str:
    return (
        "organism: {name: payments}\nlisteners:\n"
        f"  - {{name: charge, description: x, handler: transform, config: {{expression: {json.dumps(expression)}}}}}\n"
    )


def run(yaml_text: str, payload: str):
    return run_flow(yaml_text, payload, execution_id="e", deadline=time.monotonic() + 60, settings=EngineSettings())


def doubled(times: int) -> str:
    """Pairs of pairs of the input, `times` deep: 2**times copies as JSON, `times` small lists in memory."""
    return " | ".join(["[@, @]"] * times)


def twin_pairs(times: int) -> str:
    """p and q, pairs of pairs `times` deep, equal but sharing no lists: comparing them goes through 2**times pairs."""
    return " | ".join(["{p: [p, p], q: [q, q]}"] * times)


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


def test_a_message_nested_too_deeply_to_serialise_is_an_expression_error():
    deep = None
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ExpressionError, match=r"^to_string\(\) argument has nesting deeper than 256 levels$"):
        compile_expression("to_string(@)").search(deep)


def test_squaring_an_integer_past_the_digit_limit_ends_the_run_as_an_error_not_a_timeout():
    # QA's flow: unbounded, 10 squared 25 times heads for 2**25 digits, each step about three times slower.
    result = run("timeout_seconds: 2\n" + charge(" | ".join(["multiply(@, @)"] * 25)), "10")
    assert result.status == "error"
    assert result.error == "listener 'charge' failed: multiply() result has more than 4300 digits"


@pytest.mark.parametrize(
    ("expression", "function"),
    [("add(@, @)", "add"), ("subtract(@, multiply(@, `-1`))", "subtract"), ("sum([@, @])", "sum")],
)
def test_any_integer_result_past_the_digit_limit_fails_the_expression_naming_the_function(expression, function):
    nines = 10**4300 - 1
    assert compile_expression("multiply(@, `1`)").search(nines) == nines
    with pytest.raises(ExpressionError, match=rf"^{function}\(\) result has more than 4300 digits$"):
        compile_expression(expression).search(nines)  # 2 * nines has 4301 digits


@pytest.mark.parametrize(
    ("expression", "function"),
    [
        ("add(`1e308`, `1e308`)", "add"),
        ("subtract(`-1e308`, `1e308`)", "subtract"),
        ("multiply(`1e308`, `10`)", "multiply"),
        ("divide(`1e308`, `1e-308`)", "divide"),
        ("sum([`1e308`, `1e308`])", "sum"),
        ("avg([`1e308`, `1e308`])", "avg"),
        ("to_number('1e999')", "to_number"),
        ("to_number('nan')", "to_number"),
    ],
)
def test_arithmetic_results_that_are_not_finite_fail_the_expression_naming_the_function(expression, function):
    with pytest.raises(ExpressionError, match=rf"^{function}\(\) result is not a finite number$"):
        compile_expression(expression).search({})


@pytest.mark.parametrize(
    ("digits", "value", "expected"),
    [
        ("`2`", "`1234.5678`", 1234.57),
        ("`-2`", "`1234`", 1200),
        ("`-1e300`", "`5`", 0),
        ("`1e300`", "`5`", 5),
        ("`-1e300`", "`1.5`", 0.0),
        ("`1e300`", "`1.5`", 1.5),
    ],
)
def test_round_to_any_number_of_digits_answers_without_computing_ten_to_that_power(digits, value, expected):
    # Unbounded, round(`5`, `-1e300`) never finishes: Python first computes 10 ** 1e300.
    assert compile_expression(f"round({value}, {digits})").search(None) == expected


def test_to_string_of_a_value_larger_than_a_message_fails_before_building_its_text():
    # QA doubled 28 times: 55 s and 3.6 GB of text before length() saw it.
    with pytest.raises(ExpressionError, match=r"^to_string\(\) argument has more than 1048576 bytes$"):
        compile_expression(doubled(20) + " | length(to_string(@))").search(1)


def test_concat_and_templates_refuse_a_value_larger_than_a_message_before_building_its_text():
    with pytest.raises(ExpressionError, match=r"^concat\(\) argument has more than 1048576 bytes$"):
        compile_expression(doubled(20) + " | concat('', @)").search(1)
    with pytest.raises(ExpressionError, match=r"^the value of \{\{ .* \}\} has more than 1048576 bytes$"):
        compile_template("{{ " + doubled(20) + " }}").render(1)


def test_a_flow_whose_expression_builds_too_much_ends_as_an_error_naming_it():
    # Each flatten doubles a real list: 22 of them would build 4 million elements.
    expression = doubled(22) + " | " + " | ".join(["[]"] * 21) + " | length(@)"
    result = run(charge(expression), "1")
    assert (result.status, result.error) == (
        "error",
        f"listener 'charge' failed: expression {expression!r} failed: the evaluation takes more than 4194304 steps "
        "(it builds or goes through too much data)",
    )


SMALL_BUDGET = 10_000
LONG = "x" * 4_000  # three copies take more steps than the small budget


@pytest.fixture
def small_budget(monkeypatch):
    """A budget reached in milliseconds, not seconds: the flows below cross it as they would the real one."""
    monkeypatch.setattr(expressions, "MAX_EVALUATION_STEPS", SMALL_BUDGET)


@pytest.mark.parametrize(
    ("expression", "data"),
    [
        (doubled(14) + " | " + " | ".join(["[]"] * 13), 1),
        (doubled(14) + " | " + "[*]" * 14, 1),
        (twin_pairs(14) + " | p == q", {"p": 1, "q": 1}),
        (twin_pairs(14) + " | contains([p], q)", {"p": 1, "q": 1}),
        (" | ".join(["concat(@, @)"] * 14), "x"),
        ("join('', [@, @, @])", LONG),
        ("[@, @, @] | max(@)", LONG),
        ("[@, @, @] | sort(@)", LONG),
        ("[@, @, @] | max_by(@, &@)", LONG),
        ("[upper(@), upper(@), upper(@)]", LONG),
        ("{a: upper(@), b: upper(@)} | [a == b, a == b]", LONG),
        ("[@[:], @[:], @[:]]", list(range(4_000))),
    ],
    ids=[
        "flatten", "projections", "equality", "contains", "concat", "join", "max", "sort", "max_by keys",
        "string functions", "string equality", "slices",
    ],
)
def test_an_evaluation_that_builds_or_goes_through_too_much_fails_naming_the_expression(small_budget, expression, data):
    with pytest.raises(ExpressionError) as raised:
        compile_expression(expression).search(data)
    assert str(raised.value) == (
        f"expression {expression!r} failed: the evaluation takes more than {SMALL_BUDGET} steps "
        "(it builds or goes through too much data)"
    )


def test_a_template_spends_one_budget_on_all_its_placeholders(small_budget):
    with pytest.raises(ExpressionError, match=rf"^the evaluation takes more than {SMALL_BUDGET} steps"):
        compile_template("{{ @ }}{{ @ }}{{ @ }}").render(LONG)


def test_sizeable_messages_still_evaluate_within_the_bounds():
    items = [{"id": f"item-{n}", "qty": n % 7, "price": n * 1.5, "tags": ["a", "b"]} for n in range(5_000)]
    message = {"items": items, "copy": json.loads(json.dumps(items))}
    checks = {
        "length(items[*].{id: id, total: multiply(qty, price)} | sort_by(@, &total))": 5_000,
        "length(items[?qty > `3` && contains(tags, 'b')])": len([item for item in items if item["qty"] > 3]),
        "items == copy": True,
        "length(to_string(@)) > `100000`": True,
        "length(join(',', items[*].id))": sum(len(item["id"]) + 1 for item in items) - 1,
        "max(items[*].price)": 4_999 * 1.5,
    }
    assert {source: compile_expression(source).search(message) for source in checks} == checks


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from([0.0, 1.0, 1.5, "", "a", "b"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("ab"), children, max_size=2),
    max_leaves=8,
)


def answer(search, source: str, data: dict) -> object:
    try:
        return search(source, data)
    except (ExpressionError, TypeError):  # ordering a string and a number
        return "error"


@given(left=json_values, right=json_values)
def test_the_bounded_comparisons_answer_as_jmespaths_own(left, right):
    data = {"l": left, "r": right, "pair": [left, right]}
    ours = lambda source, data: compile_expression(source).search(data)  # noqa: E731
    sources = ("l == r", "l != r", "[l] == [r]", "l == l", "pair == [l, r]", "l < r", "l >= r",
               "contains(to_array(l), r)", "contains(pair, r)")
    assert {source: answer(ours, source, data) for source in sources} == {
        source: answer(jmespath.search, source, data) for source in sources
    }
