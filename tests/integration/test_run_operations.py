"""Operating runs through the real handlers on embedded AWS: retry, bulk retry, cancel, dead letters found again,
and logs followed live while the executor runs a flow that waits on a slow local HTTP server."""

from __future__ import annotations

import json
import textwrap
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from bloxserver import clock
from tests.executions_support import messages_in
from tests.integration.test_ingress import set_month_count
from tests.support import ALICE, BOB, call
from tests.unit.engine.engine_fakes import LocalServer, Reply

FAILING_INPUT = {"no_name": 1}  # SHOUT_YAML's transform needs `name`: the run ends error


@pytest.fixture
def flow_id(system):
    return system.running_flow()


def run(system, flow_id, body=None, claims=ALICE):
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=body, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json["id"]


def retry(system, flow_id, execution_id, claims=ALICE, headers=None):
    path = f"/api/v1/flows/{flow_id}/executions/{execution_id}/retry"
    return call(system.executions, "POST", path, claims=claims, headers=headers)


def cancel(system, flow_id, execution_id, claims=ALICE):
    return call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/{execution_id}/cancel", claims=claims)


def bulk_retry(system, flow_id, body, claims=ALICE):
    return call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/bulk-retry", body=body, claims=claims)


def listing(system, flow_id, **query):
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE, query=query)
    assert reply.status == 200, reply.body
    return reply.json


def stats_of(system, flow_id):
    return call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json


def logs(system, flow_id, claims=ALICE, **query):
    return call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=claims, query=query)


def failed_runs(system, flow_id, count):
    ids = [run(system, flow_id, body=FAILING_INPUT) for _ in range(count)]
    system.drain()
    assert all(system.execution(flow_id, execution_id)["status"] == "error" for execution_id in ids)
    return ids


# Retry


def test_given_an_ended_execution_when_retried_then_a_new_run_with_its_input_linked_both_ways(system, flow_id):
    original = run(system, flow_id, body={"name": "ada"})
    system.drain()
    reply = retry(system, flow_id, original)
    assert reply.status == 201, reply.body
    retried = reply.json
    assert retried["id"] != original and retried["status"] == "running"
    assert retried["retryOf"] == original and json.loads(retried["inputPayload"]) == {"name": "ada"}
    assert retried["triggerType"] == "manual"
    assert system.execution(flow_id, original)["retriedBy"] == retried["id"]
    system.drain()
    assert json.loads(system.execution(flow_id, retried["id"])["outputPayload"]) == {"shout": "ADA"}
    assert stats_of(system, flow_id)["executionsTotal"] == 2


