"""Trigger rules shared by the triggers, flows, users and schedule functions: a schedule trigger's EventBridge
schedule exists only while its trigger item does, and is ENABLED exactly while its flow is running.

Schedules and items live in two services, so no write covers both; the order of the writes does (docs/triggers.md,
Schedules, has the full argument):
- a schedule is *created* only after its trigger item exists, and only by two writers: the trigger's creation and a
  start/stop repairing a schedule found missing. Each reads the trigger item again after its write and, when the
  item is gone, deletes the schedule it made (write, verify, compensate);
- every other write (start/stop) is an update, which fails on a missing schedule instead of recreating it;
- removing a trigger deletes its schedule, then its items, then the schedule again. The first deletion makes a
  Scheduler failure change nothing; the last removes a schedule that a writer created after the first and checked
  while the item still existed. A writer that saw the item after its write is thus always followed by that last
  deletion, and one that did not see it deletes the schedule itself;
- states: the flow's status is written first, then the schedules; the writer reads the status again and, if
  another request changed it meanwhile, writes them again (whichever request finishes last leaves them matching).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from bloxserver.contract import FlowStatus, TriggerType
from bloxserver.dal import flows as flow_store
from bloxserver.dal import schedules as schedule_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.observability import logger

# Each schedule re-read of a flow whose status keeps changing under us; beyond this the last put stands.
MAX_STATE_SYNC_ROUNDS = 3


def schedule_name(trigger_id: UUID | str) -> str:
    """The trigger's schedule in the application's group (at most 64 characters: 'trigger-' + a UUID is 44)."""
    return f"trigger-{trigger_id}"


def schedule_definition(trigger: dict[str, Any], enabled: bool) -> schedule_store.ScheduleDefinition:
    """The schedule of a stored schedule trigger; its input is what the schedule function parses."""
    from bloxserver import cron  # lazily: cron (zoneinfo, regexes) is only for schedules; keeps API cold starts low

    config = trigger["config"]
    schedule_input = {
        "userId": trigger["userId"],
        "flowId": trigger["flowId"],
        "triggerId": trigger["id"],
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "executionId": "<aws.scheduler.execution-id>",
    }
    return schedule_store.ScheduleDefinition(
        name=trigger["scheduleName"],
        description=f"BloxServer flow {trigger['flowId']} trigger {trigger['id']}",
        expression=cron.to_aws_cron(config["cron"]),
        timezone=config["timezone"],
        input_json=json.dumps(schedule_input, separators=(",", ":")),
        enabled=enabled,
    )


def is_running(flow: dict[str, Any] | None) -> bool:
    return flow is not None and flow.get("status") == FlowStatus.RUNNING.value


def create_trigger_schedule(trigger: dict[str, Any], enabled: bool) -> bool:
    """Create a new schedule trigger's schedule (its item is written) in state `enabled`, the flow's status as read
    after the item was written; returns whether the flow is running as last read.

    Then reads the flow and the trigger again: a trigger removed meanwhile (a trigger or flow deletion that listed
    it before its schedule existed) has its schedule deleted here; a status changed meanwhile is followed.
    """
    write = schedule_store.create_schedule
    for _ in range(MAX_STATE_SYNC_ROUNDS):
        write(schedule_definition(trigger, enabled))
        write = schedule_store.update_schedule  # exists now: later rounds must not recreate it
        flow, current = trigger_store.get_flow_and_trigger(trigger["userId"], trigger["flowId"], trigger["id"])
        running = is_running(flow)
        if current is None:
            schedule_store.delete_schedule(trigger["scheduleName"])
            return running
        if running == enabled:
            return running
        enabled = running
    return enabled


def set_flow_schedules_state(user_id: UUID, flow_id: UUID, enabled: bool) -> None:
    """After a flow's status was written: ENABLED (running) or DISABLED (any other state) on all its schedules,
    then the status is read again and, if a concurrent start/stop changed it, the schedules follow it.

    Schedules are updated, never blindly recreated: one found missing is either being removed with its trigger or
    was lost (a failure between a trigger's writes); it is created again and kept only if its trigger still exists.
    """
    scheduled = [
        trigger
        for trigger in trigger_store.list_triggers(user_id, flow_id)
        if trigger["type"] == TriggerType.SCHEDULE.value
    ]
    for _ in range(MAX_STATE_SYNC_ROUNDS):
        if not scheduled:
            return
        scheduled = _write_states(user_id, flow_id, scheduled, enabled)
        running = is_running(flow_store.get_flow(UUID(str(user_id)), UUID(str(flow_id))))
        if running == enabled:
            return
        enabled = running


def _write_states(user_id: UUID, flow_id: UUID, scheduled: list[dict[str, Any]], enabled: bool) -> list[dict[str, Any]]:
    """Update each schedule to `enabled`, recreating a missing one whose trigger still exists; returns the triggers
    still to follow (those found removed are dropped, their recreated schedules deleted again)."""
    recreated = []
    for trigger in scheduled:
        definition = schedule_definition(trigger, enabled)
        if not schedule_store.update_schedule(definition):
            schedule_store.create_schedule(definition)
            recreated.append(trigger)
    if not recreated:
        return scheduled
    existing = {trigger["id"] for trigger in trigger_store.list_triggers(user_id, flow_id)}
    for trigger in recreated:
        if trigger["id"] not in existing:
            schedule_store.delete_schedule(trigger["scheduleName"])
    return [trigger for trigger in scheduled if trigger["id"] in existing]


def remove_trigger(trigger: dict[str, Any]) -> None:
    """Delete the trigger's schedule, then the trigger and its token item (TriggerChanged if it changed), then the
    schedule again (one a concurrent start/stop or creation wrote after the first deletion)."""
    name = trigger.get("scheduleName")
    if name:
        schedule_store.delete_schedule(name)  # a Scheduler failure here leaves everything as it was
    trigger_store.delete_trigger(trigger)
    if name:
        try:
            schedule_store.delete_schedule(name)
        except Exception:
            # The trigger is gone either way; a schedule is left only if a concurrent writer recreated it and this
            # deletion failed. The schedule function deletes it when it next fires (see forget_orphan_schedule).
            logger.exception("Deleting a removed trigger's schedule again failed", extra={"schedule": name})


def forget_orphan_schedule(trigger_id: UUID | str) -> None:
    """Delete the schedule of a trigger that no longer exists (the schedule function, when such a schedule fires)."""
    schedule_store.delete_schedule(schedule_name(trigger_id))


def remove_flow_triggers(user_id: UUID, flow_id: UUID) -> None:
    """Delete every trigger of the flow with its schedule and token item; safe to repeat."""
    for trigger in trigger_store.list_triggers(user_id, flow_id):
        try:
            remove_trigger(trigger)
        except trigger_store.TriggerChanged:
            current = trigger_store.get_trigger(user_id, flow_id, UUID(trigger["id"]))
            if current is not None:
                remove_trigger(current)
