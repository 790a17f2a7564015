"""The executions API through the real handler: listing with filters and exact totals, one execution, stats,
manual runs, logs, retention and isolation."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from bloxserver import clock
from tests.support import ALICE, BOB, call


@pytest.fixture
def flow_id(system):
    return system.running_flow()


def run(system, flow_id, body=None, claims=ALICE, query=None, headers=None):
    path = f"/api/v1/flows/{flow_id}/executions/run"
    return call(system.executions, "POST", path, body=body, claims=claims, query=query, headers=headers)


def listing(system, flow_id, claims=ALICE, **query):
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=claims, query=query)
    assert reply.status == 200, reply.body
    return reply.json


def test_given_a_running_flow_when_run_manually_then_201_running_execution_with_the_body_as_input(system, flow_id):
    reply = run(system, flow_id, body={"name": "ada"})
    assert reply.status == 201
    execution = reply.json
    assert execution["status"] == "running" and execution["triggerType"] == "manual"
    assert execution["triggerId"] is None and json.loads(execution["inputPayload"]) == {"name": "ada"}
    assert uuid.UUID(execution["id"]).version == 7
    system.drain()
    assert json.loads(system.execution(flow_id, execution["id"])["outputPayload"]) == {"shout": "ADA"}


def test_given_the_input_payload_query_parameter_then_it_is_the_input(system, flow_id):
    reply = run(system, flow_id, query={"input_payload": '{"name": "q"}'})
    assert reply.status == 201 and reply.json["inputPayload"] == '{"name": "q"}'


@pytest.mark.parametrize(
    ("input_payload", "named"),
    [('{"name": "\\ud800"}', "not valid Unicode"), ("[" * 300 + "]" * 300, "nesting deeper than 256 levels")],
)
def test_given_input_payload_json_a_flow_cannot_take_then_422_and_nothing_recorded(system, flow_id, input_payload, named):
    reply = run(system, flow_id, query={"input_payload": input_payload})
    assert reply.status == 422 and named in reply.json["details"]["query.input_payload"]
    assert listing(system, flow_id)["total"] == 0


def test_given_input_payload_text_that_is_not_json_then_it_enters_as_text(system, flow_id):
    reply = run(system, flow_id, query={"input_payload": '{"a": NaN'})
    assert reply.status == 201 and reply.json["inputPayload"] == '{"a": NaN'


def test_given_no_input_then_the_execution_has_none(system, flow_id):
    assert run(system, flow_id).json["inputPayload"] is None


def test_given_both_a_body_and_input_payload_then_400(system, flow_id):
    reply = run(system, flow_id, body={"a": 1}, query={"input_payload": "{}"})
    assert reply.status == 400 and "input_payload" in reply.json["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{not json", "Expecting property name"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[1e999]", "too large"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ("[" * 50_000, "nests too deeply"),
        ('{"n": ' + "9" * 5000 + "}", "a number of more than 4300 digits"),
        ("[" * 300 + "]" * 300, "nesting deeper than 256 levels"),
    ],
    ids=[
        "malformed", "NaN", "overflowing number", "nested past the parser", "unclosed and deep", "5000 digits",
        "nested past what a flow takes",
    ],
)
def test_given_a_body_that_is_not_json_then_422_naming_the_problem_and_nothing_recorded(system, flow_id, body, named):
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=body, claims=ALICE)
    assert reply.status == 422 and reply.json["code"] == "validation_error"
    assert named in reply.json["details"]["body"]
    assert listing(system, flow_id)["total"] == 0


@pytest.mark.parametrize("blank", ["", "  "])
def test_given_a_blank_input_payload_then_the_input_is_null_as_for_a_webhook(system, flow_id, blank):
    reply = run(system, flow_id, query={"input_payload": blank})
    assert reply.status == 201 and reply.json["inputPayload"] is None


def test_given_a_stopped_flow_when_run_then_409(system, flow_id):
    system.stop_flow(flow_id)
    reply = run(system, flow_id)
    assert reply.status == 409 and reply.json["details"] == {"status": "stopped"}


def test_given_another_users_flow_when_run_then_404(system, flow_id):
    assert run(system, flow_id, claims=BOB).status == 404
    assert run(system, str(uuid.uuid4())).status == 404


def test_given_an_idempotency_key_when_a_run_is_repeated_then_the_first_run_answers_as_it_is_now(system, flow_id):
    first = run(system, flow_id, body={"name": "ada"}, headers={"Idempotency-Key": "click-1"})
    system.drain()
    again = run(system, flow_id, body={"name": "bob"}, headers={"Idempotency-Key": "click-1"})
    other = run(system, flow_id, body={"name": "bob"}, headers={"Idempotency-Key": "click-2"})
    assert first.status == again.status == other.status == 201
    assert again.json["id"] == first.json["id"] != other.json["id"]
    assert again.json["status"] == "success" and json.loads(again.json["outputPayload"]) == {"shout": "ADA"}
    assert listing(system, flow_id)["total"] == 2


def test_given_parallel_runs_with_one_idempotency_key_then_one_execution(system, flow_id):
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: run(system, flow_id, headers={"Idempotency-Key": "k"}), range(10)))
    assert {reply.status for reply in replies} == {201}
    assert len({reply.json["id"] for reply in replies}) == 1
    assert listing(system, flow_id)["total"] == 1


def test_given_another_users_key_when_run_on_this_flow_then_404_and_the_owners_run_stays_private(system, flow_id):
    assert run(system, flow_id, headers={"Idempotency-Key": "shared"}).status == 201
    reply = run(system, flow_id, claims=BOB, headers={"Idempotency-Key": "shared"})
    assert reply.status == 404 and "id" not in reply.json


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\tkey"])
def test_given_a_malformed_idempotency_key_when_run_then_400_and_nothing_recorded(system, flow_id, key):
    reply = run(system, flow_id, headers={"Idempotency-Key": key})
    assert reply.status == 400 and reply.json["details"] == {"header.idempotency-key": "invalid"}
    assert listing(system, flow_id)["total"] == 0


def test_given_the_quota_is_used_up_when_run_then_429(system, flow_id):
    from tests.integration.test_ingress import set_month_count

    set_month_count(ALICE, 1000)
    reply = run(system, flow_id)
    assert reply.status == 429 and reply.json["code"] == "quota_exceeded" and "retry-after" in reply.headers


def test_given_executions_when_listing_then_newest_first_with_exact_total_and_pages(system, flow_id):
    ids = [run(system, flow_id, body={"name": f"n{i}"}).json["id"] for i in range(5)]
    first = listing(system, flow_id, page="1", page_size="2")
    assert first["total"] == 5 and first["hasMore"] is True and first["pageSize"] == 2
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    last = listing(system, flow_id, page="3", page_size="2")
    assert [item["id"] for item in last["items"]] == [ids[0]] and last["hasMore"] is False
    assert set(first["items"][0]) == {"id", "status", "triggerType", "startedAt", "durationMs"}
    assert listing(system, flow_id)["pageSize"] == 50


def test_given_mixed_statuses_and_triggers_when_filtering_then_items_and_totals_match_each_filter(system, flow_id):
    hook = system.webhook(flow_id)
    good = [run(system, flow_id, body={"name": "a"}).json["id"] for _ in range(2)]
    bad = run(system, flow_id, body={"other": 1}).json["id"]
    webhook_ok = call(system.ingress, "POST", f"/webhooks/{hook['webhookToken']}", body='{"name": "w"}').json["executionId"]
    system.drain()
    still_running = run(system, flow_id, body={"name": "later"}).json["id"]

    def ids(**query):
        page = listing(system, flow_id, **query)
        assert page["total"] == len(page["items"])
        return [item["id"] for item in page["items"]]

    assert ids(status="success") == [webhook_ok, *good[::-1]]
    assert ids(status="error") == [bad]
    assert ids(status="running") == [still_running]
    assert ids(trigger_type="webhook") == [webhook_ok]
    assert ids(trigger_type="manual") == [still_running, bad, *good[::-1]]
    assert ids(status="success", trigger_type="manual") == good[::-1]
    assert ids(status="timeout") == []
    assert listing(system, flow_id)["total"] == 5


def test_given_an_unknown_filter_value_then_422_names_it(system, flow_id):
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE, query={"status": "done"})
    assert reply.status == 422 and "query.status" in reply.json["details"]


def test_given_finished_executions_then_stats_come_from_the_counters(system, flow_id):
    empty = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json
    assert empty == {
        "flowId": flow_id,
        "executionsTotal": 0,
        "executionsSuccess": 0,
        "executionsError": 0,
        "avgDurationMs": 0.0,
        "lastExecutedAt": None,
    }
    run(system, flow_id, body={"name": "a"})
    run(system, flow_id, body={"other": 1})
    system.drain()
    last = run(system, flow_id, body={"name": "b"}).json
    stats = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json
    assert stats["executionsTotal"] == 3 and stats["executionsSuccess"] == 1 and stats["executionsError"] == 1
    assert stats["lastExecutedAt"] == last["startedAt"]
    durations = [
        system.execution(flow_id, item["id"])["durationMs"]
        for item in listing(system, flow_id)["items"]
        if item["status"] != "running"
    ]
    assert stats["avgDurationMs"] == sum(durations) / 2


def test_given_another_users_flow_or_execution_then_every_route_answers_404(system, flow_id):
    execution_id = run(system, flow_id, body={"name": "a"}).json["id"]
    other_flow = system.running_flow(claims=BOB)
    for path in [
        f"/api/v1/flows/{flow_id}/executions",
        f"/api/v1/flows/{flow_id}/executions/{execution_id}",
        f"/api/v1/flows/{flow_id}/stats",
        f"/api/v1/flows/{flow_id}/logs",
    ]:
        reply = call(system.executions, "GET", path, claims=BOB)
        assert reply.status == 404, path
    # the right execution id under another (own) flow is not found either
    assert call(system.executions, "GET", f"/api/v1/flows/{other_flow}/executions/{execution_id}", claims=BOB).status == 404
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions/{uuid.uuid4()}", claims=ALICE).status == 404
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions/not-a-uuid", claims=ALICE).status == 422


def test_given_logs_when_filtering_by_level_execution_and_limit_then_newest_first_and_never_another_flows(system, flow_id):
    first = run(system, flow_id, body={"name": "a"}).json["id"]
    failed = run(system, flow_id, body={"other": 1}).json["id"]
    other_flow = system.running_flow(claims=BOB)
    foreign = run(system, other_flow, body={"name": "x"}, claims=BOB).json["id"]
    system.drain()

    def logs(**query):
        reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query=query)
        assert reply.status == 200, reply.body
        return reply.json

    everything = logs()
    assert {entry["metadata"]["executionId"] for entry in everything} == {first, failed}
    assert [entry["metadata"]["executionId"] for entry in everything][0] == failed  # newest execution first
    assert everything[0]["message"] == "execution finished: error"
    assert {entry["level"] for entry in logs(level="warning")} == {"error"}  # warning and above
    assert all(entry["level"] == "error" for entry in logs(level="error"))
    assert len(logs(level="debug")) == len(everything)
    assert {entry["metadata"]["executionId"] for entry in logs(execution_id=first)} == {first}
    assert len(logs(limit="2")) == 2
    assert logs(execution_id=foreign) == []
    bad = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query={"level": "loud"})
    assert bad.status == 422 and "query.level" in bad.json["details"]
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query={"limit": "0"}).status == 422


def test_given_an_execution_whose_logs_fill_several_items_then_they_read_back_whole_newest_first(system, flow_id):
    from bloxserver import keys
    from bloxserver.dal import execution_logs
    from bloxserver.dal.table import partition_keys

    # Given 200 records of 4,000 characters (the executor's caps), more than one item holds
    execution_id = str(uuid.uuid4())
    records = [
        {
            "timestamp": f"2026-11-28T12:00:{n // 10:02d}.{n % 10}00000Z",
            "level": "error" if n % 50 == 0 else "info",
            "message": f"record {n:03d} " + "x" * 3990,
            "metadataJson": json.dumps({"executionId": execution_id, "listener": "l"}),
        }
        for n in range(200)
    ]
    expires_at = int(clock.utc_now().timestamp()) + 3600
    execution_logs.put_records(str(flow_id), execution_id, records, expires_at)
    assert len(partition_keys(keys.flow_logs_pk(flow_id))) > 1

    def logs(**query):
        reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE,
                     query={"execution_id": execution_id, **query})
        assert reply.status == 200, reply.body
        return [entry["message"][:10] for entry in reply.json]

    # Then every record reads back, newest first, across items; level and limit apply across them too
    assert logs(limit="1000") == [f"record {n:03d}" for n in reversed(range(200))]
    assert logs(level="error") == ["record 150", "record 100", "record 050", "record 000"]
    assert logs(limit="120")[-1] == "record 080"


def test_given_executions_past_their_retention_then_reads_no_longer_show_them(system, flow_id, monkeypatch):
    execution_id = run(system, flow_id, body={"name": "a"}).json["id"]
    system.drain()
    later = clock.utc_now() + timedelta(days=32)
    monkeypatch.setattr(clock, "utc_now", lambda: later)
    page = listing(system, flow_id)
    assert page["total"] == 0 and page["items"] == []
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions/{execution_id}", claims=ALICE).status == 404
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE).json == []
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json["executionsTotal"] == 0


def test_given_a_json_body_that_is_not_utf8_when_run_then_422_and_nothing_recorded(system, flow_id):
    # Given a body within the size cap that is JSON-shaped but not UTF-8 (each bad byte would grow 3× if replaced)
    body = b'"' + b"\xff" * (200 * 1024) + b'"'
    # When it is run
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=body, claims=ALICE)
    # Then the client is told its input is invalid (not a 500), and nothing is recorded
    assert reply.status == 422, reply.body
    listing = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE).json
    assert listing["total"] == 0
