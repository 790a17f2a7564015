"""Trigger rules: one flow's webhook, schedule and manual triggers, their tokens, schedules and per-flow cap.

Trigger CRUD works in any flow state; a schedule trigger's schedule is ENABLED exactly while its flow is running
and the trigger is enabled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock
from bloxserver import triggers as trigger_rules
from bloxserver.auth import Principal
from bloxserver.contract import CreateTriggerRequest, Trigger, TriggerType, UpdateTriggerRequest
from bloxserver.dal import flows as flow_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.errors import (
    Conflict,
    InvalidState,
    LimitReached,
    NotFound,
    ServiceUnavailable,
    flow_not_found,
)
from bloxserver.ownership import owned_flow
from bloxserver.settings import get_settings
from bloxserver.triggers import MAX_TRIGGERS_PER_FLOW, new_webhook_token

NEXT_RUN_PREVIEW_COUNT = 5
# A token replaced concurrently by another request is read again this many times before giving up.
TOKEN_REPLACE_ATTEMPTS = 3
# A token regenerated less than this long ago is not regenerated again (409): regenerations sent together must not
# replace the token one of them already returned.
TOKEN_REGENERATION_QUIET_SECONDS = 5


def webhook_url(token: str) -> str:
    return f"{get_settings().public_base_url}/webhooks/{token}"


def _trigger_not_found() -> NotFound:
    return NotFound("Trigger not found")


def _get_flow(principal: Principal, flow_id: UUID) -> dict[str, Any]:
    return owned_flow(principal.user_id, flow_id)


def _get_trigger(principal: Principal, flow_id: UUID, trigger_id: UUID) -> dict[str, Any]:
    trigger = trigger_store.get_trigger(principal.user_id, flow_id, trigger_id)
    if trigger is None:
        raise _trigger_not_found()
    return trigger


def to_trigger(item: dict[str, Any], flow_running: bool) -> Trigger:
    shaped: dict[str, Any] = {key: item.get(key) for key in ("id", "flowId", "type", "name", "config", "createdAt")}
    shaped["enabled"] = trigger_rules.is_enabled(item)
    if item.get("webhookToken"):
        shaped["webhookToken"] = item["webhookToken"]
        shaped["webhookUrl"] = webhook_url(item["webhookToken"])
    if item["type"] == TriggerType.SCHEDULE.value:
        from bloxserver import cron  # lazily: only schedule triggers need it (cold start)

        config = item["config"]
        upcoming = cron.next_fire_times(config["cron"], config["timezone"], NEXT_RUN_PREVIEW_COUNT)
        shaped["nextRunTimes"] = upcoming
        shaped["nextRunAt"] = upcoming[0] if flow_running and shaped["enabled"] and upcoming else None
    return Trigger.model_validate(shaped)


def list_triggers(principal: Principal, flow_id: UUID) -> list[Trigger]:
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    items = trigger_store.list_triggers(principal.user_id, flow_id)
    return [to_trigger(item, running) for item in sorted(items, key=lambda item: item["createdAt"])]


def get_trigger(principal: Principal, flow_id: UUID, trigger_id: UUID) -> Trigger:
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    return to_trigger(_get_trigger(principal, flow_id, trigger_id), running)


def create_trigger(principal: Principal, flow_id: UUID, request: CreateTriggerRequest) -> Trigger:
    trigger_rules.check_trigger_name(request.name)
    config = trigger_rules.checked_config(principal, request.type.value, request.config)
    item = trigger_rules.new_trigger(flow_id, principal.user_id, request.type.value, request.name, config)
    try:
        trigger_store.create_trigger(item, MAX_TRIGGERS_PER_FLOW)
    except trigger_store.FlowMissing as missing:
        raise flow_not_found() from missing
    except trigger_store.TriggerLimitFull as full:
        raise LimitReached(
            f"Trigger limit reached ({MAX_TRIGGERS_PER_FLOW} per flow). Delete a trigger to add another.",
            {"limit": MAX_TRIGGERS_PER_FLOW},
        ) from full
    # The schedule follows the status read after the trigger was written: a start or stop that ran before this
    # read is seen here, and one that runs after it lists this trigger and updates its schedule itself. The rule
    # also deletes the schedule again if the trigger was removed meanwhile (bloxserver/triggers.py).
    flow = flow_store.get_flow(principal.user_id, flow_id)
    running = trigger_rules.is_running(flow)
    if request.type == TriggerType.SCHEDULE:
        try:
            running = trigger_rules.create_trigger_schedule(item, running)
        except Exception as failure:
            try:
                trigger_rules.remove_trigger(item)  # no trigger without its schedule
            except trigger_store.TriggerChanged:
                pass  # removed meanwhile by a trigger or flow deletion
            raise ServiceUnavailable("Could not create the trigger's schedule; try again") from failure
    return to_trigger(item, running)


def update_trigger(principal: Principal, flow_id: UUID, trigger_id: UUID, request: UpdateTriggerRequest) -> Trigger:
    """Change a trigger's name, config (of its own type, checked as on create) or `enabled`, in any flow state; a
    schedule's schedule follows at once (a new cron while the flow runs fires by it from now on)."""
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    if request.name is not None:
        trigger_rules.check_trigger_name(request.name)
    for _ in range(TOKEN_REPLACE_ATTEMPTS):
        trigger = _get_trigger(principal, flow_id, trigger_id)
        changed: dict[str, Any] = {}
        if request.name is not None:
            changed["name"] = request.name
        if request.config is not None:
            parsed = trigger_rules.parsed_config(trigger["type"], request.config)
            changed["config"] = trigger_rules.checked_config(principal, trigger["type"], parsed)
        if request.enabled is not None:
            changed["enabled"] = request.enabled
        if not changed:
            return get_trigger(principal, flow_id, trigger_id)
        try:
            trigger_store.update_trigger(trigger, changed)
        except trigger_store.TriggerChanged:
            continue  # deleted or re-tokened meanwhile: read it again (a deleted one is 404)
        if trigger["type"] != TriggerType.SCHEDULE.value:  # the flow's status shows only in a schedule's nextRunAt
            return to_trigger({**trigger, **changed}, running)
        try:
            running = trigger_rules.sync_trigger_schedule(principal.user_id, flow_id, trigger_id)
        except Exception as failure:
            raise ServiceUnavailable(
                "The trigger was changed, but its schedule could not be updated; send the change again"
            ) from failure
        return to_trigger({**trigger, **changed}, running)
    raise ServiceUnavailable("The trigger keeps changing; try again")