def test_given_two_retries_then_the_original_names_the_latest(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    first, second = (retry(system, flow_id, original).json["id"] for _ in range(2))
    assert first != second
    assert system.execution(flow_id, original)["retriedBy"] == second


def test_given_an_idempotency_key_when_a_retry_is_repeated_then_the_first_retry_answers(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    first = retry(system, flow_id, original, headers={"Idempotency-Key": "retry-1"})
    again = retry(system, flow_id, original, headers={"Idempotency-Key": "retry-1"})
    assert first.status == again.status == 201 and first.json["id"] == again.json["id"]
    assert listing(system, flow_id)["total"] == 2


def test_given_a_malformed_idempotency_key_when_retried_then_400_and_nothing_started(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    reply = retry(system, flow_id, original, headers={"Idempotency-Key": "x" * 256})
    assert reply.status == 400 and reply.json["details"] == {"header.idempotency-key": "invalid"}
    assert listing(system, flow_id)["total"] == 1


def test_given_an_execution_still_running_when_retried_then_409_and_nothing_started(system, flow_id):
    queued = run(system, flow_id, body={"name": "ada"})
    reply = retry(system, flow_id, queued)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert reply.json["details"] == {"status": "running"}
    assert listing(system, flow_id)["total"] == 1


def test_given_a_stopped_flow_when_retried_then_409(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    system.stop_flow(flow_id)
    reply = retry(system, flow_id, original)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert reply.json["details"] == {"status": "stopped"}


def test_given_another_users_or_an_unknown_execution_when_retried_or_cancelled_then_404(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    queued = run(system, flow_id, body={"name": "ada"})
    for execution_id in (original, queued):
        assert retry(system, flow_id, execution_id, claims=BOB).status == 404
        assert cancel(system, flow_id, execution_id, claims=BOB).status == 404
    unknown = str(uuid.uuid4())
    assert retry(system, flow_id, unknown).status == 404 and cancel(system, flow_id, unknown).status == 404
    assert retry(system, flow_id, "not-a-uuid").status == 422
    assert system.execution(flow_id, queued)["status"] == "running"
    assert bulk_retry(system, flow_id, {"status": "error", "since": "2020-01-01T00:00:00Z"}, claims=BOB).status == 404


def test_given_the_quota_is_used_up_when_retried_then_429(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    set_month_count(ALICE, 1000)
    reply = retry(system, flow_id, original)
    assert reply.status == 429 and reply.json["code"] == "quota_exceeded"
    assert "retriedBy" not in system.execution(flow_id, original) or system.execution(flow_id, original)["retriedBy"] is None


def test_given_parallel_retries_at_the_quota_edge_then_exactly_the_allowance_starts(system, flow_id):
    (original,) = failed_runs(system, flow_id, 1)
    set_month_count(ALICE, 995)  # free tier: 1000 a month, 5 left
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: retry(system, flow_id, original), range(20)))
    assert sorted(reply.status for reply in replies) == [201] * 5 + [429] * 15
    assert listing(system, flow_id)["total"] == 6


# Bulk retry


def test_given_failed_executions_when_bulk_retried_then_the_oldest_are_retried_first(system, flow_id):
    since = clock.now_iso()
    failed = failed_runs(system, flow_id, 4)
    run(system, flow_id, body={"name": "ok"})
    system.drain()
    reply = bulk_retry(system, flow_id, {"status": "error", "since": since, "limit": 3})
    assert reply.status == 202, reply.body
    assert reply.json["queued"] == 3 and reply.json["details"] is None
    retried = reply.json["executionIds"]
    assert [system.execution(flow_id, execution_id)["retryOf"] for execution_id in retried] == failed[:3]
    assert system.execution(flow_id, failed[3]).get("retriedBy") is None
    # an original already retried is not retried again; the rest still are
    again = bulk_retry(system, flow_id, {"status": "error", "since": since, "limit": 3})
    assert again.json["queued"] == 1
    assert system.execution(flow_id, again.json["executionIds"][0])["retryOf"] == failed[3]


def test_given_no_match_when_bulk_retried_then_202_with_nothing_queued(system, flow_id):
    failed_runs(system, flow_id, 1)
    later = "2999-01-01T00:00:00Z"
    for body in ({"status": "timeout", "since": "2020-01-01T00:00:00Z"}, {"status": "error", "since": later}):
        reply = bulk_retry(system, flow_id, body)
        assert reply.status == 202 and reply.json == {"queued": 0, "executionIds": [], "details": None}


def test_given_the_quota_edge_when_bulk_retried_then_the_rest_are_not_started_and_details_say_how_many(
    system, flow_id
):
    since = clock.now_iso()
    failed = failed_runs(system, flow_id, 5)
    set_month_count(ALICE, 998)
    reply = bulk_retry(system, flow_id, {"status": "error", "since": since, "limit": 10})
    assert reply.status == 202
    assert reply.json["queued"] == 2
    assert reply.json["details"]["notStarted"] == 3 and reply.json["details"]["code"] == "quota_exceeded"
    assert reply.json["details"]["limit"] == 1000
    assert [system.execution(flow_id, i)["retryOf"] for i in reply.json["executionIds"]] == failed[:2]


def test_given_a_retry_storm_at_the_quota_edge_then_exactly_the_allowance_is_queued(system, flow_id):
    since = clock.now_iso()
    failed_runs(system, flow_id, 10)
    set_month_count(ALICE, 996)  # 4 left
    body = {"status": "error", "since": since, "limit": 10}
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: bulk_retry(system, flow_id, body), range(6)))
    assert all(reply.status == 202 for reply in replies)
    queued = [execution_id for reply in replies for execution_id in reply.json["executionIds"]]
    assert len(queued) == len(set(queued)) == 4
    originals = [system.execution(flow_id, execution_id)["retryOf"] for execution_id in queued]
    assert len(set(originals)) == 4  # no original retried twice
    assert listing(system, flow_id)["total"] == 14
    assert messages_in("ExecutionQueue") == 4


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"status": "success", "since": "2020-01-01T00:00:00Z"}, "body.status"),
        ({"status": "error"}, "body.since"),
        ({"status": "error", "since": "yesterday"}, "body.since"),
        ({"status": "error", "since": "2020-01-01T00:00:00Z", "limit": 0}, "body.limit"),
        ({"status": "error", "since": "2020-01-01T00:00:00Z", "limit": 101}, "body.limit"),
    ],
)
def test_given_a_bad_bulk_retry_request_then_422_naming_the_field(system, flow_id, body, named):
    reply = bulk_retry(system, flow_id, body)
    assert reply.status == 422 and named in reply.json["details"]


