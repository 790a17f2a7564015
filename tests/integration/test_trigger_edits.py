"""Editing triggers (name, config, enabled) and webhook request context, through the real handlers on embedded AWS
(issue 18)."""

from __future__ import annotations

import json

import boto3
import pytest

from bloxserver.settings import get_settings
from tests.support import ALICE, BOB, call, claims_for, triggers_path

PRO = claims_for("user_pat", tier="pro")
DAILY = {"type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"}


def create_trigger(system, flow_id, type_, config, claims=ALICE, name="T"):
    reply = call(system.triggers, "POST", triggers_path(flow_id), body={"type": type_, "name": name, "config": config}, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json


def edit(system, flow_id, trigger_id, body, claims=ALICE):
    return call(system.triggers, "PATCH", f"{triggers_path(flow_id)}/{trigger_id}", body=body, claims=claims)


def schedule_of(trigger_id):
    return boto3.client("scheduler").get_schedule(Name=f"trigger-{trigger_id}", GroupName=get_settings().schedule_group_name)


def deliver(system, token, body='{"name": "ada"}', headers=None, query=None):
    return call(system.ingress, "POST", f"/webhooks/{token}", body=body, headers=headers, query=query)


def input_of_delivery(system, flow_id, token, **request):
    """The input the flow got from one delivery of `request` (deliver's arguments) to `token`."""
    reply = deliver(system, token, **request)
    assert reply.status == 202, reply.body
    return json.loads(system.execution(flow_id, reply.json["executionId"])["inputPayload"])


def executions_of(system, flow_id):
    return call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE).json["items"]


# --- PATCH ------------------------------------------------------------------------------------------------------


def test_given_a_trigger_when_renamed_then_only_its_name_changes(system):
    flow_id = system.running_flow()
    hook = system.webhook(flow_id)
    reply = edit(system, flow_id, hook["id"], {"name": "Renamed"})
    assert reply.status == 200
    assert reply.json == {**hook, "name": "Renamed"}
    assert call(system.triggers, "GET", f"{triggers_path(flow_id)}/{hook['id']}", claims=ALICE).json["name"] == "Renamed"


def test_given_a_running_flows_schedule_when_its_cron_changes_then_the_schedule_fires_by_the_new_one_at_once(system):
    flow_id = system.running_flow()
    trigger = create_trigger(system, flow_id, "schedule", DAILY)
    reply = edit(system, flow_id, trigger["id"], {"config": {"cron": "30 18 * * 1", "timezone": "Europe/Berlin"}})
    assert reply.status == 200, reply.body
    assert reply.json["config"] == {"type": "schedule", "cron": "30 18 * * 1", "timezone": "Europe/Berlin"}
    assert reply.json["nextRunAt"] is not None
    schedule = schedule_of(trigger["id"])
    assert schedule["ScheduleExpression"] == "cron(30 18 ? * 2 *)" and schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["State"] == "ENABLED"


def test_given_a_schedule_when_disabled_then_its_schedule_is_disabled_and_a_firing_records_nothing(system):
    from devstack.events import LambdaContext, run_handler

    flow_id = system.running_flow()
    trigger = create_trigger(system, flow_id, "schedule", DAILY)
    reply = edit(system, flow_id, trigger["id"], {"enabled": False})
    assert reply.status == 200 and reply.json["enabled"] is False and reply.json["nextRunAt"] is None
    schedule = schedule_of(trigger["id"])
    assert schedule["State"] == "DISABLED"
    # a firing already under way when it was disabled
    event = json.loads(
        schedule["Target"]["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-11-28T09:00:00Z")
        .replace("<aws.scheduler.execution-id>", "late-firing")
    )
    fired = run_handler(system.schedule, event, LambdaContext("ScheduleFunction"))
    assert fired == {"status": "skipped", "reason": "Trigger is disabled"}
    assert executions_of(system, flow_id) == []
    # a stop and a start leave it disabled; enabling it turns it back on
    system.stop_flow(flow_id)
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200
    assert schedule_of(trigger["id"])["State"] == "DISABLED"
    assert edit(system, flow_id, trigger["id"], {"enabled": True}).json["enabled"] is True
    assert schedule_of(trigger["id"])["State"] == "ENABLED"


def test_given_a_disabled_webhook_when_called_then_409_and_nothing_recorded_until_enabled(system):
    flow_id = system.running_flow()
    hook = system.webhook(flow_id)
    assert deliver(system, hook["webhookToken"]).status == 202  # the container now remembers the token
    assert edit(system, flow_id, hook["id"], {"enabled": False}).json["enabled"] is False

    refused = deliver(system, hook["webhookToken"])

    assert refused.status == 409 and refused.json["code"] == "invalid_state"
    assert len(executions_of(system, flow_id)) == 1
    edit(system, flow_id, hook["id"], {"enabled": True})
    assert deliver(system, hook["webhookToken"]).status == 202


