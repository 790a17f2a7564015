"""Schedules under concurrency: no interleaving of trigger creation/deletion, flow start/stop and flow deletion
leaves a schedule whose trigger item does not exist, and once the requests are done every schedule's state matches
its flow's status (docs/triggers.md, Schedules).

Each race is reproduced deterministically by pausing one request at a checkpoint (a DAL call it makes) while the
other request runs, so the racing interleaving is forced, not hoped for. A few tests also run the requests in
real parallel and check the same invariant after each repetition.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from bloxserver.dal import triggers as trigger_store
from bloxserver.settings import get_settings
from devstack.aws_calls import count_aws_calls
from tests.support import ALICE, SHOUT_YAML, call, triggers_path

EVERY_MINUTE = {"type": "schedule", "cron": "* * * * *", "timezone": "UTC"}
PARALLEL_ROUNDS = 10  # before the fix, each real-parallel test failed in most runs of 5 rounds
WAIT_SECONDS = 20  # a checkpoint not reached by then means the code no longer takes that path: fail, not hang


def create_schedule_trigger(triggers, flow_id: str) -> Any:
    body = {"type": "schedule", "name": "tick", "config": EVERY_MINUTE}
    return call(triggers, "POST", triggers_path(flow_id), body=body, claims=ALICE)


def start(flows, flow_id: str) -> Any:
    return call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)


def stop(flows, flow_id: str) -> Any:
    return call(flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=ALICE)


def delete_trigger(triggers, flow_id: str, trigger_id: str) -> Any:
    return call(triggers, "DELETE", f"{triggers_path(flow_id)}/{trigger_id}", claims=ALICE)


def delete_flow(flows, flow_id: str) -> Any:
    return call(flows, "DELETE", f"/api/v1/flows/{flow_id}", claims=ALICE)


def schedules() -> list[dict[str, Any]]:
    """Every schedule of the application's group, read whole."""
    client = boto3.client("scheduler")
    group = get_settings().schedule_group_name
    names = [s["Name"] for s in client.list_schedules(GroupName=group)["Schedules"]]
    return [client.get_schedule(Name=name, GroupName=group) for name in names]


def leftover() -> dict[str, str]:
    """Name → state of every schedule of the group (readable in a failed assertion)."""
    return {schedule["Name"]: schedule["State"] for schedule in schedules()}


def flow_status(flows, flow_id: str) -> str | None:
    reply = call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE)
    return reply.json["status"] if reply.status == 200 else None


def assert_schedules_follow_triggers(flows) -> None:
    """The documented invariant, checked from AWS's side: every schedule has its trigger item and is ENABLED
    exactly while that trigger's flow is running."""
    for schedule in schedules():
        target = json.loads(schedule["Target"]["Input"])
        owner, flow, trigger_id = (uuid.UUID(target[field]) for field in ("userId", "flowId", "triggerId"))
        assert trigger_store.get_trigger(owner, flow, trigger_id) is not None, (
            f"schedule {schedule['Name']} ({schedule['State']}) outlived its trigger"
        )
        expected = "ENABLED" if flow_status(flows, str(flow)) == "running" else "DISABLED"
        assert schedule["State"] == expected, f"schedule {schedule['Name']} is {schedule['State']}"


