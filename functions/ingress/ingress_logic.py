"""Webhook ingress rules: resolve the token, verify the delivery when the trigger asks, start an execution (rate
limit, quota, idempotent deliveries), or report on it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bloxserver import secrets, signatures, waits
from bloxserver.contract import TriggerType
from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.errors import BadRequest, InvalidState, NotFound, WebhookSignatureInvalid
from bloxserver.executions import StartOutcome, StartRequest, checked_idempotency_key, start_execution
from bloxserver.limits import DEFAULT_WEBHOOK_RATE, WebhookRate
from bloxserver.memory import ContainerMemory
from bloxserver.observability import logger

import webhook_input

MAX_TOKEN_LENGTH = 256

# Tokens this container has resolved, so a delivery need not read the token's lookup item again: the start's
# transaction still requires that item to exist (regenerating the token or deleting the trigger removes it), so a
# stale entry costs one fresh lookup, never a run of a dead token.
_known_targets: ContainerMemory[dict[str, Any]] = ContainerMemory()


def _target(token: str) -> dict[str, Any]:
    # Real tokens are short; anything longer cannot exist and would exceed DynamoDB's key size.
    target = trigger_store.get_webhook_target(token) if len(token) <= MAX_TOKEN_LENGTH else None
    if target is None:
        raise NotFound("Webhook not found")
    return target


def _remember_target(token: str) -> dict[str, Any]:
    return _known_targets.remember(token, _target(token))


def _verify(target: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
    """The trigger's config.verify holds for this delivery, else WebhookSignatureInvalid (401), before anything is
    recorded or counted. The secret is read through the DAL (cached briefly by the container: bloxserver.secrets)."""
    verify = target.get("verify")
    if not verify:
        return
    scheme = verify["scheme"]
    try:
        secret = secrets.resolve(target["userId"], verify["value" if scheme == "header" else "secret"])
    except secrets.MissingSecret as missing:  # deleted since the trigger was made: nothing can verify
        logger.warning("Webhook verification secret is missing", extra={"triggerId": target["triggerId"]})
        raise WebhookSignatureInvalid("Invalid webhook signature: the trigger's secret no longer exists") from missing
    lowered = {name.lower(): value for name, value in headers.items()}
    if scheme == "standard-webhooks":
        problem = signatures.standard_webhooks_problem(secret, body, lowered)
    elif scheme == "hmac-sha256":
        problem = signatures.hmac_sha256_problem(secret, body, lowered.get(verify["header"].lower()), verify["header"])
    else:
        problem = signatures.header_value_problem(secret, lowered.get(verify["header"].lower()), verify["header"])
    if problem is not None:
        raise WebhookSignatureInvalid(f"Invalid webhook signature: {problem}")


def _accept(target: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
    """The delivery verifies (when the trigger asks) and the trigger is enabled, else nothing is recorded."""
    _verify(target, body, headers)
    if target.get("enabled") is False:
        raise InvalidState("This webhook trigger is disabled; enable it to accept deliveries", {"enabled": False})


def receive_webhook(
    token: str,
    body: bytes,
    headers: dict[str, str],
    idempotency_key: str | None,
    request: webhook_input.DeliveryRequest | None = None,
    wait_seconds: int | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Accept one delivery: the execution id (the first one's, for a replayed Idempotency-Key) and, when the caller
    waits (`wait_seconds`), the execution as it ended within that time (else None). `request` (method, query)
    completes the input of a trigger with `include_request`."""
    delivery_key = checked_idempotency_key(idempotency_key)
    target = _known_targets.get(token)
    if target is None or target.get("enabled") is False:  # read a disabled trigger afresh: it may be enabled again
        target = _remember_target(token)
    _accept(target, body, headers)
    try:
        text = body.decode() if body.strip() else None  # no body enters the flow as null, as in a manual run
    except UnicodeDecodeError as exc:
        raise BadRequest("Webhook body must be UTF-8 text", {"body": "not UTF-8"}) from exc
    try:
        outcome = _start(token, target, webhook_input.flow_input(target, text, headers, request), delivery_key)
    except execution_store.TriggerGone:  # remembered, but gone or changed since: look it up afresh (404 if gone)
        _known_targets.forget(token)
        target = _remember_target(token)
        _accept(target, body, headers)
        outcome = _start(token, target, webhook_input.flow_input(target, text, headers, request), delivery_key)
    execution_id = outcome.execution["id"]
    if wait_seconds is None:
        return execution_id, None
    execution = {"flowId": target["flowId"], **outcome.execution}
    return execution_id, waits.wait_for_end(execution, wait_seconds, read_first=not outcome.created)


def _start(token: str, target: dict[str, Any], payload: str, delivery_key: str | None) -> StartOutcome:
    trigger_id = UUID(target["triggerId"])
    configured = target.get("rateLimit")
    return start_execution(
        StartRequest(
            user_id=UUID(target["userId"]),
            flow_id=UUID(target["flowId"]),
            trigger_type=TriggerType.WEBHOOK.value,
            trigger_id=trigger_id,
            input_payload=payload,
            tier=None,
            delivery_scope=trigger_id if delivery_key else None,
            delivery_key=delivery_key,
            # The token's item holds the trigger's bucket: the start updates it, which also requires it still exists.
            webhook_token=token,
            rate_limit=WebhookRate(configured["per_second"], configured["burst"]) if configured else DEFAULT_WEBHOOK_RATE,
            webhook_revision=int(target.get("revision", 0)),
        )
    )


def check_webhook(token: str) -> dict[str, Any]:
    target = _target(token)
    user_id, flow_id = UUID(target["userId"]), UUID(target["flowId"])
    flow = flow_store.get_flow(user_id, flow_id)
    trigger = trigger_store.get_trigger(user_id, flow_id, UUID(target["triggerId"]))
    if flow is None or trigger is None:
        raise NotFound("Webhook not found")
    return {
        "valid": True,
        "triggerName": trigger["name"],
        "flowName": flow["name"],
        "flowStatus": flow["status"],
    }
