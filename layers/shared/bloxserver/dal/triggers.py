"""Trigger items and webhook token lookup items.

A trigger lives in its owner's partition (SK TRIGGER#<flowId>#<triggerId>), so a flow's triggers are one query
and another user's triggers do not exist for the caller. A webhook trigger also owns a token item
(PK WEBHOOK#<token>) that webhook ingress reads to find the trigger from the URL alone. The flow item counts its
triggers (`triggerCount`), so the per-flow cap and the flow's existence are checked by the same write that
creates the trigger.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.flows import flow_key
from bloxserver.dal.table import (
    cancellation_codes,
    client,
    deserialize,
    error_code,
    first_action_failed,
    get_item,
    key,
    query_items,
    serialize,
    table_name,
    transact_write,
)


class FlowMissing(Exception):
    """The flow the trigger belongs to does not exist (or is not the caller's)."""


class TriggerLimitFull(Exception):
    """The flow already has the most triggers a flow may have."""


class TriggerChanged(Exception):
    """The trigger was deleted, or its token replaced, since it was read."""


def trigger_key(user_id: UUID | str, flow_id: UUID | str, trigger_id: UUID | str) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.trigger_sk(flow_id, trigger_id))


def webhook_key(token: str) -> dict[str, Any]:
    return key(keys.webhook_pk(token), keys.WEBHOOK_SK)