def test_given_a_stopped_flow_when_bulk_retried_then_409(system, flow_id):
    failed_runs(system, flow_id, 1)
    system.stop_flow(flow_id)
    reply = bulk_retry(system, flow_id, {"status": "error", "since": "2020-01-01T00:00:00Z"})
    assert reply.status == 409 and reply.json["details"] == {"status": "stopped"}


# Cancel


def test_given_a_queued_execution_when_cancelled_then_it_ends_error_cancelled_and_never_runs(system, flow_id):
    queued = run(system, flow_id, body={"name": "ada"})
    reply = cancel(system, flow_id, queued)
    assert reply.status == 200, reply.body
    cancelled = reply.json
    assert cancelled["status"] == "error" and cancelled["errorMessage"] == "cancelled" and cancelled["cancelled"] is True
    assert cancelled["completedAt"] is not None and cancelled["durationMs"] >= 0
    assert system.drain() == 1
    assert system.execution(flow_id, queued) == {**cancelled, "reason": "cancelled"}
    assert logs(system, flow_id, execution_id=queued).json == []
    stats = stats_of(system, flow_id)
    assert (stats["executionsTotal"], stats["executionsError"], stats["executionsSuccess"]) == (1, 1, 0)
    assert listing(system, flow_id, status="error", reason="cancelled")["total"] == 1


def test_given_a_cancelled_execution_when_cancelled_again_then_the_same_answer(system, flow_id):
    queued = run(system, flow_id, body={"name": "ada"})
    first = cancel(system, flow_id, queued)
    second = cancel(system, flow_id, queued)
    assert first.status == second.status == 200
    assert second.json["id"] == first.json["id"] and second.json["completedAt"] == first.json["completedAt"]
    assert stats_of(system, flow_id)["executionsError"] == 1


def test_given_an_ended_execution_when_cancelled_then_409(system, flow_id):
    done = run(system, flow_id, body={"name": "ada"})
    system.drain()
    reply = cancel(system, flow_id, done)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert reply.json["details"] == {"status": "success"}
    assert system.execution(flow_id, done)["status"] == "success"


def test_given_parallel_cancels_then_one_end_is_recorded(system, flow_id):
    queued = run(system, flow_id, body={"name": "ada"})
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: cancel(system, flow_id, queued), range(6)))
    assert {reply.status for reply in replies} == {200}
    assert len({reply.json["completedAt"] for reply in replies}) == 1
    stats = stats_of(system, flow_id)
    assert (stats["executionsTotal"], stats["executionsError"]) == (1, 1)


