"""Executions record the flow version they run; the caller's executions across flows with a cursor; deleting an
ended execution (issue 18). Through the real handlers on embedded AWS."""

from __future__ import annotations

import json

import pytest

from devstack.aws_calls import count_aws_calls

from tests.integration.test_flow_versions_and_copies import OTHER_YAML
from tests.support import ALICE, BOB, SHOUT_YAML, call, claims_for, triggers_path

PRO = claims_for("user_pat", tier="pro")


def run(system, flow_id, body=None, claims=ALICE):
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=body, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json


def edit_and_restart(system, flow_id, organism_yaml, claims=ALICE):
    system.stop_flow(flow_id, claims)
    edited = call(system.flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"organismYaml": organism_yaml}, claims=claims)
    assert edited.status == 200, edited.body
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=claims).status == 200
    return edited.json["version"]


def across(system, claims=ALICE, **query):
    return call(system.executions, "GET", "/api/v1/executions", claims=claims, query=query)


# --- flowVersion ------------------------------------------------------------------------------------------------


def test_given_a_flow_at_version_2_when_it_runs_by_hand_and_by_webhook_then_both_executions_record_version_2(system):
    flow_id = system.running_flow()
    version = edit_and_restart(system, flow_id, OTHER_YAML)
    token = system.webhook(flow_id)["webhookToken"]

    manual = run(system, flow_id, {"name": "ada"})
    delivered = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "bo"}')

    assert version == 2 and manual["flowVersion"] == 2
    assert system.execution(flow_id, delivered.json["executionId"])["flowVersion"] == 2
    system.drain()
    assert system.execution(flow_id, manual["id"])["status"] == "success"


def test_given_a_container_that_saw_version_1_when_the_flow_was_edited_and_restarted_then_the_next_run_records_version_2(system):
    flow_id = system.running_flow()
    token = system.webhook(flow_id)["webhookToken"]
    first = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "ada"}').json["executionId"]
    edit_and_restart(system, flow_id, OTHER_YAML)

    second = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "bo"}').json["executionId"]

    assert system.execution(flow_id, first)["flowVersion"] == 1
    assert system.execution(flow_id, second)["flowVersion"] == 2


def test_given_an_execution_recorded_for_version_1_when_the_flow_runs_version_2_before_it_starts_then_it_never_runs(system):
    flow_id = system.running_flow()
    queued = run(system, flow_id, {"name": "ada"})
    edit_and_restart(system, flow_id, OTHER_YAML)

    system.drain()

    ended = system.execution(flow_id, queued["id"])
    assert ended["status"] == "error" and ended["errorMessage"] == "Flow stopped before the execution started"


def test_given_an_ended_execution_when_retried_then_the_retry_records_the_version_running_now(system):
    flow_id = system.running_flow()
    original = run(system, flow_id, {"name": "ada"})
    system.drain()
    edit_and_restart(system, flow_id, OTHER_YAML)
    reply = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/{original['id']}/retry", claims=ALICE)
    assert reply.status == 201 and reply.json["flowVersion"] == 2 and original["flowVersion"] == 1


def test_given_a_schedule_trigger_when_it_fires_then_the_execution_records_the_running_version(system):
    import boto3

    from bloxserver.settings import get_settings
    from devstack.events import LambdaContext, run_handler

    flow_id = system.running_flow()
    edit_and_restart(system, flow_id, OTHER_YAML)
    cron = {"type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"}
    trigger = call(system.triggers, "POST", triggers_path(flow_id), body={"type": "schedule", "name": "D", "config": cron}, claims=ALICE).json
    schedule = boto3.client("scheduler").get_schedule(Name=f"trigger-{trigger['id']}", GroupName=get_settings().schedule_group_name)
    event = json.loads(
        schedule["Target"]["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-11-28T09:00:00Z")
        .replace("<aws.scheduler.execution-id>", "firing-1")
    )
    fired = run_handler(system.schedule, event, LambdaContext("ScheduleFunction"))
    assert fired["status"] == "accepted"
    assert system.execution(flow_id, fired["executionId"])["flowVersion"] == 2


# --- GET /api/v1/executions -------------------------------------------------------------------------------------


def test_given_executions_of_two_flows_when_listing_all_then_newest_first_across_flows_with_their_flow(system):
    first = system.running_flow(PRO, name="one")
    second = system.running_flow(PRO, name="two")
    started = [run(system, first, claims=PRO)["id"], run(system, second, claims=PRO)["id"], run(system, first, claims=PRO)["id"]]

    reply = across(system, PRO)

    assert reply.status == 200
    items = reply.json["items"]
    assert [item["id"] for item in items] == started[::-1] and reply.json["nextCursor"] is None
    assert [item["flowId"] for item in items] == [first, second, first]
    assert set(items[0]) == {"id", "flowId", "flowVersion", "status", "triggerType", "startedAt", "durationMs"}


