"""Trigger rules: one flow's webhook, schedule and manual triggers, their tokens, schedules and per-flow cap.

Trigger CRUD works in any flow state; a schedule trigger's schedule is ENABLED exactly while its flow is running.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock, signatures
from bloxserver import secrets as secret_rules
from bloxserver import triggers as trigger_rules
from bloxserver.auth import Principal
from bloxserver.contract import CreateTriggerRequest, Trigger, TriggerType
from bloxserver.dal import flows as flow_store
from bloxserver.dal import secrets as secret_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.display_text import check_display_text
from bloxserver.errors import (
    Conflict,
    InvalidState,
    LimitReached,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    flow_not_found,
)
from bloxserver.limits import TIER_LIMITS
from bloxserver.ownership import caller_tier, owned_flow
from bloxserver.settings import get_settings

# Bounds the fan-out of one flow (schedules to keep in step on start/stop, items to sweep on delete).
MAX_TRIGGERS_PER_FLOW = 20
NEXT_RUN_PREVIEW_COUNT = 5
# A token replaced concurrently by another request is read again this many times before giving up.
TOKEN_REPLACE_ATTEMPTS = 3
# A token regenerated less than this long ago is not regenerated again (409): regenerations sent together must not
# replace the token one of them already returned.
TOKEN_REGENERATION_QUIET_SECONDS = 5


def new_webhook_token() -> str:
    """256 random bits, URL-safe base64: 43 characters of A-Z a-z 0-9 - _."""
    return secrets.token_urlsafe(32)


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
    if item.get("webhookToken"):
        shaped["webhookToken"] = item["webhookToken"]
        shaped["webhookUrl"] = webhook_url(item["webhookToken"])
    if item["type"] == TriggerType.SCHEDULE.value:
        from bloxserver import cron  # lazily: only schedule triggers need it (cold start)

        config = item["config"]
        upcoming = cron.next_fire_times(config["cron"], config["timezone"], NEXT_RUN_PREVIEW_COUNT)
        shaped["nextRunTimes"] = upcoming
        shaped["nextRunAt"] = upcoming[0] if flow_running and upcoming else None
    return Trigger.model_validate(shaped)


def _refused(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"config.{field} {problem}", {f"body.config.{field}": problem})


def _check_webhook_config(principal: Principal, config: dict[str, Any]) -> None:
    """config.rate_limit within the caller's tier ceilings; config.verify's secret usable (a reference names one of
    the caller's secrets, a literal Standard Webhooks secret decodes)."""
    rate = config.get("rate_limit")
    if rate:
        tier = caller_tier(principal)
        ceiling = TIER_LIMITS[tier].webhook_rate_ceiling
        for field in ("per_second", "burst"):
            most = getattr(ceiling, field)
            if rate[field] > most:
                raise _refused(f"rate_limit.{field}", f"must be at most {most:g} on the {tier.value} tier")
    verify = config.get("verify")
    if verify:
        field = "value" if verify["scheme"] == "header" else "secret"
        name = secret_rules.referenced_name(verify[field])
        if name is None:
            problem = signatures.secret_problem(verify[field]) if verify["scheme"] == "standard-webhooks" else None
            if problem:
                raise _refused(f"verify.{field}", problem)
        elif not secret_rules.NAME_PATTERN.fullmatch(name) or name not in secret_store.secret_names(principal.user_id):
            raise _refused(f"verify.{field}", f"names no secret of yours: add it with PUT /api/v1/secrets/{name}")


def _validate(principal: Principal, request: CreateTriggerRequest) -> dict[str, Any]:
    """The config to store; 422 naming the field when the request contradicts itself, cron/zone are unusable, or
    a webhook's verification or rate limit cannot be applied."""
    if request.type.value != request.config.type:
        raise ValidationFailed(
            f"type is {request.type.value!r} but config.type is {request.config.type!r}; they must match",
            {"body.type": f"must equal config.type ({request.config.type!r})"},
        )
    config = request.config.model_dump(mode="json")
    if request.type == TriggerType.WEBHOOK:
        _check_webhook_config(principal, config)
    if request.type == TriggerType.SCHEDULE:
        from bloxserver import cron  # lazily: only schedule triggers need it (cold start)

        try:
            cron.validate_timezone(config["timezone"])
            cron.to_aws_cron(config["cron"])
        except cron.CronError as invalid:
            raise ValidationFailed(
                f"config.{invalid.field}: {invalid.message}", {f"body.config.{invalid.field}": invalid.message}
            ) from invalid
    return config


def list_triggers(principal: Principal, flow_id: UUID) -> list[Trigger]:
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    items = trigger_store.list_triggers(principal.user_id, flow_id)
    return [to_trigger(item, running) for item in sorted(items, key=lambda item: item["createdAt"])]


def get_trigger(principal: Principal, flow_id: UUID, trigger_id: UUID) -> Trigger:
    running = trigger_rules.is_running(_get_flow(principal, flow_id))
    return to_trigger(_get_trigger(principal, flow_id, trigger_id), running)


def create_trigger(principal: Principal, flow_id: UUID, request: CreateTriggerRequest) -> Trigger:
    check_display_text({"body.name": request.name})
    config = _validate(principal, request)
    trigger_id = str(uuid.uuid4())
    item: dict[str, Any] = {
        "id": trigger_id,
        "flowId": str(flow_id),
        "userId": str(principal.user_id),
        "type": request.type.value,
        "name": request.name,
        "config": config,
        "createdAt": clock.now_iso(),
    }
    if request.type == TriggerType.WEBHOOK:
        item["webhookToken"] = new_webhook_token()
    if request.type == TriggerType.SCHEDULE:
        item["scheduleName"] = trigger_rules.schedule_name(trigger_id)
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
