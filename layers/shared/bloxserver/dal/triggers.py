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
    set_and_remove,
    table_name,
    transact_write,
    update_expression,
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


# The token item's `revision` counts the edits of these copies (update_trigger): a start requires the revision the
# ingress read, so an edited trigger's rules apply to the very next delivery (dal.executions.Throttle).
TARGET_FIELDS = ("userId", "flowId", "triggerId", "verify", "rateLimit", "includeRequest", "enabled", "revision")


def _delivery_rules(trigger: dict[str, Any]) -> dict[str, Any]:
    """Copies of the trigger's delivery rules on its token item, so ingress reads everything in one GetItem."""
    config = trigger.get("config") or {}
    return {
        "verify": config.get("verify"),
        "rateLimit": config.get("rate_limit"),
        "includeRequest": config.get("include_request"),
        "enabled": False if trigger.get("enabled") is False else None,  # kept only when disabled
    }


def _token_put(token: str, trigger: dict[str, Any]) -> dict[str, Any]:
    item = {
        "PK": keys.webhook_pk(token),
        "SK": keys.WEBHOOK_SK,
        "entity": "webhook",
        "userId": trigger["userId"],
        "flowId": trigger["flowId"],
        "triggerId": trigger["id"],
        **_delivery_rules(trigger),
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


def trigger_puts(trigger: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction actions inserting a new trigger and its token item, without counting it (a new flow's
    triggers: its item carries their count)."""
    actions = [
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
        }
    ]
    if trigger.get("webhookToken"):
        actions.append(_token_put(trigger["webhookToken"], trigger))
    return actions


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
        *trigger_puts(trigger),
    ]
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


def update_trigger(trigger: dict[str, Any], changed: dict[str, Any]) -> None:
    """Write `changed` fields (name, config, enabled) of the trigger as read, and for a webhook its token item's
    copies of the delivery rules with one more `revision`, in one transaction. Raises TriggerChanged when the
    trigger was deleted or its token replaced since it was read."""
    condition, values, names = _unchanged_condition(trigger)
    sets, removes, field_names, field_values = set_and_remove(changed, "f")
    update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": trigger_key(trigger["userId"], trigger["flowId"], trigger["id"]),
        "UpdateExpression": update_expression(sets, removes),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {**names, **field_names},
        "ExpressionAttributeValues": {**values, **serialize(field_values)},
    }
    actions: list[dict[str, Any]] = [{"Update": update}]
    if trigger.get("webhookToken"):
        rule_sets, rule_removes, rule_names, rule_values = set_and_remove(_delivery_rules({**trigger, **changed}), "r")
        rule_sets.append("#revision = if_not_exists(#revision, :zero) + :one")
        actions.append(
            {
                "Update": {
                    "TableName": table_name(),
                    "Key": webhook_key(trigger["webhookToken"]),
                    "UpdateExpression": update_expression(rule_sets, rule_removes),
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": {**rule_names, "#revision": "revision"},
                    "ExpressionAttributeValues": serialize({**rule_values, ":zero": 0, ":one": 1}),
                }
            }
        )
    try:
        transact_write(actions)
    except ClientError as exc:
        if error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in cancellation_codes(exc):
            raise TriggerChanged() from exc
        raise


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
    """{"userId", "flowId", "triggerId"} of the webhook trigger holding `token`, with its delivery rules ("verify",
    "rateLimit", "includeRequest", "enabled") and "revision" when it has them, or None (webhook ingress)."""
    found = get_item(webhook_key(token))
    if found is None:
        return None
    return {name: found[name] for name in TARGET_FIELDS if name in found}
