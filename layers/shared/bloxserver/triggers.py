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
import secrets
import uuid
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from bloxserver import clock, signatures
from bloxserver import secrets as secret_rules
from bloxserver.auth import Principal
from bloxserver.contract import TRIGGER_CONFIG_TAGS, VERIFY_SCHEME_TAGS, FlowStatus, TriggerConfig, TriggerType
from bloxserver.dal import flows as flow_store
from bloxserver.dal import schedules as schedule_store
from bloxserver.dal import secrets as secret_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.display_text import check_display_text
from bloxserver.errors import ValidationFailed
from bloxserver.limits import TIER_LIMITS
from bloxserver.observability import logger
from bloxserver.ownership import caller_tier

# Each schedule re-read of a flow whose status keeps changing under us; beyond this the last put stands.
MAX_STATE_SYNC_ROUNDS = 3
# Bounds the fan-out of one flow (schedules to keep in step on start/stop, items to sweep on delete).
MAX_TRIGGERS_PER_FLOW = 20
_trigger_config = TypeAdapter(TriggerConfig)


def new_webhook_token() -> str:
    """256 random bits, URL-safe base64: 43 characters of A-Z a-z 0-9 - _."""
    return secrets.token_urlsafe(32)


def is_enabled(trigger: dict[str, Any]) -> bool:
    """A trigger stored before `enabled` existed is enabled."""
    return trigger.get("enabled", True) is not False


def _refused(field: str, problem: str, where: str) -> ValidationFailed:
    return ValidationFailed(f"config.{field} {problem}", {f"{where}.config.{field}": problem})


def _check_webhook_config(principal: Principal, config: dict[str, Any], where: str) -> None:
    """config.rate_limit within the caller's tier ceilings; config.verify's secret usable (a reference names one of
    the caller's secrets, a literal Standard Webhooks secret decodes)."""
    rate = config.get("rate_limit")
    if rate:
        tier = caller_tier(principal)
        ceiling = TIER_LIMITS[tier].webhook_rate_ceiling
        for field in ("per_second", "burst"):
            most = getattr(ceiling, field)
            if rate[field] > most:
                raise _refused(f"rate_limit.{field}", f"must be at most {most:g} on the {tier.value} tier", where)
    verify = config.get("verify")
    if verify:
        field = "value" if verify["scheme"] == "header" else "secret"
        name = secret_rules.referenced_name(verify[field])
        if name is None:
            problem = signatures.secret_problem(verify[field]) if verify["scheme"] == "standard-webhooks" else None
            if problem:
                raise _refused(f"verify.{field}", problem, where)
        elif not secret_rules.NAME_PATTERN.fullmatch(name) or name not in secret_store.secret_names(principal.user_id):
            raise _refused(
                f"verify.{field}", f"names no secret of yours: add it with PUT /api/v1/secrets/{name}", where
            )


def parsed_config(trigger_type: str, config: dict[str, Any], where: str = "body") -> Any:
    """`config` read as a TriggerConfig of `trigger_type` (its `type` may be left out; another type is 422)."""
    given = config.get("type", trigger_type)
    if given != trigger_type:
        raise ValidationFailed(
            f"config.type is {given!r} but the trigger is a {trigger_type} trigger; the type cannot change",
            {f"{where}.config.type": f"must be {trigger_type!r}"},
        )
    try:
        return _trigger_config.validate_python({**config, "type": trigger_type})
    except ValidationError as invalid:
        details = {}
        for error in invalid.errors():
            parts = [str(part) for part in error["loc"]]
            shown = [part for index, part in enumerate(parts) if not (index == 0 and part in TRIGGER_CONFIG_TAGS)]
            shown = [part for index, part in enumerate(shown) if not (index and shown[index - 1] == "verify" and part in VERIFY_SCHEME_TAGS)]
            details[".".join([where, "config", *shown])] = error["msg"]
        raise ValidationFailed("Request validation failed", details) from invalid


def checked_config(principal: Principal, trigger_type: str, config: Any, where: str = "body") -> dict[str, Any]:
    """The config to store (a parsed TriggerConfig of `trigger_type`); 422 naming the field when its config.type is
    another, the cron or zone are unusable, or a webhook's verification or rate limit cannot be applied. `where`
    prefixes the names (`body`, or `body.triggers.N` for an import)."""
    if config.type != trigger_type:
        raise ValidationFailed(
            f"type is {trigger_type!r} but config.type is {config.type!r}; they must match",
            {f"{where}.type": f"must equal config.type ({config.type!r})"},
        )
    stored = config.model_dump(mode="json")
    if trigger_type == TriggerType.WEBHOOK.value:
        _check_webhook_config(principal, stored, where)
    if trigger_type == TriggerType.SCHEDULE.value:
        from bloxserver import cron  # lazily: only schedule triggers need it (cold start)

        try:
            cron.validate_timezone(stored["timezone"])
            cron.to_aws_cron(stored["cron"])
        except cron.CronError as invalid:
            raise ValidationFailed(
                f"config.{invalid.field}: {invalid.message}", {f"{where}.config.{invalid.field}": invalid.message}
            ) from invalid
    return stored


def new_trigger(flow_id: UUID | str, user_id: UUID | str, trigger_type: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """A new trigger item (checked name and config): a fresh id, a fresh token for a webhook, a schedule name for a
    schedule."""
    trigger_id = str(uuid.uuid4())
    item: dict[str, Any] = {
        "id": trigger_id,
        "flowId": str(flow_id),
        "userId": str(user_id),
        "type": trigger_type,
        "name": name,
        "config": config,
        "enabled": True,
        "createdAt": clock.now_iso(),
    }
    if trigger_type == TriggerType.WEBHOOK.value:
        item["webhookToken"] = new_webhook_token()
    if trigger_type == TriggerType.SCHEDULE.value:
        item["scheduleName"] = schedule_name(trigger_id)
    return item


def check_trigger_name(name: str, where: str = "body") -> None:
    check_display_text({f"{where}.name": name})


def schedule_name(trigger_id: UUID | str) -> str:
    """The trigger's schedule in the application's group (at most 64 characters: 'trigger-' + a UUID is 44)."""
    return f"trigger-{trigger_id}"


def schedule_definition(trigger: dict[str, Any], enabled: bool) -> schedule_store.ScheduleDefinition:
    """The schedule of a stored schedule trigger; its input is what the schedule function parses. ENABLED when
    `enabled` (its flow runs) and the trigger itself is enabled."""
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
        enabled=enabled and is_enabled(trigger),
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


def sync_trigger_schedule(user_id: UUID | str, flow_id: UUID | str, trigger_id: UUID | str) -> bool:
    """After a schedule trigger's item was edited (cron, zone, enabled): its schedule made what the item and its
    flow's status say now, written again while a concurrent edit, start or stop moves them (the last writer's read
    follows every earlier write). Returns whether the flow is running as last read.

    A schedule found missing is created again (write, verify, compensate: deleted when its trigger is gone)."""
    written, created, running = None, False, False
    for _ in range(MAX_STATE_SYNC_ROUNDS + 1):
        flow, current = trigger_store.get_flow_and_trigger(user_id, flow_id, trigger_id)
        running = is_running(flow)
        if current is None:  # removed meanwhile: its removal deletes the schedule, unless this wrote it after
            if created:
                schedule_store.delete_schedule(schedule_name(trigger_id))
            return running
        definition = schedule_definition(current, running)
        if definition == written:
            return running
        if not schedule_store.update_schedule(definition):
            schedule_store.create_schedule(definition)
            created = True
        written = definition
    return running


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
