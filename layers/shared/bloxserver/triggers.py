"""Trigger rules shared by the triggers, flows and users functions: a schedule trigger's EventBridge schedule
follows its flow's state, and removing a trigger removes its schedule first and its items second.

Ordering, so that no schedule stays enabled for a flow that is not running and any step can be repeated:
- enabling/disabling: the flow's status is written first, then every schedule is put to match it; the status is
  then read again and, if another request changed it meanwhile, the schedules are put again (the last writer's
  state wins, whichever request finishes last);
- deleting: the schedule is deleted before the trigger item, so a failure leaves at worst a trigger without a
  schedule (repaired by the next start/stop, which re-puts every schedule), never a schedule without a trigger.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from bloxserver.contract import FlowStatus, TriggerType
from bloxserver.dal import flows as flow_store
from bloxserver.dal import schedules as schedule_store
from bloxserver.dal import triggers as trigger_store

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


def sync_schedules(user_id: UUID | str, flow_id: UUID | str, triggers: list[dict[str, Any]], enabled: bool) -> None:
    """Put the schedules of `triggers` in state `enabled`, then follow the flow's status if it changed since."""
    scheduled = [trigger for trigger in triggers if trigger["type"] == TriggerType.SCHEDULE.value]
    if not scheduled:
        return
    for _ in range(MAX_STATE_SYNC_ROUNDS):
        for trigger in scheduled:
            schedule_store.put_schedule(schedule_definition(trigger, enabled))
        running = is_running(flow_store.get_flow(UUID(str(user_id)), UUID(str(flow_id))))
        if running == enabled:
            return
        enabled = running


def set_flow_schedules_state(user_id: UUID, flow_id: UUID, enabled: bool) -> None:
    """After a flow's status was written: ENABLED (running) or DISABLED (any other state) on all its schedules.

    Puts each schedule whole, so one lost since (a failure between trigger and schedule writes) is recreated.
    """
    sync_schedules(user_id, flow_id, trigger_store.list_triggers(user_id, flow_id), enabled)


def remove_trigger(trigger: dict[str, Any]) -> None:
    """Delete the trigger's schedule, then the trigger and its token item (TriggerChanged if it changed)."""
    if trigger.get("scheduleName"):
        schedule_store.delete_schedule(trigger["scheduleName"])
    trigger_store.delete_trigger(trigger)


def remove_flow_triggers(user_id: UUID, flow_id: UUID) -> None:
    """Delete every trigger of the flow with its schedule and token item; safe to repeat."""
    for trigger in trigger_store.list_triggers(user_id, flow_id):
        try:
            remove_trigger(trigger)
        except trigger_store.TriggerChanged:
            current = trigger_store.get_trigger(user_id, flow_id, UUID(trigger["id"]))
            if current is not None:
                remove_trigger(current)