def _token_put(token: str, trigger: dict[str, Any]) -> dict[str, Any]:
    config = trigger.get("config") or {}
    item = {
        "PK": keys.webhook_pk(token),
        "SK": keys.WEBHOOK_SK,
        "entity": "webhook",
        "userId": trigger["userId"],
        "flowId": trigger["flowId"],
        "triggerId": trigger["id"],
        # Copies of the trigger's (immutable) delivery rules, so ingress reads everything in one GetItem.
        "verify": config.get("verify"),
        "rateLimit": config.get("rate_limit"),
    }
    return {
        "Put": {
            "TableName": table_name(),
            "Item": serialize(item),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
    }


def _token_delete(token: str) -> dict[str, Any]:
    return {"Delete": {"TableName": table_name(), "Key": webhook_key(token)}}


def _count_update(trigger: dict[str, Any], delta: int, condition: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table_name(),
            "Key": flow_key(trigger["userId"], trigger["flowId"]),
            "UpdateExpression": "ADD #count :delta",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#count": "triggerCount"},
            "ExpressionAttributeValues": serialize({":delta": delta, **values}),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def create_trigger(trigger: dict[str, Any], max_per_flow: int) -> None:
    """Insert the trigger (and its token item) and count it on the flow, in one transaction.

    Raises FlowMissing when the flow does not exist, TriggerLimitFull when it already has `max_per_flow`.
    """
    actions = [
        _count_update(
            trigger,
            1,
            "attribute_exists(PK) AND (attribute_not_exists(#count) OR #count < :max)",
            {":max": max_per_flow},
        ),
        {
            "Put": {
                "TableName": table_name(),
                "Item": serialize(
                    {
                        "PK": keys.user_pk(trigger["userId"]),
                        "SK": keys.trigger_sk(trigger["flowId"], trigger["id"]),
                        "entity": "trigger",
                        **trigger,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        },
    ]
    if trigger.get("webhookToken"):
        actions.append(_token_put(trigger["webhookToken"], trigger))
    try:
        transact_write(actions)
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons", [])
        if first_action_failed(exc):
            raise (TriggerLimitFull() if reasons[0].get("Item") else FlowMissing()) from exc
        raise


def get_trigger(user_id: UUID, flow_id: UUID, trigger_id: UUID) -> dict[str, Any] | None:
    return get_item(trigger_key(user_id, flow_id, trigger_id))


def get_flow_and_trigger(
    user_id: UUID | str, flow_id: UUID | str, trigger_id: UUID | str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The flow and one of its triggers as they are now (None when absent): one strongly consistent BatchGetItem."""
    flow_item_key, trigger_item_key = flow_key(user_id, flow_id), trigger_key(user_id, flow_id, trigger_id)
    found: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {table_name(): {"Keys": [flow_item_key, trigger_item_key], "ConsistentRead": True}}
    while request:
        response = client().batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(table_name(), []):
            found[raw["SK"]["S"]] = deserialize(raw)
        request = response.get("UnprocessedKeys") or {}
    return found.get(flow_item_key["SK"]["S"]), found.get(trigger_item_key["SK"]["S"])


def list_triggers(user_id: UUID, flow_id: UUID) -> list[dict[str, Any]]:
    """Every trigger of the flow, in key order (random trigger ids: callers sort as they need)."""
    return query_items(
        {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": keys.user_pk(user_id)},
                ":prefix": {"S": keys.flow_triggers_prefix(flow_id)},
            },
            "ConsistentRead": True,
        }
    )


def _unchanged_condition(trigger: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Condition that the trigger still exists with the token it was read with."""
    if trigger.get("webhookToken"):
        return "#token = :token", {":token": {"S": trigger["webhookToken"]}}, {"#token": "webhookToken"}
    return "attribute_exists(PK)", {}, {}


def delete_trigger(trigger: dict[str, Any]) -> None:
    """Delete the trigger as read (and its token item) and uncount it on the flow.

    Raises TriggerChanged when it was deleted or its token replaced since it was read. When the flow is
    already gone (flow deletion sweeps its triggers after deleting it), there is no count left to update.
    """
    condition, values, names = _unchanged_condition(trigger)
    delete: dict[str, Any] = {
        "TableName": table_name(),
        "Key": trigger_key(trigger["userId"], trigger["flowId"], trigger["id"]),
        "ConditionExpression": condition,
    }
    if values:
        delete["ExpressionAttributeValues"] = values
        delete["ExpressionAttributeNames"] = names
    actions: list[dict[str, Any]] = [{"Delete": delete}]
    if trigger.get("webhookToken"):
        actions.append(_token_delete(trigger["webhookToken"]))
    uncount = _count_update(trigger, -1, "attribute_exists(PK) AND #count > :zero", {":zero": 0})
    try:
        transact_write([*actions, uncount])
        return
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        codes = cancellation_codes(exc)
        if codes[0] == "ConditionalCheckFailed":
            raise TriggerChanged() from exc
        if codes[-1] != "ConditionalCheckFailed":
            raise
    _transact_unless_changed(actions)


def replace_webhook_token(trigger: dict[str, Any], new_token: str, now: str, not_replaced_since: str) -> None:
    """Give a webhook trigger a new token in one transaction: the old token item is deleted, the new one put,
    the trigger updated (`tokenReplacedAt` = `now`). Raises TriggerChanged when the trigger was deleted or its
    token replaced meanwhile, or last replaced at or after `not_replaced_since` (ISO)."""
    old_token = trigger["webhookToken"]
    actions = [
        {
            "Update": {
                "TableName": table_name(),
                "Key": trigger_key(trigger["userId"], trigger["flowId"], trigger["id"]),
                "UpdateExpression": "SET #token = :new, #replacedAt = :now",
                "ConditionExpression": "#token = :old AND (attribute_not_exists(#replacedAt) OR #replacedAt < :since)",
                "ExpressionAttributeNames": {"#token": "webhookToken", "#replacedAt": "tokenReplacedAt"},
                "ExpressionAttributeValues": serialize(
                    {":new": new_token, ":old": old_token, ":now": now, ":since": not_replaced_since}
                ),
            }
        },
        _token_delete(old_token),
        _token_put(new_token, trigger),
    ]
    _transact_unless_changed(actions)


def _transact_unless_changed(actions: list[dict[str, Any]]) -> None:
    """One transaction whose first action is conditional on the trigger as read: TriggerChanged when it fails."""
    try:
        transact_write(actions)
    except ClientError as exc:
        if first_action_failed(exc):
            raise TriggerChanged() from exc
        raise


def get_webhook_target(token: str) -> dict[str, Any] | None:
    """{"userId", "flowId", "triggerId"} of the webhook trigger holding `token`, with its "verify" and "rateLimit"
    when it has them, or None (webhook ingress)."""
    found = get_item(webhook_key(token))
    if found is None:
        return None
    return {name: found[name] for name in ("userId", "flowId", "triggerId", "verify", "rateLimit") if name in found}