def test_given_more_executions_than_a_page_when_following_next_cursor_then_every_one_is_seen_once(system):
    flow_id = system.running_flow(PRO)
    started = [run(system, flow_id, claims=PRO)["id"] for _ in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = across(system, PRO, **query).json
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == started[::-1]


def test_given_filters_when_listing_then_only_matching_executions(system):
    flow_id = system.running_flow(PRO)
    other = system.running_flow(PRO, name="other")
    token = system.webhook(flow_id, PRO)["webhookToken"]
    good = run(system, flow_id, {"name": "ada"}, PRO)["id"]
    bad = run(system, flow_id, {"no_name": 1}, PRO)["id"]
    hooked = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "x"}').json["executionId"]
    elsewhere = run(system, other, {"name": "ada"}, PRO)["id"]
    system.drain()

    def ids(**query):
        reply = across(system, PRO, **query)
        assert reply.status == 200, reply.body
        return [item["id"] for item in reply.json["items"]]

    assert ids(flow_id=flow_id) == [hooked, bad, good]
    assert ids(status="error") == [bad]
    assert ids(trigger_type="webhook") == [hooked]
    assert ids(flow_id=flow_id, status="success", trigger_type="manual") == [good]
    assert ids(flow_id=other) == [elsewhere]
    assert ids(since="2999-01-01T00:00:00Z") == []
    assert ids(until="2000-01-01T00:00:00Z") == []


def test_given_a_deep_page_when_listing_then_it_costs_one_query_whatever_the_filters(system):
    flow_id = system.running_flow(PRO)
    for _ in range(4):
        run(system, flow_id, claims=PRO)
    cursor = across(system, PRO, limit="3").json["nextCursor"]
    for query in ({"cursor": cursor, "limit": "3"}, {"status": "running", "trigger_type": "manual", "cursor": cursor}):
        with count_aws_calls() as calls:
            assert len(across(system, PRO, **query).json["items"]) == 1
        assert calls == {"dynamodb.Query": 1}, calls


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"status": "done"}, "query.status"),
        ({"trigger_type": "email"}, "query.trigger_type"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "soon"}, "query.until"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "query.until"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"cursor": "%%%"}, "query.cursor"),
        ({"flow_id": "not-a-uuid"}, "query.flow_id"),
    ],
)
def test_given_a_bad_filter_when_listing_then_422_names_it(system, query, named):
    reply = across(system, **query)
    assert reply.status == 422 and named in reply.json["details"], reply.body


def test_given_another_users_executions_then_they_are_never_listed_and_their_flow_is_404(system):
    flow_id = system.running_flow()
    run(system, flow_id)
    assert across(system, BOB).json == {"items": [], "nextCursor": None}
    reply = across(system, BOB, flow_id=flow_id)
    assert reply.status == 404


# --- DELETE an execution ----------------------------------------------------------------------------------------


def test_given_an_ended_execution_when_deleted_then_it_and_its_logs_are_gone_and_stats_unchanged(system):
    flow_id = system.running_flow()
    execution = run(system, flow_id, {"name": "ada"})
    system.drain()
    path = f"/api/v1/flows/{flow_id}/executions/{execution['id']}"
    stats = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json
    logs_query = {"execution_id": execution["id"]}
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query=logs_query).json

    assert call(system.executions, "DELETE", path, claims=ALICE).status == 204

    assert call(system.executions, "GET", path, claims=ALICE).status == 404
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query=logs_query).json == []
    assert call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json == stats
    assert across(system).json["items"] == []
    assert call(system.executions, "DELETE", path, claims=ALICE).status == 404


def test_given_a_running_execution_when_deleted_then_409_and_it_stays(system):
    flow_id = system.running_flow()
    execution = run(system, flow_id)
    path = f"/api/v1/flows/{flow_id}/executions/{execution['id']}"
    reply = call(system.executions, "DELETE", path, claims=ALICE)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert call(system.executions, "GET", path, claims=ALICE).json["status"] == "running"


def test_given_a_cancelled_execution_when_deleted_then_it_leaves_the_cancelled_listing(system):
    flow_id = system.running_flow()
    execution = run(system, flow_id)
    assert call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/{execution['id']}/cancel", claims=ALICE).status == 200
    assert call(system.executions, "DELETE", f"/api/v1/flows/{flow_id}/executions/{execution['id']}", claims=ALICE).status == 204
    listing = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE, query={"reason": "cancelled"})
    assert listing.json["items"] == []


def test_given_another_users_execution_when_deleted_then_404_and_it_stays(system):
    flow_id = system.running_flow()
    execution = run(system, flow_id, {"name": "ada"})
    system.drain()
    path = f"/api/v1/flows/{flow_id}/executions/{execution['id']}"
    assert call(system.executions, "DELETE", path, claims=BOB).status == 404
    assert call(system.executions, "GET", path, claims=ALICE).status == 200


# --- export → import round trip ---------------------------------------------------------------------------------


def test_given_an_exported_flow_when_another_user_imports_it_then_it_starts_and_its_webhook_runs(system):
    flow_id = system.running_flow(organism_yaml=SHOUT_YAML)
    system.webhook(flow_id, name="Inbound")
    document = call(system.flows, "GET", f"/api/v1/flows/{flow_id}/export", claims=ALICE).json

    imported = call(system.flows, "POST", "/api/v1/flows/import", body=document, claims=BOB)
    assert imported.status == 201, imported.body
    new_id = imported.json["id"]
    assert call(system.flows, "POST", f"/api/v1/flows/{new_id}/start", claims=BOB).status == 200
    [hook] = call(system.triggers, "GET", triggers_path(new_id), claims=BOB).json
    delivered = call(system.ingress, "POST", f"/webhooks/{hook['webhookToken']}", body='{"name": "ada"}')
    assert delivered.status == 202
    system.drain()

    execution = system.execution(new_id, delivered.json["executionId"], BOB)
    assert execution["status"] == "success" and json.loads(execution["outputPayload"]) == {"shout": "ADA"}
    assert execution["flowVersion"] == 1
