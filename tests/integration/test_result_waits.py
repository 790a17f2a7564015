"""Answering with the result (docs/executions.md, "Answering with the result"): `Prefer: wait=<seconds>` or
`?wait=<seconds>` on a webhook delivery, a manual run or a retry answers 200 with how the execution ended, or the
usual 202/201 when it did not end in time; a queued run is read with a bounded back-off."""

from __future__ import annotations

import json
import threading
import time

import pytest

from bloxserver import waits
from devstack.aws_calls import count_aws_calls
from tests.executions_support import messages_in
from tests.support import ALICE, call

RESULT_FIELDS = {"status", "executionId", "output", "errorMessage", "durationMs"}


def post(system, token, body='{"name": "ada"}', headers=None, query=None):
    return call(system.ingress, "POST", f"/webhooks/{token}", body=body, headers=headers, query=query)


def run(system, flow_id, body=None, headers=None, query=None):
    path = f"/api/v1/flows/{flow_id}/executions/run"
    return call(system.executions, "POST", path, body=body or {"name": "ada"}, headers=headers, query=query, claims=ALICE)


def drain_soon(system) -> threading.Thread:
    """The executor picks the queued run up, once queued, while the caller waits."""

    def drain_once_queued() -> None:
        deadline = time.monotonic() + 10
        while not system.drain() and time.monotonic() < deadline:
            time.sleep(0.05)

    worker = threading.Thread(target=drain_once_queued)
    worker.start()
    return worker


@pytest.mark.parametrize(
    ("headers", "query"), [({"Prefer": "wait=5"}, None), (None, {"wait": "5"})], ids=["Prefer header", "query"]
)
def test_given_a_quick_flow_when_a_delivery_waits_then_200_with_its_result_at_once(system, hook, fast_path, headers, query):
    reply = post(system, hook["token"], headers=headers, query=query)
    assert reply.status == 200
    assert reply.headers["preference-applied"] == "wait=5"
    assert set(reply.json) == RESULT_FIELDS
    assert reply.json["status"] == "success" and reply.json["output"] == {"shout": "ADA"}
    assert reply.json["errorMessage"] is None and isinstance(reply.json["durationMs"], int)
    assert system.execution(hook["flowId"], reply.json["executionId"])["status"] == "success"


def test_given_a_queued_run_that_ends_within_the_wait_then_200_with_its_result(system, hook):
    timer = drain_soon(system)
    reply = post(system, hook["token"], headers={"Prefer": "respond-async, wait=10"})
    timer.join()
    assert reply.status == 200 and reply.headers["preference-applied"] == "wait=10"
    assert reply.json["status"] == "success" and reply.json["output"] == {"shout": "ADA"}


def test_given_a_queued_run_that_does_not_end_in_time_then_the_usual_202_after_a_bounded_number_of_reads(system, hook):
    assert post(system, hook["token"]).status == 202  # the token and the owner's tier are known from now on
    with count_aws_calls() as calls:
        reply = post(system, hook["token"], query={"wait": "1"})
    assert reply.status == 202 and reply.json["status"] == "accepted"
    assert "preference-applied" not in reply.headers
    assert calls == {"dynamodb.TransactWriteItems": 1, "sqs.SendMessage": 1, "dynamodb.GetItem": waits.max_reads(1)}
    assert messages_in("ExecutionQueue") == 2


def test_given_a_failing_run_when_waited_for_then_200_with_the_error(system, hook, fast_path):
    reply = post(system, hook["token"], body='{"name": 5}', headers={"Prefer": "wait=5"})
    assert reply.status == 200
    assert reply.json["status"] == "error" and reply.json["output"] is None and reply.json["errorMessage"]


@pytest.mark.parametrize("way", ["fast path", "queue path"])
def test_given_a_repeated_idempotency_key_with_a_wait_then_the_first_runs_result(system, hook, request, way):
    if way == "fast path":
        request.getfixturevalue("fast_path")
    first = post(system, hook["token"], headers={"Idempotency-Key": "order-1"})
    system.drain()
    repeat = post(system, hook["token"], body='{"name": "someone else"}', headers={"Idempotency-Key": "order-1", "Prefer": "wait=5"})
    assert repeat.status == 200
    assert repeat.json["executionId"] == first.json["executionId"]
    assert repeat.json["output"] == {"shout": "ADA"}


@pytest.mark.parametrize("wait", ["0", "26", "abc", "-1", "1.5"])
def test_given_a_wait_query_out_of_range_then_422_naming_it_and_nothing_recorded(system, hook, wait):
    reply = post(system, hook["token"], query={"wait": wait})
    assert reply.status == 422 and "query.wait" in reply.json["details"]
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 0


def test_given_a_prefer_wait_over_25_then_it_is_lowered_to_25(system, hook, fast_path):
    reply = post(system, hook["token"], headers={"Prefer": "wait=600"})
    assert reply.status == 200 and reply.headers["preference-applied"] == "wait=25"


@pytest.mark.parametrize("prefer", ["wait=0", "wait=soon", "respond-async"])
def test_given_a_prefer_header_without_a_usable_wait_then_it_is_ignored(system, hook, fast_path, prefer):
    reply = post(system, hook["token"], headers={"Prefer": prefer})
    assert reply.status == 202 and "preference-applied" not in reply.headers


def test_given_a_quick_flow_when_a_manual_run_waits_then_200_with_its_result(system, hook, fast_path):
    reply = run(system, hook["flowId"], headers={"Prefer": "wait=3"})
    assert reply.status == 200 and reply.headers["preference-applied"] == "wait=3"
    assert reply.json["output"] == {"shout": "ADA"} and set(reply.json) == RESULT_FIELDS


def test_given_a_manual_run_that_does_not_end_in_time_then_the_usual_201(system, hook):
    reply = run(system, hook["flowId"], query={"wait": "1"})
    assert reply.status == 201 and reply.json["status"] == "running"


def test_given_a_queued_manual_run_that_ends_within_the_wait_then_200(system, hook):
    timer = drain_soon(system)
    reply = run(system, hook["flowId"], query={"wait": "10"})
    timer.join()
    assert reply.status == 200 and reply.json["output"] == {"shout": "ADA"}


def test_given_a_retry_that_waits_then_200_with_its_result(system, hook, fast_path):
    first = run(system, hook["flowId"])
    path = f"/api/v1/flows/{hook['flowId']}/executions/{first.json['id']}/retry"
    reply = call(system.executions, "POST", path, headers={"Prefer": "wait=5"}, claims=ALICE)
    assert reply.status == 200 and reply.json["output"] == {"shout": "ADA"}
    assert reply.json["executionId"] != first.json["id"]


def test_given_a_wait_then_its_reads_back_off_to_one_a_second_and_end_with_the_wait():
    delays = waits.read_delays(25)
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert max(delays) == 1.0 and sum(delays) == pytest.approx(25)
    assert waits.max_reads(25) == len(delays) == 28
    assert waits.max_reads(5) == 8 and waits.max_reads(1) == 4


def test_given_an_output_that_is_not_json_then_it_is_answered_as_text():
    body = waits.result_body({"id": "e", "status": "success", "outputPayload": "plain", "durationMs": 3})
    assert json.loads(json.dumps(body))["output"] == "plain"