def test_given_a_cancel_racing_the_runs_natural_end_then_exactly_one_end_is_counted(system, flow_id):
    ids = [run(system, flow_id, body={"name": f"n{i}"}) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        drained = pool.submit(system.drain)
        replies = list(pool.map(lambda execution_id: cancel(system, flow_id, execution_id), ids))
        drained.result()
    for execution_id, reply in zip(ids, replies):
        execution = system.execution(flow_id, execution_id)
        if reply.status == 200:  # the cancel won: the run's own end was dropped (or it never ran)
            assert execution["status"] == "error" and execution["cancelled"] is True
        else:  # the run ended first
            assert reply.status == 409 and execution["status"] == "success" and execution["cancelled"] is None
    cancelled = sum(reply.status == 200 for reply in replies)
    stats = stats_of(system, flow_id)
    assert stats["executionsTotal"] == 8
    assert (stats["executionsError"], stats["executionsSuccess"]) == (cancelled, 8 - cancelled)
    assert listing(system, flow_id, status="running")["total"] == 0


# A flow that waits on a local HTTP server until the test lets it answer.

def calling_yaml(url: str) -> str:
    return textwrap.dedent(f"""
        organism: {{name: slow caller}}
        listeners:
          - name: call
            description: waits on a slow peer
            handler: http
            config: {{url: "{url}/slow", timeout_seconds: 60}}
            peers: [done]
          - name: done
            description: the end
            handler: output
    """)


@pytest.fixture
def slow_peer(monkeypatch):
    """A local HTTP server whose answers wait until `release` is set; `called` is set once a request arrived."""
    from bloxserver.engine import EngineSettings, runtime

    monkeypatch.setattr(runtime, "get_engine_settings", lambda: EngineSettings(allowed_private_cidrs=("127.0.0.1/32",)))
    release, called = threading.Event(), threading.Event()

    def respond(_request):
        called.set()
        release.wait(30)
        return Reply(body={"ok": True})

    with LocalServer(respond) as server:
        server.release, server.called = release, called
        yield server
        release.set()


def test_given_a_running_execution_when_cancelled_then_it_stops_at_its_next_step_and_counts_once(system, slow_peer):
    flow_id = system.running_flow(organism_yaml=calling_yaml(slow_peer.url), name="Slow")
    execution_id = run(system, flow_id)
    with ThreadPoolExecutor(1) as pool:
        delivery = pool.submit(system.deliver)
        assert slow_peer.called.wait(20)  # the run waits on the peer
        reply = cancel(system, flow_id, execution_id)
        assert reply.status == 200 and reply.json["cancelled"] is True
        assert delivery.result(timeout=20) == 1  # the run stopped without the peer answering
        peer_answered = slow_peer.release.is_set()
    assert not peer_answered
    execution = system.execution(flow_id, execution_id)
    assert execution["status"] == "error" and execution["errorMessage"] == "cancelled"
    messages = [entry["message"] for entry in logs(system, flow_id, execution_id=execution_id).json]
    assert messages[:2] == ["execution finished: error", "execution cancelled"]
    stats = stats_of(system, flow_id)
    assert (stats["executionsTotal"], stats["executionsError"], stats["executionsSuccess"]) == (1, 1, 0)
    assert messages_in("ExecutionQueue") == 0


# Live logs


def test_given_a_running_flow_that_waits_on_a_slow_server_then_a_follower_sees_its_records_as_they_are_written(
    system, slow_peer
):
    flow_id = system.running_flow(organism_yaml=calling_yaml(slow_peer.url), name="Slow")
    execution_id = run(system, flow_id)
    seen: list[str] = []
    cursor = ""
    with ThreadPoolExecutor(1) as pool:
        delivery = pool.submit(system.deliver)
        # while the run waits on the peer, its records so far reach the follower
        while "listener 'call' invoked" not in seen:
            reply = logs(system, flow_id, execution_id=execution_id, after=cursor, wait="5")
            assert reply.status == 200, reply.body
            seen += [entry["message"] for entry in reply.json]
            cursor = reply.headers["x-next-cursor"]
            assert not delivery.done()
        assert seen == ["execution started: flow 'slow caller', entry 'call'", "listener 'call' invoked"]
        assert not slow_peer.release.is_set()
        slow_peer.release.set()
        # then the rest, in order, to the end record; nothing twice
        while "execution finished: success" not in seen:
            reply = logs(system, flow_id, execution_id=execution_id, after=cursor, wait="5")
            seen += [entry["message"] for entry in reply.json]
            cursor = reply.headers["x-next-cursor"]
        assert delivery.result(timeout=20) == 1
    assert seen[2:] == [
        "http GET " + slow_peer.url + "/slow -> 200",
        "listener 'done' invoked",
        "execution finished: success",
    ]
    # the whole log, newest first, is the same records
    everything = logs(system, flow_id, execution_id=execution_id).json
    assert [entry["message"] for entry in everything] == seen[::-1]
    # following past the end: nothing more, answered at once since the execution ended
    reply = logs(system, flow_id, execution_id=execution_id, after=cursor, wait="20")
    assert reply.json == [] and reply.headers["x-next-cursor"] == cursor


def test_given_a_newest_first_read_then_its_cursor_follows_from_the_newest_record(system, flow_id):
    execution_id = run(system, flow_id, body={"name": "ada"})
    assert logs(system, flow_id, execution_id=execution_id).headers["x-next-cursor"] == "0.0"
    system.drain()
    first = logs(system, flow_id, execution_id=execution_id)
    assert len(first.json) == 4
    after = logs(system, flow_id, execution_id=execution_id, after=first.headers["x-next-cursor"])
    assert after.json == [] and after.headers["x-next-cursor"] == first.headers["x-next-cursor"]
    # from the start, in emission order, a page at a time
    page = logs(system, flow_id, execution_id=execution_id, after="", limit="3")
    rest = logs(system, flow_id, execution_id=execution_id, after=page.headers["x-next-cursor"], limit="3")
    assert [entry["message"] for entry in page.json + rest.json] == [entry["message"] for entry in first.json[::-1]]
    assert logs(system, flow_id, execution_id=execution_id, after="0", limit="3").json == page.json
    # the level filter applies, and the cursor passes over what it leaves out
    errors = logs(system, flow_id, execution_id=execution_id, after="", level="error")
    assert errors.json == [] and errors.headers["x-next-cursor"] == first.headers["x-next-cursor"]
    assert "x-next-cursor" not in logs(system, flow_id).headers


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"after": "0.0"}, "query.execution_id"),
        ({"execution_id": "{e}", "after": "abc"}, "query.after"),
        ({"execution_id": "{e}", "after": "1.2.3"}, "query.after"),
        ({"execution_id": "{e}", "wait": "21"}, "query.wait"),
        ({"execution_id": "{e}", "wait": "-1"}, "query.wait"),
    ],
)
def test_given_a_bad_follow_request_then_422_naming_it(system, flow_id, query, named):
    execution_id = run(system, flow_id, body={"name": "ada"})
    reply = logs(system, flow_id, **{name: value.format(e=execution_id) for name, value in query.items()})
    assert reply.status == 422 and named in reply.json["details"]


