"""Webhook ingress rules: resolve the token, start an execution (quota, idempotent deliveries), or report on it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bloxserver.contract import TriggerType
from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal import triggers as trigger_store
from bloxserver.errors import BadRequest, NotFound
from bloxserver.executions import StartRequest, checked_idempotency_key, start_execution
from bloxserver.memory import ContainerMemory

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


def receive_webhook(token: str, body: bytes, idempotency_key: str | None) -> str:
    """Accept one delivery; returns the execution id (the first one's, for a replayed Idempotency-Key)."""
    delivery_key = checked_idempotency_key(idempotency_key)
    try:
        payload = body.decode() if body.strip() else None  # no body enters the flow as null, as in a manual run
    except UnicodeDecodeError as exc:
        raise BadRequest("Webhook body must be UTF-8 text", {"body": "not UTF-8"}) from exc
    target = _known_targets.get(token)
    try:
        return _start(token, target or _remember_target(token), payload, delivery_key, verify_token=bool(target))
    except execution_store.TriggerGone:  # remembered, but gone since: look it up afresh (404 if truly gone)
        _known_targets.forget(token)
        return _start(token, _remember_target(token), payload, delivery_key, verify_token=False)


def _start(token: str, target: dict[str, Any], payload: str, delivery_key: str | None, verify_token: bool) -> str:
    trigger_id = UUID(target["triggerId"])
    outcome = start_execution(
        StartRequest(
            user_id=UUID(target["userId"]),
            flow_id=UUID(target["flowId"]),
            trigger_type=TriggerType.WEBHOOK.value,
            trigger_id=trigger_id,
            input_payload=payload,
            tier=None,
            delivery_scope=trigger_id if delivery_key else None,
            delivery_key=delivery_key,
            webhook_token=token if verify_token else None,
        )
    )
    return outcome.execution["id"]


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