def delete_trigger(principal: Principal, flow_id: UUID, trigger_id: UUID) -> None:
    _get_flow(principal, flow_id)
    for _ in range(TOKEN_REPLACE_ATTEMPTS):
        trigger = _get_trigger(principal, flow_id, trigger_id)
        try:
            trigger_rules.remove_trigger(trigger)
            return
        except trigger_store.TriggerChanged:
            continue  # deleted or re-tokened meanwhile: read it again
    raise ServiceUnavailable("The trigger keeps changing; try again")


def regenerate_token(principal: Principal, flow_id: UUID, trigger_id: UUID) -> Trigger:
    """A new token, unless another regeneration got there first or a moment ago (409 conflict): so every token a
    regeneration returns works until a later, separate regeneration, even when several are sent at once."""
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    trigger = _get_trigger(principal, flow_id, trigger_id)
    if trigger["type"] != TriggerType.WEBHOOK.value:
        raise InvalidState(
            f"Only webhook triggers have a token; this is a {trigger['type']} trigger",
            {"type": trigger["type"]},
        )
    token, now = new_webhook_token(), clock.utc_now()
    quiet_since = clock.iso(now - timedelta(seconds=TOKEN_REGENERATION_QUIET_SECONDS))
    try:
        trigger_store.replace_webhook_token(trigger, token, clock.iso(now), quiet_since)
    except trigger_store.TriggerChanged as changed:
        _get_trigger(principal, flow_id, trigger_id)  # deleted meanwhile: 404
        raise Conflict(
            "The webhook token was just regenerated by another request; use that token, or regenerate again in "
            f"{TOKEN_REGENERATION_QUIET_SECONDS} seconds",
        ) from changed
    return to_trigger({**trigger, "webhookToken": token}, running)