def test_given_another_users_flow_when_following_logs_then_404(system, flow_id):
    execution_id = run(system, flow_id, body={"name": "ada"})
    assert logs(system, flow_id, claims=BOB, execution_id=execution_id, after="").status == 404


# Dead letters


def test_given_a_dead_lettered_execution_then_the_reason_filter_finds_it_and_it_can_be_retried(
    system, flow_id, monkeypatch
):
    import executor_logic

    kept = run(system, flow_id, body={"name": "ok"})
    system.drain()
    lost = run(system, flow_id, body={"name": "ada"})

    def broken(*_args, **_kwargs):
        raise RuntimeError("database unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(executor_logic, "process", broken)
        while system.deliver():
            pass
    system.deliver(handler=system.deadletter, queue="ExecutionDeadLetterQueue")
    dead = system.execution(flow_id, lost)
    assert dead["status"] == "error" and dead["reason"] == "dead_letter"
    found = listing(system, flow_id, status="error", reason="dead_letter")
    assert found["total"] == 1 and [item["id"] for item in found["items"]] == [lost]
    assert listing(system, flow_id, reason="dead_letter", trigger_type="manual")["total"] == 1
    assert listing(system, flow_id, reason="dead_letter", trigger_type="webhook")["total"] == 0
    assert listing(system, flow_id, status="success", reason="dead_letter") == listing(system, flow_id, status="timeout", reason="dead_letter")
    assert listing(system, flow_id, status="success", reason="dead_letter")["items"] == []
    assert listing(system, flow_id, status="error")["total"] == 1
    assert system.execution(flow_id, kept).get("reason") is None
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE, query={"reason": "lost"})
    assert reply.status == 422 and "query.reason" in reply.json["details"]
    retried = retry(system, flow_id, lost)
    assert retried.status == 201
    system.drain()
    assert system.execution(flow_id, retried.json["id"])["status"] == "success"


def test_given_a_long_run_stored_as_it_goes_then_its_log_reads_back_as_if_stored_at_its_end(aws):
    from datetime import UTC, datetime, timedelta

    import live_run
    from bloxserver import run_logs

    from bloxserver.dal import execution_logs, executions as execution_store
    from bloxserver.engine import EngineLog

    # given a run that emitted more records than a log keeps, stored as it went
    execution = {"id": str(uuid.uuid4()), "flowId": str(uuid.uuid4()), "expiresAt": 4_000_000_000}
    claim = execution_store.Claim(execution, clock.now_iso(), "marker", "deadline")
    live = live_run.LiveRun(claim)
    long_ago = datetime.now(UTC) - timedelta(seconds=10)
    emitted = [
        EngineLog(long_ago + timedelta(milliseconds=n), "info", f"record {n}", {"executionId": execution["id"]})
        for n in range(250)
    ]
    for end in (10, 120, 250):  # three steps of the run
        live.store_progress(emitted[:end])
    assert live.stored_records == run_logs.STORED_AS_EMITTED and live.stored_items == 3
    # when its end stores the rest
    execution_logs.put_many([live.final_items(emitted)])
    # then the stored log is what storing it all at the end gives, read newest first or followed from the start
    expected = run_logs.log_items(emitted)
    newest, _ = execution_logs.newest_records(execution["flowId"], execution["id"], ("info", "warning"), 1000, 0)
    assert newest == expected[::-1]
    followed, end = execution_logs.records_after(
        execution["flowId"], execution["id"], execution_logs.Position(), ("info", "warning"), 1000, 0
    )
    assert followed == expected and end == execution_logs.Position(4)
