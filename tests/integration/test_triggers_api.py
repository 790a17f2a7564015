"""Triggers through the real Lambda handlers on embedded AWS: CRUD, validation, webhook tokens, isolation, and the
EventBridge Scheduler schedule each schedule trigger owns (created, enabled/disabled with its flow, deleted)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest

from bloxserver.dal.triggers import get_webhook_target
from bloxserver.settings import get_settings
from tests.support import ALICE, BOB, call, claims_for, triggers_path


EVERY_MINUTE = {"type": "schedule", "cron": "* * * * *", "timezone": "UTC"}
WEEKDAYS_AT_NINE_BERLIN = {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}


def create(triggers, flow_id, type_, config, name="My trigger", claims=ALICE):
    return call(triggers, "POST", triggers_path(flow_id), body={"type": type_, "name": name, "config": config}, claims=claims)


def scheduler():
    return boto3.client("scheduler")


def schedule_of(trigger_id: str) -> dict | None:
    try:
        return scheduler().get_schedule(Name=f"trigger-{trigger_id}", GroupName=get_settings().schedule_group_name)
    except scheduler().exceptions.ResourceNotFoundException:
        return None


def schedule_names() -> set[str]:
    listed = scheduler().list_schedules(GroupName=get_settings().schedule_group_name)["Schedules"]
    return {schedule["Name"] for schedule in listed}


# --- CRUD -------------------------------------------------------------------------------------------------------


def test_given_a_flow_when_a_webhook_trigger_is_created_then_it_has_a_43_char_token_and_its_url(triggers, flow_id):
    reply = create(triggers, flow_id, "webhook", {"type": "webhook"}, name="Incoming")
    assert reply.status == 201
    trigger = reply.json
    assert trigger["type"] == "webhook" and trigger["name"] == "Incoming" and trigger["flowId"] == flow_id
    assert trigger["config"] == {"type": "webhook"}
    token = trigger["webhookToken"]
    assert len(token) == 43 and all(c.isalnum() or c in "-_" for c in token)
    assert trigger["webhookUrl"] == f"{get_settings().public_base_url}/webhooks/{token}"
    assert trigger["nextRunAt"] is None and trigger["nextRunTimes"] is None
    assert get_webhook_target(token) == {"userId": trigger_owner(), "flowId": flow_id, "triggerId": trigger["id"]}
    assert call(triggers, "GET", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).json == trigger


def trigger_owner() -> str:
    from bloxserver.auth import user_id_for

    return str(user_id_for(ALICE["sub"]))


def test_given_a_manual_trigger_then_it_has_no_token_no_schedule_and_no_next_run(triggers, flow_id):
    reply = create(triggers, flow_id, "manual", {"type": "manual"})
    assert reply.status == 201
    assert reply.json["webhookToken"] is None and reply.json["webhookUrl"] is None
    assert reply.json["nextRunAt"] is None and schedule_names() == set()


def test_given_triggers_when_listing_then_a_plain_array_in_creation_order(triggers, flow_id):
    names = [create(triggers, flow_id, "manual", {"type": "manual"}, name=f"t{i}").json["name"] for i in range(3)]
    listing = call(triggers, "GET", triggers_path(flow_id), claims=ALICE)
    assert listing.status == 200
    assert [trigger["name"] for trigger in listing.json] == names


def test_given_a_flow_without_triggers_when_listing_then_an_empty_array(triggers, flow_id):
    assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json == []


def test_given_a_webhook_trigger_when_deleted_then_204_gone_and_its_token_dead(triggers, flow_id):
    trigger = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    reply = call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE)
    assert reply.status == 204 and reply.body == ""
    assert call(triggers, "GET", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).json["message"] == "Trigger not found"
    assert get_webhook_target(trigger["webhookToken"]) is None
    assert call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).status == 404


def test_given_triggers_are_deleted_then_the_cap_counts_only_the_remaining_ones(triggers, flow_id):
    ids = [create(triggers, flow_id, "manual", {"type": "manual"}).json["id"] for _ in range(20)]
    assert create(triggers, flow_id, "manual", {"type": "manual"}).status == 403
    call(triggers, "DELETE", f"{triggers_path(flow_id)}/{ids[0]}", claims=ALICE)
    assert create(triggers, flow_id, "manual", {"type": "manual"}).status == 201


def test_given_a_flow_at_its_trigger_cap_when_creating_another_then_limit_reached_and_nothing_written(triggers, flow_id):
    for i in range(20):
        assert create(triggers, flow_id, "webhook", {"type": "webhook"}, name=f"t{i}").status == 201
    reply = create(triggers, flow_id, "webhook", {"type": "webhook"})
    assert reply.status == 403 and reply.json["code"] == "limit_reached"
    assert reply.json["details"] == {"limit": 20}
    assert len(call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json) == 20


def test_given_30_parallel_creates_then_exactly_20_triggers_exist(triggers, flow_id):
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda i: create(triggers, flow_id, "manual", {"type": "manual"}).status, range(30)))
    assert statuses.count(201) == 20 and statuses.count(403) == 10
    assert len(call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json) == 20


# --- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "schedule", "name": "x", "config": {"type": "webhook"}}, "body.type"),
        ({"type": "webhook", "name": "x", "config": EVERY_MINUTE}, "body.type"),
        ({"type": "schedule", "name": "x", "config": {"type": "schedule", "cron": "61 * * * *"}}, "body.config.cron"),
        ({"type": "schedule", "name": "x", "config": {"type": "schedule", "cron": "* * * *"}}, "body.config.cron"),
        ({"type": "schedule", "name": "x", "config": {"type": "schedule", "cron": "*/" + "9" * 4301 + " * * * *"}},
         "body.config.cron"),
        ({"type": "schedule", "name": "x", "config": {"type": "schedule", "cron": "0" * 600 + "5 * * * *"}},
         "body.config.cron"),
        (
            {"type": "schedule", "name": "x", "config": {"type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}},
            "body.config.timezone",
        ),
    ],
)
def test_given_an_inconsistent_or_unusable_trigger_when_creating_then_422_names_the_field(triggers, flow_id, body, field):
    reply = call(triggers, "POST", triggers_path(flow_id), body=body, claims=ALICE)
    assert reply.status == 422 and reply.json["code"] == "validation_error"
    assert field in reply.json["details"]
    assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json == []
    assert schedule_names() == set()


def test_given_both_day_fields_restricted_then_422_explains_aws_cannot_run_it(triggers, flow_id):
    reply = create(triggers, flow_id, "schedule", {"type": "schedule", "cron": "0 9 1 * MON", "timezone": "UTC"})
    assert reply.status == 422
    assert "day-of-month and day-of-week" in reply.json["details"]["body.config.cron"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "sms", "name": "x", "config": {"type": "manual"}},
        {"type": "manual", "name": "", "config": {"type": "manual"}},
        {"type": "manual", "name": "x" * 101, "config": {"type": "manual"}},
        {"type": "schedule", "name": "x", "config": {"type": "schedule"}},
        {"type": "manual", "name": "x"},
        [],
    ],
)
def test_given_a_malformed_body_when_creating_then_422_and_nothing_written(triggers, flow_id, body):
    reply = call(triggers, "POST", triggers_path(flow_id), body=body, claims=ALICE)
    assert reply.status == 422 and reply.json["code"] == "validation_error" and reply.json["details"]
    assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json == []


def test_given_a_malformed_trigger_id_then_422_not_500(triggers, flow_id):
    reply = call(triggers, "GET", f"{triggers_path(flow_id)}/not-a-uuid", claims=ALICE)
    assert reply.status == 422 and "path.trigger_id" in reply.json["details"]


# --- webhook tokens ---------------------------------------------------------------------------------------------


def test_given_a_webhook_trigger_when_its_token_is_regenerated_then_the_old_token_stops_working_at_once(
    triggers, flow_id
):
    trigger = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    reply = call(triggers, "POST", f"{triggers_path(flow_id)}/{trigger['id']}/regenerate-token", claims=ALICE)
    assert reply.status == 200
    renewed = reply.json
    assert renewed["id"] == trigger["id"] and renewed["webhookToken"] != trigger["webhookToken"]
    assert len(renewed["webhookToken"]) == 43 and renewed["webhookUrl"].endswith(f"/webhooks/{renewed['webhookToken']}")
    assert get_webhook_target(trigger["webhookToken"]) is None
    assert get_webhook_target(renewed["webhookToken"])["triggerId"] == trigger["id"]
    assert call(triggers, "GET", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).json == renewed


@pytest.mark.parametrize("config", [{"type": "manual"}, EVERY_MINUTE])
def test_given_a_non_webhook_trigger_when_regenerating_its_token_then_409_invalid_state(triggers, flow_id, config):
    trigger = create(triggers, flow_id, config["type"], config).json
    reply = call(triggers, "POST", f"{triggers_path(flow_id)}/{trigger['id']}/regenerate-token", claims=ALICE)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert reply.json["details"] == {"type": config["type"]}


def test_given_ten_parallel_regenerations_then_every_200_returns_a_working_token_and_the_others_409(triggers, flow_id):
    trigger = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    path = f"{triggers_path(flow_id)}/{trigger['id']}/regenerate-token"
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: call(triggers, "POST", path, claims=ALICE), range(10)))
    assert {reply.status for reply in replies} <= {200, 409}
    assert {reply.json["code"] for reply in replies if reply.status == 409} <= {"conflict"}
    returned = [reply.json["webhookToken"] for reply in replies if reply.status == 200]
    final = call(triggers, "GET", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).json["webhookToken"]
    assert returned and all(token == final and get_webhook_target(token) is not None for token in returned)
    assert get_webhook_target(trigger["webhookToken"]) is None


def test_given_a_token_regenerated_a_moment_ago_then_regenerating_again_is_409_until_the_quiet_time_passed(
    triggers, flow_id, monkeypatch
):
    import triggers_logic

    trigger = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    path = f"{triggers_path(flow_id)}/{trigger['id']}/regenerate-token"
    first = call(triggers, "POST", path, claims=ALICE)
    again = call(triggers, "POST", path, claims=ALICE)
    assert (first.status, again.status, again.json["code"]) == (200, 409, "conflict")
    assert get_webhook_target(first.json["webhookToken"])["triggerId"] == trigger["id"]
    monkeypatch.setattr(triggers_logic, "TOKEN_REGENERATION_QUIET_SECONDS", 0)
    later = call(triggers, "POST", path, claims=ALICE)
    assert later.status == 200 and get_webhook_target(first.json["webhookToken"]) is None


# --- isolation --------------------------------------------------------------------------------------------------


def test_given_another_users_flow_then_every_route_answers_flow_not_found(triggers, flow_id):
    trigger = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    one = f"{triggers_path(flow_id)}/{trigger['id']}"
    for method, path, body in [
        ("GET", triggers_path(flow_id), None),
        ("POST", triggers_path(flow_id), {"type": "manual", "name": "x", "config": {"type": "manual"}}),
        ("GET", one, None),
        ("DELETE", one, None),
        ("POST", f"{one}/regenerate-token", None),
    ]:
        reply = call(triggers, method, path, body=body, claims=BOB)
        assert (reply.status, reply.json["message"]) == (404, "Flow not found"), (method, path)
    assert get_webhook_target(trigger["webhookToken"]) is not None
    assert len(call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json) == 1


def test_given_an_absent_flow_or_trigger_then_404_names_which(triggers, flow_id):
    missing = str(uuid.uuid4())
    assert call(triggers, "GET", triggers_path(missing), claims=ALICE).json["message"] == "Flow not found"
    assert create(triggers, missing, "manual", {"type": "manual"}).json["message"] == "Flow not found"
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/regenerate-token")]:
        reply = call(triggers, method, f"{triggers_path(flow_id)}/{missing}{suffix}", claims=ALICE)
        assert (reply.status, reply.json["message"]) == (404, "Trigger not found")


def test_given_a_trigger_of_one_flow_when_addressed_through_another_flow_then_trigger_not_found(
    flows, triggers, flow_id
):
    pro = claims_for("user_alice", tier="pro")
    other = call(flows, "POST", "/api/v1/flows", body={"name": "Other"}, claims=pro).json["id"]
    trigger = create(triggers, flow_id, "manual", {"type": "manual"}).json
    assert call(triggers, "GET", f"{triggers_path(other)}/{trigger['id']}", claims=ALICE).json["message"] == "Trigger not found"


def test_without_a_token_then_401(triggers, flow_id):
    assert call(triggers, "GET", triggers_path(flow_id)).status == 401


# --- schedules --------------------------------------------------------------------------------------------------


def test_given_a_stopped_flow_when_a_schedule_trigger_is_created_then_its_schedule_exists_disabled(triggers, flow_id):
    reply = create(triggers, flow_id, "schedule", WEEKDAYS_AT_NINE_BERLIN, name="Mornings")
    assert reply.status == 201
    trigger = reply.json
    assert trigger["config"] == WEEKDAYS_AT_NINE_BERLIN
    schedule = schedule_of(trigger["id"])
    settings = get_settings()
    assert schedule["GroupName"] == settings.schedule_group_name
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * 2-6 *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["State"] == "DISABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == settings.schedule_function_arn and target["RoleArn"] == settings.scheduler_role_arn
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert json.loads(target["Input"]) == {
        "userId": trigger_owner(),
        "flowId": flow_id,
        "triggerId": trigger["id"],
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "executionId": "<aws.scheduler.execution-id>",
    }


def test_given_a_stopped_flow_then_a_schedule_trigger_previews_runs_but_has_no_next_run(triggers, flow_id):
    trigger = create(triggers, flow_id, "schedule", WEEKDAYS_AT_NINE_BERLIN).json
    assert trigger["nextRunAt"] is None
    times = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in trigger["nextRunTimes"]]
    assert len(times) == 5 and times == sorted(times) and times[0] > datetime.now(UTC)
    # 09:00 in Berlin is 07:00 or 08:00 UTC, on Monday to Friday
    assert all(t.hour in (7, 8) and t.minute == 0 and t.weekday() < 5 for t in times)


def test_given_a_running_flow_when_a_schedule_trigger_is_created_then_enabled_with_a_next_run(flows, triggers, flow_id):
    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200
    trigger = create(triggers, flow_id, "schedule", EVERY_MINUTE).json
    assert schedule_of(trigger["id"])["State"] == "ENABLED"
    assert schedule_of(trigger["id"])["ScheduleExpression"] == "cron(* * * * ? *)"
    assert trigger["nextRunAt"] == trigger["nextRunTimes"][0]
    listed = call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json
    assert listed[0]["nextRunAt"] is not None


def test_given_schedule_triggers_when_the_flow_starts_and_stops_then_their_schedules_follow(flows, triggers, flow_id):
    ids = [create(triggers, flow_id, "schedule", config).json["id"] for config in (EVERY_MINUTE, WEEKDAYS_AT_NINE_BERLIN)]
    create(triggers, flow_id, "webhook", {"type": "webhook"})
    call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)
    assert [schedule_of(i)["State"] for i in ids] == ["ENABLED", "ENABLED"]
    assert schedule_of(ids[1])["ScheduleExpressionTimezone"] == "Europe/Berlin"
    call(flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=ALICE)
    assert [schedule_of(i)["State"] for i in ids] == ["DISABLED", "DISABLED"]


def test_given_a_lost_schedule_when_the_flow_starts_then_it_is_recreated(flows, triggers, flow_id):
    trigger = create(triggers, flow_id, "schedule", EVERY_MINUTE).json
    scheduler().delete_schedule(Name=f"trigger-{trigger['id']}", GroupName=get_settings().schedule_group_name)
    call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)
    assert schedule_of(trigger["id"])["State"] == "ENABLED"


def test_given_a_schedule_trigger_when_deleted_then_its_schedule_is_deleted(triggers, flow_id):
    keep = create(triggers, flow_id, "schedule", EVERY_MINUTE).json
    gone = create(triggers, flow_id, "schedule", WEEKDAYS_AT_NINE_BERLIN).json
    assert call(triggers, "DELETE", f"{triggers_path(flow_id)}/{gone['id']}", claims=ALICE).status == 204
    assert schedule_names() == {f"trigger-{keep['id']}"}


def test_given_a_flow_with_triggers_when_the_flow_is_deleted_then_triggers_tokens_and_schedules_go(
    flows, triggers, flow_id
):
    call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)
    create(triggers, flow_id, "schedule", EVERY_MINUTE)
    webhook = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    assert call(flows, "DELETE", f"/api/v1/flows/{flow_id}", claims=ALICE).status == 204
    assert schedule_names() == set()
    assert get_webhook_target(webhook["webhookToken"]) is None
    assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json["message"] == "Flow not found"


def test_given_a_user_with_triggers_when_clerk_deletes_the_user_then_their_schedules_and_tokens_go(
    triggers, flow_id
):
    from bloxserver import cleanup
    from bloxserver.auth import user_id_for

    create(triggers, flow_id, "schedule", EVERY_MINUTE)
    webhook = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    cleanup.delete_user_and_dependents(user_id_for(ALICE["sub"]))
    assert schedule_names() == set()
    assert get_webhook_target(webhook["webhookToken"]) is None


def test_given_a_flow_deletion_interrupted_after_the_flow_item_then_repeating_it_removes_the_leftovers(
    triggers, flow_id
):
    from bloxserver import cleanup
    from bloxserver.auth import user_id_for
    from bloxserver.dal import flows as flow_store

    webhook = create(triggers, flow_id, "webhook", {"type": "webhook"}).json
    create(triggers, flow_id, "schedule", EVERY_MINUTE)
    owner = user_id_for(ALICE["sub"])
    assert flow_store.delete_flow(owner, uuid.UUID(flow_id))  # the flow item went, its triggers stayed
    assert cleanup.delete_flow_and_dependents(owner, uuid.UUID(flow_id)) is False
    assert schedule_names() == set() and get_webhook_target(webhook["webhookToken"]) is None


def _scheduler_down(monkeypatch):
    from botocore.exceptions import ClientError

    from bloxserver.dal import schedules

    def unavailable(definition):
        raise ClientError({"Error": {"Code": "InternalServerException", "Message": "down"}}, "UpdateSchedule")

    for write in ("update_schedule", "create_schedule"):
        monkeypatch.setattr(schedules, write, unavailable)


def test_given_the_scheduler_fails_when_starting_then_503_says_what_to_do(flows, triggers, flow_id, monkeypatch):
    assert create(triggers, flow_id, "schedule", EVERY_MINUTE).status == 201
    _scheduler_down(monkeypatch)
    reply = call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)
    assert reply.status == 503 and reply.json["code"] == "service_unavailable"
    assert "stop and start" in reply.json["message"]


def test_given_the_scheduler_fails_when_stopping_then_the_stop_still_holds(flows, triggers, flow_id, monkeypatch):
    assert create(triggers, flow_id, "schedule", EVERY_MINUTE).status == 201
    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200
    _scheduler_down(monkeypatch)
    reply = call(flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=ALICE)
    assert reply.status == 200 and reply.json["status"] == "stopped"


def test_given_the_scheduler_fails_when_deleting_a_schedule_trigger_then_nothing_changes_and_a_retry_works(
    triggers, flow_id, monkeypatch
):
    from botocore.exceptions import ClientError

    from bloxserver.dal import schedules

    trigger = create(triggers, flow_id, "schedule", EVERY_MINUTE).json
    real_delete = schedules.delete_schedule

    def unavailable(name):
        raise ClientError({"Error": {"Code": "InternalServerException", "Message": "down"}}, "DeleteSchedule")

    monkeypatch.setattr(schedules, "delete_schedule", unavailable)
    assert call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).status >= 500
    assert [t["id"] for t in call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json] == [trigger["id"]]
    assert schedule_names() == {f"trigger-{trigger['id']}"}
    monkeypatch.setattr(schedules, "delete_schedule", real_delete)
    assert call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).status == 204
    assert schedule_names() == set()


# --- round trips (counted, never timed) -------------------------------------------------------------------------


def test_creating_a_schedule_trigger_costs_one_schedule_write_and_three_table_calls(flows, triggers, flow_id):
    from devstack.aws_calls import count_aws_calls

    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200
    with count_aws_calls() as calls:
        assert create(triggers, flow_id, "schedule", EVERY_MINUTE).status == 201
    # the trigger transaction, the status read, then the flow and trigger read again after the schedule write
    assert dict(calls) == {
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.GetItem": 1,
        "scheduler.CreateSchedule": 1,
        "dynamodb.BatchGetItem": 1,
    }


def test_starting_a_flow_updates_each_schedule_once_and_creates_none(flows, triggers, flow_id):
    from devstack.aws_calls import count_aws_calls

    for _ in range(3):
        create(triggers, flow_id, "schedule", EVERY_MINUTE)
    with count_aws_calls() as calls:
        assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200
    scheduler_calls = {name: n for name, n in calls.items() if name.startswith("scheduler.")}
    assert scheduler_calls == {"scheduler.UpdateSchedule": 3}
    assert calls["dynamodb.Query"] == 1


def test_deleting_a_schedule_trigger_deletes_its_schedule_before_and_after_its_items(triggers, flow_id):
    from devstack.aws_calls import count_aws_calls

    trigger = create(triggers, flow_id, "schedule", EVERY_MINUTE).json
    with count_aws_calls() as calls:
        assert call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger['id']}", claims=ALICE).status == 204
    assert dict(calls) == {
        "dynamodb.GetItem": 2,  # the flow (ownership), the trigger
        "scheduler.DeleteSchedule": 2,
        "dynamodb.TransactWriteItems": 1,
    }


@pytest.mark.parametrize(
    ("body", "config"),
    [
        ({"type": "schedule", "name": "s", "config": {"cron": "*/5 * * * *"}}, {"type": "schedule", "cron": "*/5 * * * *", "timezone": "UTC"}),
        ({"type": "webhook", "name": "w", "config": {}}, {"type": "webhook"}),
        ({"type": "manual", "name": "m", "config": {}}, {"type": "manual"}),
    ],
    ids=["schedule", "webhook", "manual"],
)
def test_given_a_config_without_its_type_then_it_is_the_triggers_type_as_the_contract_defaults_it(
    triggers, flow_id, body, config
):
    reply = call(triggers, "POST", triggers_path(flow_id), body=body, claims=ALICE)
    assert reply.status == 201 and reply.json["config"] == config
