"""The schemathesis fuzzer against a local stack, on a bounded budget (`make fuzz` runs a large one): no 5xx, every
4xx an ApiError, every answer as openapi.json declares it, nothing written by a refused request.
Numbers of both budgets: docs/testing.md."""

from __future__ import annotations

import pytest
import requests

from devstack import fuzz
from devstack.server import start_local_stack

# Per operation and pass (valid, invalid, valid with real ids): about 480 requests, a minute and a half on a quiet machine. The
# requests are the same on every run (derandomized): this cannot flake, and `make fuzz --seed N` explores others.
BOUNDED_EXAMPLES = 3


def test_given_every_operation_when_fuzzed_then_no_answer_breaks_the_document():
    with start_local_stack(port=0, background_workers=False) as stack:
        report = fuzz.fuzz(stack, BOUNDED_EXAMPLES)

    print(report.summary())
    assert not report.findings, "\n".join(map(str, report.findings))
    assert report.requests >= 350
    assert any(200 <= status < 300 for status in report.statuses), "no request got through: the tokens are refused"


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


@pytest.mark.parametrize("body", [b"<html>Not Found</html>", b'{"message": "Unauthorized"}', b'{"code": 404}',
                                  b'{"code": "x", "message": "y", "details": "z"}'])
def test_a_4xx_that_is_not_an_api_error_is_a_finding(body):
    assert fuzz._api_error_problem(_response(404, body)) is not None


def test_an_api_error_is_not_a_finding():
    assert fuzz._api_error_problem(_response(422, b'{"code": "validation_error", "message": "m", "details": {}}')) is None


def test_a_refused_request_that_changed_a_table_is_a_finding():
    before = {"AppTable": ["a"], "IdempotencyTable": []}

    assert fuzz._written(before, {"AppTable": ["a", "b"], "IdempotencyTable": []}) is not None
    assert fuzz._written(before, {"AppTable": ["a"], "IdempotencyTable": []}) is None
