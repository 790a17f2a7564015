"""Failure alerts (docs/alerts.md): a flow's `alerts` are checked when set; an execution that ends failing, by any
path, sends one POST signed as Standard Webhooks do, at most one a minute per flow (the rest counted), retried with
back-off, and a delivery that fails for good is recorded in the execution's logs.

The table's stream reaches the alerts function here as the local stack delivers it (devstack/stream_events.py,
from the template's event source and filters)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from svix.webhooks import Webhook

from bloxserver import clock, executions
from bloxserver.engine import get_engine_settings
from devstack.events import LambdaContext, run_handler
from devstack.resources import PHYSICAL_NAMES
from devstack.stream_events import StreamReader, deliver, stream_mappings
from tests.support import ALICE, BOB, REFUSED_CALL_YAML, call
from tests.unit.engine.engine_fakes import LocalServer, Reply

SIGNING_SECRET = "whsec_" + "c2lnbmluZy1zZWNyZXQtZm9yLWFsZXJ0cy10ZXN0cw=="


class Receiver:
    """A local alert receiver answering each POST with the next of `statuses` (then 204)."""

    def __init__(self, *statuses: int) -> None:
        pending = list(statuses)
        self.server = LocalServer(lambda _: Reply(pending.pop(0) if pending else 204))

    @property
    def url(self) -> str:
        return f"{self.server.url}/alerts?token=abc"

    @property
    def alerts(self) -> list[dict]:
        return [request.json() for request in self.server.requests]

    def verified(self) -> list[dict]:
        """Every request received, each verified with the library as a receiver would (raises if one is not)."""
        for request in self.server.requests:
            Webhook(SIGNING_SECRET).verify(request.body, {k.lower(): v for k, v in request.headers.items()})
        return self.alerts


@pytest.fixture
def receiver(loopback_allowed):
    receiver = Receiver()
    with receiver.server:
        yield receiver


@pytest.fixture
def no_back_off(monkeypatch):
    import alerts_logic

    waits: list[float] = []
    monkeypatch.setattr(alerts_logic, "back_off", waits.append)
    return waits


@pytest.fixture
def secrets_api(system):
    import secrets_handler

    reply = call(secrets_handler.handler, "PUT", "/api/v1/secrets/ALERT_KEY", body={"value": SIGNING_SECRET}, claims=ALICE)
    assert reply.status == 200, reply.body
    return secrets_handler.handler


class Stream:
    """The app table's stream from now on, handed to the alerts function as its template event says."""

    def __init__(self) -> None:
        import alerts_handler

        (self.mapping,) = [mapping for mapping in stream_mappings() if mapping.function == "AlertsFunction"]
        self.reader = StreamReader(PHYSICAL_NAMES[self.mapping.table])
        self.handler = alerts_handler.handler

    def invoke(self, event: dict) -> None:
        run_handler(self.handler, event, LambdaContext("AlertsFunction", 90))

    def deliver(self) -> int:
        """Delivers what was written since the last call; returns how many records passed the filters."""
        return deliver(self.mapping, self.reader.read(), self)


@pytest.fixture
def stream(system):
    return Stream()


def set_alerts(system, flow_id, alerts, claims=ALICE):
    return call(system.flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"alerts": alerts}, claims=claims)


def alerts_to(receiver, on=("error", "timeout")) -> dict:
    return {"on": list(on), "url": receiver.url, "secret": "secret('ALERT_KEY')"}


def failing_flow(system, receiver, on=("error", "timeout")) -> str:
    flow_id = system.running_flow(organism_yaml=REFUSED_CALL_YAML, name="Failing")
    reply = set_alerts(system, flow_id, alerts_to(receiver, on))
    assert reply.status == 200, reply.body
    return flow_id


def run(system, flow_id) -> str:
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body={"name": "ada"}, claims=ALICE)
    assert reply.status == 201, reply.body
    return reply.json["id"]


def instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def logs_of(system, flow_id, execution_id) -> list[dict]:
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", query={"execution_id": execution_id}, claims=ALICE)
    assert reply.status == 200, reply.body
    return reply.json


# --- setting alerts ---------------------------------------------------------------------------------------------


def test_given_valid_alerts_when_set_then_the_flow_shows_them_and_null_removes_them(system, secrets_api, receiver):
    flow_id = system.running_flow()
    reply = set_alerts(system, flow_id, alerts_to(receiver, ["timeout", "error", "timeout"]))
    assert reply.status == 200, reply.body
    assert reply.json["alerts"] == {"on": ["timeout", "error"], "url": receiver.url, "secret": "secret('ALERT_KEY')"}
    assert call(system.flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["alerts"]["url"] == receiver.url
    assert reply.json["status"] == "running"  # alerts may change while the flow runs

    removed = set_alerts(system, flow_id, None)
    assert removed.status == 200 and removed.json["alerts"] is None
    assert call(system.flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["alerts"] is None


@pytest.mark.parametrize(
    ("alerts", "field"),
    [
        ({"on": [], "url": "https://alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.on"),
        ({"on": ["success"], "url": "https://alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.on.0"),
        ({"url": "https://alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.on"),
        ({"on": ["error"], "url": "http://alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.url"),
        ({"on": ["error"], "url": "ftp://alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.url"),
        ({"on": ["error"], "url": "https://user:pw@alerts.example.com/", "secret": "secret('ALERT_KEY')"}, "body.alerts.url"),
        ({"on": ["error"], "url": "https://alerts.example.com:99999/", "secret": "secret('ALERT_KEY')"}, "body.alerts.url"),
        ({"on": ["error"], "url": "https://alerts.example.com/", "secret": SIGNING_SECRET}, "body.alerts.secret"),
        ({"on": ["error"], "url": "https://alerts.example.com/", "secret": "secret('NO_SUCH')"}, "body.alerts.secret"),
        ({"on": ["error"], "url": "https://alerts.example.com/", "secret": "secret('PLAIN')"}, "body.alerts.secret"),
    ],
)
def test_given_unusable_alerts_when_set_then_422_names_the_field_and_nothing_changes(
    system, secrets_api, alerts, field
):
    call(secrets_api, "PUT", "/api/v1/secrets/PLAIN", body={"value": "not a signing secret"}, claims=ALICE)
    flow_id = system.running_flow()
    reply = set_alerts(system, flow_id, alerts)
    assert reply.status == 422, reply.body
    assert field in reply.json["details"], reply.json
    assert call(system.flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["alerts"] is None


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/alerts",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/alerts",
        "https://[::ffff:10.0.0.1]/alerts",
        "https://localhost/alerts",
        "https://metadata.localhost./alerts",
    ],
)
def test_given_an_address_the_ssrf_guard_refuses_when_set_as_alert_url_then_422(system, secrets_api, url):
    flow_id = system.running_flow()
    reply = set_alerts(system, flow_id, {"on": ["error"], "url": url, "secret": "secret('ALERT_KEY')"})
    assert reply.status == 422, reply.body
    assert "not a public address" in reply.json["details"]["body.alerts.url"] or "this machine" in reply.json["details"]["body.alerts.url"]


def test_given_another_users_flow_or_secret_when_setting_alerts_then_404_or_422(system, secrets_api, receiver):
    flow_id = system.running_flow()
    bobs_flow = system.running_flow(claims=BOB)
    refused = set_alerts(system, bobs_flow, alerts_to(receiver), claims=BOB)  # ALERT_KEY is Alice's
    assert refused.status == 422 and "body.alerts.secret" in refused.json["details"]
    call(secrets_api, "PUT", "/api/v1/secrets/ALERT_KEY", body={"value": SIGNING_SECRET}, claims=BOB)
    assert set_alerts(system, flow_id, alerts_to(receiver), claims=BOB).status == 404
    assert call(system.flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["alerts"] is None


# --- sending alerts ---------------------------------------------------------------------------------------------


def test_given_a_flow_with_alerts_when_a_run_ends_error_then_exactly_one_signed_alert_is_sent(
    system, secrets_api, receiver, stream
):
    flow_id = failing_flow(system, receiver)
    execution_id = run(system, flow_id)
    system.drain()
    execution = system.execution(flow_id, execution_id)
    assert execution["status"] == "error"

    assert stream.deliver() == 1
    (alert,) = receiver.verified()
    assert alert == {
        "flowId": flow_id,
        "executionId": execution_id,
        "status": "error",
        "cancelled": False,
        "errorMessage": execution["errorMessage"],
        "startedAt": alert["startedAt"],
        "durationMs": execution["durationMs"],
        "flowVersion": execution["flowVersion"],
        "suppressedCount": 0,
    }
    assert instant(alert["startedAt"]) == instant(execution["startedAt"])
    headers = {k.lower(): v for k, v in receiver.server.requests[0].headers.items()}
    assert headers["webhook-id"] == f"alert_{execution_id}"
    assert receiver.server.requests[0].path == "/alerts?token=abc"
    assert stream.deliver() == 0  # nothing else of the run reaches the alerts function


def test_given_a_flow_with_alerts_when_a_run_succeeds_then_the_stream_filter_passes_nothing_and_nothing_is_sent(
    system, secrets_api, receiver, stream
):
    shout = system.running_flow(name="Fine")
    assert set_alerts(system, shout, alerts_to(receiver)).status == 200
    execution_id = run(system, shout)
    system.drain()
    assert system.execution(shout, execution_id)["status"] == "success"
    assert stream.deliver() == 0
    assert receiver.alerts == []


def test_given_alerts_on_timeout_only_when_a_run_ends_error_then_nothing_is_sent(
    system, secrets_api, receiver, stream
):
    failing = failing_flow(system, receiver, on=["timeout"])
    run(system, failing)
    system.drain()
    assert stream.deliver() == 1  # the error passes the stream's filter; the flow does not ask for errors
    assert receiver.alerts == []


def test_given_the_fast_path_when_a_webhook_run_is_recorded_already_failed_then_one_alert_is_sent(
    system, secrets_api, receiver, stream, fast_path
):
    # given a quick flow (run at the door) whose run fails: the shout needs a name the delivery lacks
    flow_id = system.running_flow(name="Quick")
    assert set_alerts(system, flow_id, alerts_to(receiver)).status == 200
    token = system.webhook(flow_id)["webhookToken"]
    # when a delivery is answered with the run's end: the execution is inserted already ended, never running
    reply = call(system.ingress, "POST", f"/webhooks/{token}", body={})
    assert reply.status == 202, reply.body
    assert system.execution(flow_id, reply.json["executionId"])["status"] == "error"
    assert system.drain() == 0  # nothing was queued
    # then the stream's INSERT filter passes it and one alert goes out
    assert stream.deliver() == 1
    (alert,) = receiver.verified()
    assert (alert["executionId"], alert["status"]) == (reply.json["executionId"], "error")


def test_given_a_queued_run_the_sweeper_ends_as_timeout_then_one_alert_says_timeout(
    system, secrets_api, receiver, stream
):
    import sweeper_logic

    flow_id = failing_flow(system, receiver, on=["timeout"])
    execution_id = run(system, flow_id)
    sweeper_logic.sweep(clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS - 60))
    assert sweeper_logic.sweep(clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS + 1)) == 1

    stream.deliver()
    (alert,) = receiver.verified()
    assert (alert["executionId"], alert["status"]) == (execution_id, "timeout")
    assert alert["errorMessage"].startswith("Execution timed out")


def test_given_alerts_on_cancelled_when_the_owner_cancels_a_run_then_one_alert_says_cancelled(
    system, secrets_api, receiver, stream
):
    flow_id = failing_flow(system, receiver, on=["cancelled"])
    execution_id = run(system, flow_id)
    cancelled = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/{execution_id}/cancel", claims=ALICE)
    assert cancelled.status == 200, cancelled.body

    stream.deliver()
    (alert,) = receiver.verified()
    assert (alert["status"], alert["cancelled"], alert["errorMessage"]) == ("error", True, "cancelled")


def test_given_alerts_on_error_when_the_owner_cancels_a_run_then_nothing_is_sent(
    system, secrets_api, receiver, stream
):
    flow_id = failing_flow(system, receiver, on=["error"])
    execution_id = run(system, flow_id)
    call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/{execution_id}/cancel", claims=ALICE)
    stream.deliver()
    assert receiver.alerts == []


def test_given_many_failures_within_a_minute_then_one_alert_is_sent_and_the_next_counts_the_rest(
    system, secrets_api, receiver, stream, monkeypatch
):
    flow_id = failing_flow(system, receiver)
    first_ids = [run(system, flow_id) for _ in range(4)]
    system.drain()
    stream.deliver()
    assert [alert["executionId"] for alert in receiver.verified()] == [first_ids[0]]

    a_minute_later = clock.utc_now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "utc_now", lambda: a_minute_later)
    later_id = run(system, flow_id)
    system.drain()
    stream.deliver()
    alerts = receiver.verified()
    assert [alert["executionId"] for alert in alerts] == [first_ids[0], later_id]
    assert alerts[1]["suppressedCount"] == 3


def test_given_a_failing_receiver_then_the_alert_is_retried_with_back_off_until_it_is_taken(
    system, secrets_api, loopback_allowed, stream, no_back_off
):
    import alerts_logic

    receiver = Receiver(500, 503)
    with receiver.server:
        flow_id = failing_flow(system, receiver)
        run(system, flow_id)
        system.drain()
        stream.deliver()
        alerts = receiver.verified()
    assert len(alerts) == 3 and alerts[0] == alerts[2]  # the same alert, each attempt signed anew
    assert no_back_off == list(alerts_logic.RETRY_DELAYS_SECONDS[:2])
    ids = {dict(request.headers)["webhook-id"] for request in receiver.server.requests}
    assert len(ids) == 1


def test_given_a_receiver_that_always_fails_then_the_delivery_failure_is_in_the_executions_logs(
    system, secrets_api, loopback_allowed, stream, no_back_off
):
    import alerts_logic

    receiver = Receiver(500, 500, 500, 500, 500)
    with receiver.server:
        flow_id = failing_flow(system, receiver)
        execution_id = run(system, flow_id)
        system.drain()
        stream.deliver()
    attempts = len(alerts_logic.RETRY_DELAYS_SECONDS) + 1
    assert len(receiver.server.requests) == attempts
    newest = logs_of(system, flow_id, execution_id)[0]
    assert newest["level"] == "error"
    assert newest["message"] == (
        f"failure alert to {receiver.server.url}/alerts not delivered ({attempts} attempts): answered HTTP 500"
    )
    assert "token=abc" not in json.dumps(logs_of(system, flow_id, execution_id))


def test_given_an_alert_url_that_resolves_to_a_refused_address_when_sent_then_it_is_not_retried_and_is_logged(
    system, secrets_api, receiver, stream, no_back_off, monkeypatch
):
    flow_id = failing_flow(system, receiver)  # accepted while 127.0.0.1 was allowed
    monkeypatch.delenv("BLOX_ALLOWED_PRIVATE_CIDRS")
    monkeypatch.setenv("BLOX_ALLOWED_PRIVATE_CIDRS", "")
    get_engine_settings.cache_clear()
    execution_id = run(system, flow_id)
    system.drain()
    stream.deliver()
    assert receiver.alerts == [] and no_back_off == []
    newest = logs_of(system, flow_id, execution_id)[0]
    assert "(1 attempt): refusing to connect" in newest["message"] and "non-public address" in newest["message"]
