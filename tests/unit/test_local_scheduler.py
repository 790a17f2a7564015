"""The local EventBridge Scheduler (devstack/scheduler.py) fires the schedules stored in the embedded AWS at the
times AWS would, with the Scheduler's placeholders substituted. A movable clock stands in for real minutes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from devstack.scheduler import LocalScheduler

GROUP = "bloxserver-schedules"
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:ScheduleFunction"
INPUT = json.dumps(
    {
        "userId": "u1",
        "flowId": "f1",
        "triggerId": "t1",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "executionId": "<aws.scheduler.execution-id>",
    }
)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def scheduler_client(aws):
    return boto3.client("scheduler")


@pytest.fixture
def invoked():
    return []


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC))


@pytest.fixture
def local(scheduler_client, invoked, clock):
    return LocalScheduler(GROUP, lambda arn, event: invoked.append((arn, event)), scheduler_client, clock)


def put(scheduler_client, name="every-minute", expression="cron(* * * * ? *)", timezone="UTC", state="ENABLED"):
    scheduler_client.create_schedule(
        Name=name,
        GroupName=GROUP,
        ScheduleExpression=expression,
        ScheduleExpressionTimezone=timezone,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": INPUT},
        State=state,
    )


def test_given_an_enabled_schedule_when_its_minute_comes_then_the_target_gets_the_input_with_placeholders_filled(
    scheduler_client, local, invoked, clock
):
    put(scheduler_client)
    assert local.tick() == []  # first seen at 12:00:30: next run 12:01:00
    clock.advance(seconds=29)
    assert local.tick() == []
    clock.advance(seconds=2)  # 12:01:01
    local.tick()
    assert len(invoked) == 1
    arn, event = invoked[0]
    assert arn == TARGET
    assert {k: event[k] for k in ("userId", "flowId", "triggerId")} == {"userId": "u1", "flowId": "f1", "triggerId": "t1"}
    assert event["scheduledTime"] == "2026-11-28T12:01:00Z"
    assert len(event["executionId"]) == 36 and event["executionId"] != "<aws.scheduler.execution-id>"


def test_each_firing_gets_a_fresh_execution_id_and_its_own_scheduled_time(scheduler_client, local, invoked, clock):
    put(scheduler_client)
    local.tick()
    for _ in range(3):
        clock.advance(minutes=1)
        local.tick()
    assert [event["scheduledTime"] for _, event in invoked] == [
        "2026-11-28T12:01:00Z",
        "2026-11-28T12:02:00Z",
        "2026-11-28T12:03:00Z",
    ]
    assert len({event["executionId"] for _, event in invoked}) == 3


def test_a_disabled_schedule_does_not_fire(scheduler_client, local, invoked, clock):
    put(scheduler_client, state="DISABLED")
    local.tick()
    clock.advance(minutes=5)
    local.tick()
    assert invoked == []


def test_times_missed_while_not_polling_are_skipped_not_caught_up(scheduler_client, local, invoked, clock):
    put(scheduler_client)
    local.tick()
    clock.advance(minutes=10)  # the worker was asleep from 12:00:30 to 12:10:30
    local.tick()
    clock.advance(minutes=1)
    local.tick()
    assert [event["scheduledTime"] for _, event in invoked] == ["2026-11-28T12:01:00Z", "2026-11-28T12:11:00Z"]


def test_a_schedule_disabled_after_being_seen_stops_firing_and_restarts_from_now_when_enabled(
    scheduler_client, local, invoked, clock
):
    put(scheduler_client)
    local.tick()
    schedule = scheduler_client.get_schedule(Name="every-minute", GroupName=GROUP)
    update = {k: schedule[k] for k in ("Name", "GroupName", "ScheduleExpression", "FlexibleTimeWindow", "Target")}
    scheduler_client.update_schedule(**update, State="DISABLED")
    clock.advance(minutes=3)
    local.tick()
    assert invoked == []
    scheduler_client.update_schedule(**update, State="ENABLED")
    local.tick()  # seen again at 12:03:30
    clock.advance(seconds=31)
    local.tick()
    assert [event["scheduledTime"] for _, event in invoked] == ["2026-11-28T12:04:00Z"]


def test_the_expression_is_evaluated_in_the_schedules_time_zone(scheduler_client, local, invoked, clock):
    put(scheduler_client, expression="cron(0 13 ? * * *)", timezone="Europe/Berlin")  # 13:00 Berlin = 12:00 UTC
    clock.now = datetime(2026, 11, 28, 11, 59, 0, tzinfo=UTC)
    local.tick()
    clock.advance(minutes=1)
    local.tick()
    assert [event["scheduledTime"] for _, event in invoked] == ["2026-11-28T12:00:00Z"]


def test_a_failing_target_does_not_stop_later_firings(scheduler_client, clock):
    calls = []

    def failing(arn, event):
        calls.append(event)
        raise RuntimeError("target down")

    local = LocalScheduler(GROUP, failing, scheduler_client, clock)
    put(scheduler_client)
    local.tick()
    clock.advance(minutes=1)
    local.tick()
    clock.advance(minutes=1)
    local.tick()
    assert len(calls) == 2


def test_given_a_running_flow_with_an_every_minute_trigger_then_a_tick_records_a_schedule_execution(aws, clock):
    """End to end on embedded AWS: the trigger's real schedule, the real ScheduleFunction as target."""
    import executions_handler
    import flows_handler
    import triggers_handler

    from devstack.gateway import LocalFunction
    from devstack.template import functions
    from tests.support import call, claims_for

    alice = claims_for("user_alice")
    yaml = (
        "organism: {name: echo}\nlisteners:\n  - name: done\n    description: The result\n    handler: output\n"
    )
    flow_id = call(flows_handler.handler, "POST", "/api/v1/flows", body={"name": "f", "organismYaml": yaml}, claims=alice).json["id"]
    assert call(flows_handler.handler, "POST", f"/api/v1/flows/{flow_id}/start", claims=alice).status == 200
    body = {"type": "schedule", "name": "tick", "config": {"type": "schedule", "cron": "* * * * *"}}
    trigger = call(triggers_handler.handler, "POST", f"/api/v1/flows/{flow_id}/triggers", body=body, claims=alice).json
    schedule_function = LocalFunction(functions()["ScheduleFunction"])
    results = []
    clock.now = datetime.now(UTC)
    local = LocalScheduler(
        GROUP, lambda arn, event: results.append(schedule_function.invoke(event)), boto3.client("scheduler"), clock
    )
    local.tick()
    clock.advance(minutes=1)
    local.tick()
    assert [result["status"] for result in results] == ["accepted"]
    listing = call(executions_handler.handler, "GET", f"/api/v1/flows/{flow_id}/executions", claims=alice).json
    assert [(item["id"], item["triggerType"]) for item in listing["items"]] == [(results[0]["executionId"], "schedule")]
    execution = call(
        executions_handler.handler, "GET", f"/api/v1/flows/{flow_id}/executions/{results[0]['executionId']}", claims=alice
    ).json
    assert execution["triggerId"] == trigger["id"]