class Checkpoint:
    """Replaces `module.name` so that its first call (only) runs `reached` before or after the real call.

    `reached` forces the interleaving under test: it runs another request to completion, or signals a waiting
    thread and waits for it."""

    def __init__(self, monkeypatch, module: Any, name: str, reached: Callable[[], None], *, after: bool) -> None:
        self.real = getattr(module, name)
        self.reached, self.after = reached, after
        self.calls = 0
        self.lock = threading.Lock()
        monkeypatch.setattr(module, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first and not self.after:
            self.reached()
        result = self.real(*args, **kwargs)
        if first and self.after:
            self.reached()
        return result


def signal_and_wait(signal: threading.Event, wait_for: threading.Event) -> Callable[[], None]:
    def reached() -> None:
        signal.set()
        assert wait_for.wait(WAIT_SECONDS), "the other request never reached its checkpoint"

    return reached


def in_another_thread(request: Callable[[], Any]) -> Callable[[], None]:
    """A checkpoint action running `request` to completion (in its own thread, as another Lambda would)."""

    def reached() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(request).result(timeout=3 * WAIT_SECONDS)

    return reached


def run_both(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        one, two = pool.submit(first), pool.submit(second)
        return one.result(timeout=3 * WAIT_SECONDS), two.result(timeout=3 * WAIT_SECONDS)


def interleave(
    monkeypatch, first: Callable[[], Any], first_passes: str, second: Callable[[], Any], second_reaches: str
) -> tuple[Any, Any]:
    """Runs `first` until it has called the DAL function `first_passes`, then `second` until it is about to call
    `second_reaches`, lets `first` finish, then `second`; returns both results."""
    passed, reached, first_done = threading.Event(), threading.Event(), threading.Event()
    Checkpoint(monkeypatch, trigger_store, first_passes, signal_and_wait(passed, reached), after=True)
    Checkpoint(monkeypatch, trigger_store, second_reaches, signal_and_wait(reached, first_done), after=False)

    def running_first() -> Any:
        try:
            return first()
        finally:
            first_done.set()

    def running_second() -> Any:
        assert passed.wait(WAIT_SECONDS)
        return second()

    return run_both(running_first, running_second)


# --- D1: starting a flow while its schedule triggers are deleted ---------------------------------------------


def test_given_start_listed_the_triggers_when_they_are_all_deleted_before_it_writes_schedules_then_none_is_left(
    flows, triggers, flow_id, monkeypatch
):
    ids = [create_schedule_trigger(triggers, flow_id).json["id"] for _ in range(3)]
    deletes = []

    def delete_all() -> None:
        deletes.extend(delete_trigger(triggers, flow_id, trigger_id).status for trigger_id in ids)

    # start wrote `running` and listed the triggers; the deletions then run to completion before its schedule writes
    Checkpoint(monkeypatch, trigger_store, "list_triggers", in_another_thread(delete_all), after=True)
    assert start(flows, flow_id).status == 200

    assert deletes == [204, 204, 204]
    assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json == []
    assert leftover() == {}


def test_given_a_delete_removed_the_schedule_when_start_rewrites_it_before_the_trigger_item_goes_then_none_is_left(
    flows, triggers, flow_id, monkeypatch
):
    trigger_id = create_schedule_trigger(triggers, flow_id).json["id"]
    # start lists the trigger, then waits until the delete has removed the schedule (not yet the trigger item);
    # the delete waits until start has finished writing (and checking) schedules
    statuses = interleave(
        monkeypatch,
        lambda: start(flows, flow_id).status, "list_triggers",
        lambda: delete_trigger(triggers, flow_id, trigger_id).status, "delete_trigger",
    )
    assert statuses == (200, 204)
    assert leftover() == {}
    assert stop(flows, flow_id).status == 200 and delete_flow(flows, flow_id).status == 204
    assert leftover() == {}


def test_given_10_parallel_deletes_and_a_start_then_no_schedule_outlives_its_trigger(flows, triggers, flow_id):
    for _ in range(PARALLEL_ROUNDS):
        ids = [create_schedule_trigger(triggers, flow_id).json["id"] for _ in range(10)]
        with ThreadPoolExecutor(max_workers=11) as pool:
            deletes = [pool.submit(delete_trigger, triggers, flow_id, trigger_id) for trigger_id in ids]
            started = pool.submit(start, flows, flow_id)
            assert [d.result().status for d in deletes] == [204] * 10 and started.result().status == 200
        assert call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json == []
        assert leftover() == {}
        assert stop(flows, flow_id).status == 200


# --- D2: deleting a running flow while schedule triggers are created on it -----------------------------------


def test_given_a_trigger_item_was_written_when_the_flow_is_deleted_before_its_schedule_then_none_is_left(
    flows, triggers, flow_id, monkeypatch
):
    assert start(flows, flow_id).status == 200
    deleted = []
    # the create's transaction wrote the trigger item; the whole flow deletion runs before it writes the schedule
    deleting = in_another_thread(lambda: deleted.append(delete_flow(flows, flow_id).status))
    Checkpoint(monkeypatch, trigger_store, "create_trigger", deleting, after=True)
    assert create_schedule_trigger(triggers, flow_id).status in (201, 404)
    assert deleted == [204]
    assert leftover() == {}


def test_given_the_flow_deletion_swept_the_schedule_when_the_create_writes_it_before_the_item_goes_then_none_is_left(
    flows, triggers, flow_id, monkeypatch
):
    assert start(flows, flow_id).status == 200
    # the create writes its trigger item and waits; the flow deletion's sweep lists it, removes its (absent)
    # schedule and waits before deleting the item; the create then writes the schedule and answers
    statuses = interleave(
        monkeypatch,
        lambda: create_schedule_trigger(triggers, flow_id).status, "create_trigger",
        lambda: delete_flow(flows, flow_id).status, "delete_trigger",
    )
    assert statuses == (201, 204)
    assert leftover() == {}


def test_given_9_parallel_creates_and_a_flow_deletion_then_no_schedule_outlives_the_flow(flows, triggers):
    for round_ in range(PARALLEL_ROUNDS):
        body = {"name": f"r{round_}", "organismYaml": SHOUT_YAML}
        created = call(flows, "POST", "/api/v1/flows", body=body, claims=ALICE)
        flow_id = created.json["id"]
        assert start(flows, flow_id).status == 200
        with ThreadPoolExecutor(max_workers=10) as pool:
            creates = [pool.submit(create_schedule_trigger, triggers, flow_id) for _ in range(9)]
            deleted = pool.submit(delete_flow, flows, flow_id)
            assert {c.result().status for c in creates} <= {201, 404} and deleted.result().status == 204
        assert leftover() == {}


# --- start/stop and creation racing: states end matching -------------------------------------------------------


def test_given_creates_starts_and_stops_in_parallel_then_every_schedule_matches_the_final_status(
    flows, triggers, flow_id
):
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            work = [pool.submit(create_schedule_trigger, triggers, flow_id) for _ in range(4)]
            work += [pool.submit(start if i % 2 == 0 else stop, flows, flow_id) for i in range(4)]
            for item in work:
                item.result()
        assert_schedules_follow_triggers(flows)
    listed = call(triggers, "GET", triggers_path(flow_id), claims=ALICE).json
    assert {s["Name"] for s in schedules()} == {f"trigger-{t['id']}" for t in listed}


# --- safety net: a schedule that outlived its trigger (a request failed between the two) ---------------------


@pytest.fixture
def fire(aws):
    import schedule_handler

    from devstack.events import LambdaContext, run_handler

    def firing(schedule: dict[str, Any], execution_id: str) -> dict[str, Any]:
        event = json.loads(
            schedule["Target"]["Input"]
            .replace("<aws.scheduler.scheduled-time>", "2026-11-28T09:00:00Z")
            .replace("<aws.scheduler.execution-id>", execution_id)
        )
        return run_handler(schedule_handler.handler, event, LambdaContext("ScheduleFunction"))

    return firing


def executions_of(flow_id: str) -> list[dict[str, Any]]:
    import executions_handler

    reply = call(executions_handler.handler, "GET", f"/api/v1/flows/{flow_id}/executions", claims=ALICE)
    assert reply.status == 200, reply.body
    return reply.json["items"]


def test_given_a_schedule_whose_trigger_item_is_gone_when_it_fires_then_nothing_runs_and_the_schedule_is_deleted(
    flows, triggers, flow_id, fire
):
    assert start(flows, flow_id).status == 200
    trigger = create_schedule_trigger(triggers, flow_id).json
    [schedule] = schedules()
    # a removal that deleted the item and then failed to delete the schedule again
    owner = json.loads(schedule["Target"]["Input"])["userId"]
    item = trigger_store.get_trigger(uuid.UUID(owner), uuid.UUID(flow_id), uuid.UUID(trigger["id"]))
    trigger_store.delete_trigger(item)

    assert fire(schedule, "first") == {"status": "skipped", "reason": "Trigger not found"}
    assert leftover() == {} and executions_of(flow_id) == []


def test_given_a_schedule_trigger_of_a_running_flow_when_it_fires_then_one_execution_names_it(
    flows, triggers, flow_id, fire
):
    assert start(flows, flow_id).status == 200
    trigger = create_schedule_trigger(triggers, flow_id).json
    [schedule] = schedules()
    fired = fire(schedule, "first")
    assert fired["status"] == "accepted"
    assert [execution["id"] for execution in executions_of(flow_id)] == [fired["executionId"]]
    import executions_handler

    path = f"/api/v1/flows/{flow_id}/executions/{fired['executionId']}"
    execution = call(executions_handler.handler, "GET", path, claims=ALICE).json
    assert execution["triggerId"] == trigger["id"] and execution["triggerType"] == "schedule"
    assert [s["Name"] for s in schedules()] == [f"trigger-{trigger['id']}"]
    # the trigger check rides in the start's transaction: a later firing is one transaction and one send
    with count_aws_calls() as calls:
        assert fire(schedule, "second")["status"] == "accepted"
    assert calls == {"dynamodb.TransactWriteItems": 1, "sqs.SendMessage": 1}