def test_given_a_webhook_when_its_rate_limit_is_edited_then_the_next_delivery_obeys_it(system):
    flow_id = system.running_flow(PRO)
    hook = system.webhook(flow_id, PRO)
    assert deliver(system, hook["webhookToken"]).status == 202
    reply = edit(system, flow_id, hook["id"], {"config": {"rate_limit": {"per_second": 0.001, "burst": 1}}}, PRO)
    assert reply.status == 200, reply.body
    assert deliver(system, hook["webhookToken"]).status == 202
    assert deliver(system, hook["webhookToken"]).status == 429


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"config": {"type": "webhook"}}, "body.config.type"),
        ({"config": {"cron": "every day"}}, "body.config.cron"),
        ({"config": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}}, "body.config.timezone"),
        ({"config": {"cron": "0 9 * * *", "extra_field": 1, "timezone": 5}}, "body.config.timezone"),
        ({"enabled": "yes"}, "body.enabled"),
        ({"name": ""}, "body.name"),
    ],
)
def test_given_a_bad_edit_then_422_names_the_field_and_nothing_changes(system, body, named):
    flow_id = system.running_flow()
    trigger = create_trigger(system, flow_id, "schedule", DAILY)
    reply = edit(system, flow_id, trigger["id"], body)
    assert reply.status == 422 and named in reply.json["details"], reply.body
    assert call(system.triggers, "GET", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).json == trigger


def test_given_a_webhook_rate_limit_over_the_tier_ceiling_when_edited_then_422(system):
    flow_id = system.running_flow()
    hook = system.webhook(flow_id)
    reply = edit(system, flow_id, hook["id"], {"config": {"rate_limit": {"per_second": 100000, "burst": 1}}})
    assert reply.status == 422 and "body.config.rate_limit.per_second" in reply.json["details"]


def test_given_another_users_trigger_when_edited_then_404_and_it_is_unchanged(system):
    flow_id = system.running_flow()
    hook = system.webhook(flow_id)
    assert edit(system, flow_id, hook["id"], {"enabled": False}, BOB).status == 404
    other = system.running_flow(BOB)
    assert edit(system, other, hook["id"], {"enabled": False}, BOB).status == 404
    assert deliver(system, hook["webhookToken"]).status == 202


# --- include_request --------------------------------------------------------------------------------------------


def test_given_include_request_then_the_input_is_the_request_without_credentials(system):
    flow_id = system.running_flow()
    hook = create_trigger(system, flow_id, "webhook", {"include_request": True})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x", "Cookie": "a=b", "X-Event": "push"}
    payload = input_of_delivery(system, flow_id, hook["webhookToken"], headers=headers, query={"source": "github"})
    assert payload["body"] == {"name": "ada"} and payload["method"] == "POST" and payload["query"] == {"source": "github"}
    assert payload["headers"]["x-event"] == "push" and payload["headers"]["content-type"] == "application/json"
    assert not {"authorization", "cookie"} & set(payload["headers"])


def test_given_include_request_and_a_form_body_then_the_body_arrives_as_an_object(system):
    flow_id = system.running_flow()
    hook = create_trigger(system, flow_id, "webhook", {"include_request": True})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    payload = input_of_delivery(system, flow_id, hook["webhookToken"], body="name=ada&tag=a&tag=b&empty=", headers=form)
    assert payload["body"] == {"name": "ada", "tag": ["a", "b"], "empty": ""}


def test_given_include_request_switched_on_by_an_edit_then_the_next_delivery_carries_the_request(system):
    flow_id = system.running_flow()
    hook = system.webhook(flow_id)
    first = deliver(system, hook["webhookToken"]).json["executionId"]
    edit(system, flow_id, hook["id"], {"config": {"include_request": True}})
    second = deliver(system, hook["webhookToken"]).json["executionId"]
    assert json.loads(system.execution(flow_id, first)["inputPayload"]) == {"name": "ada"}
    assert json.loads(system.execution(flow_id, second)["inputPayload"])["body"] == {"name": "ada"}


def test_given_a_header_verified_webhook_with_include_request_then_the_shared_header_is_withheld(system):
    flow_id = system.running_flow()
    verify = {"scheme": "header", "header": "X-Token", "value": "shared-value"}
    hook = create_trigger(system, flow_id, "webhook", {"include_request": True, "verify": verify})
    payload = input_of_delivery(system, flow_id, hook["webhookToken"], headers={"X-Token": "shared-value"})
    assert "x-token" not in payload["headers"]


def test_given_include_request_that_is_not_a_boolean_then_422(system):
    flow_id = system.running_flow()
    reply = call(
        system.triggers,
        "POST",
        triggers_path(flow_id),
        body={"type": "webhook", "name": "T", "config": {"include_request": "yes"}},
        claims=ALICE,
    )
    assert reply.status == 422 and "body.config.include_request" in reply.json["details"]
