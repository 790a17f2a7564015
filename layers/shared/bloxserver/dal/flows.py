"""Flow items: one per flow in its owner's partition, listed newest-updated first through GSI1.

A flow is always addressed as (owner, flow id), so another user's flow simply does not exist for the caller.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import (
    client,
    delete_counted,
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
from bloxserver.dal.users import FLOW_COUNTER, insert_counted, profile_key

SUMMARY_FIELDS = ("id", "#name", "description", "#status", "updatedAt")


class FlowConditionFailed(Exception):
    """A conditional write on a flow failed; `current` is the item as it was (None: no such flow)."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.current = current


class TogetherFailed(Exception):
    """An action written in the same transaction as a flow's update failed its condition (see update_flow)."""


# A flow's canvasState is stored as JSON text: a canvas's free-form node data may nest deeper than DynamoDB's maps
# (32 levels) or hold numbers beyond its 38 digits, and a map would drop its nulls.
CANVAS_STATE_TEXT = "canvasStateJson"


def flow_key(user_id: UUID, flow_id: UUID) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.flow_sk(flow_id))


def create_flow(
    flow: dict[str, Any],
    owner_profile: dict[str, Any],
    limits_by_tier: dict[str, int | None],
    claimed_tier: str | None,
    default_tier: str,
) -> None:
    """Insert the flow and count it against the owner's flow limit in one transaction (users.insert_counted);
    raises users.LimitFull at the limit."""
    user_id = flow["userId"]
    item = {
        "PK": keys.user_pk(user_id),
        "SK": keys.flow_sk(flow["id"]),
        "GSI1PK": keys.flows_by_update_pk(user_id),
        "GSI1SK": keys.flows_by_update_sk(flow["updatedAt"], flow["id"]),
        "entity": "flow",
        **flow,
    }
    insert_counted(item, FLOW_COUNTER, owner_profile, limits_by_tier, claimed_tier, default_tier)


def _flow(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is not None and CANVAS_STATE_TEXT in item:
        item["canvasState"] = json.loads(item.pop(CANVAS_STATE_TEXT))
    return item


def get_flow(user_id: UUID, flow_id: UUID) -> dict[str, Any] | None:
    return _flow(get_item(flow_key(user_id, flow_id)))


def list_flow_summaries(user_id: UUID, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the user's flows, newest `updatedAt` first."""
    return query_items(
        {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.flows_by_update_pk(user_id)}},
            "ExpressionAttributeNames": {"#name": "name", "#status": "status"},
            "ProjectionExpression": ", ".join(SUMMARY_FIELDS),
            "ScanIndexForward": False,
        },
        limit,
    )


def update_flow(
    user_id: UUID,
    flow_id: UUID,
    changes: dict[str, Any],
    updated_at: str,
    required_statuses: tuple[str, ...] = (),
    expected_updated_at: str | None = None,
    together_with: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Apply `changes` (None removes the attribute) and return the new item.

    Conditions: the flow exists, its status is one of `required_statuses` (if given), and it was not updated
    since `expected_updated_at` (if given). Raises FlowConditionFailed with the current item otherwise.
    `together_with`: other transaction actions that must succeed with the update (a start recording the modules
    it pins); when one of them fails, TogetherFailed.
    """
    names: dict[str, str] = {"#updatedAt": "updatedAt", "#gsi1sk": "GSI1SK"}
    values: dict[str, Any] = {
        ":updatedAt": updated_at,
        ":gsi1sk": keys.flows_by_update_sk(updated_at, flow_id),
    }
    sets = ["#updatedAt = :updatedAt", "#gsi1sk = :gsi1sk"]
    removes = []
    if "canvasState" in changes:
        changes = dict(changes)
        canvas_state = changes.pop("canvasState")
        changes[CANVAS_STATE_TEXT] = None if canvas_state is None else json.dumps(canvas_state, ensure_ascii=False)
    for index, (field, value) in enumerate(changes.items()):
        names[f"#f{index}"] = field
        if value is None:
            removes.append(f"#f{index}")
        else:
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
    conditions = ["attribute_exists(PK)"]
    if required_statuses:
        names["#status"] = "status"
        placeholders = []
        for index, status in enumerate(required_statuses):
            values[f":allowed{index}"] = status
            placeholders.append(f":allowed{index}")
        conditions.append(f"#status IN ({', '.join(placeholders)})")
    if expected_updated_at is not None:
        values[":expectedUpdatedAt"] = expected_updated_at
        conditions.append("#updatedAt = :expectedUpdatedAt")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    if together_with:
        update = {
            "TableName": table_name(),
            "Key": flow_key(user_id, flow_id),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            transact_write([{"Update": update}, *together_with])
        except ClientError as exc:
            if first_action_failed(exc):
                old = exc.response.get("CancellationReasons", [{}])[0].get("Item")
                raise FlowConditionFailed(_flow(deserialize(old)) if old else None) from exc
            if error_code(exc) == "TransactionCanceledException":
                raise TogetherFailed() from exc
            raise
        return get_flow(user_id, flow_id)
    try:
        response = client().update_item(
            TableName=table_name(),
            Key=flow_key(user_id, flow_id),
            UpdateExpression=expression,
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialize(values),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            old = exc.response.get("Item")
            raise FlowConditionFailed(_flow(deserialize(old)) if old else None) from exc
        raise
    return _flow(deserialize(response["Attributes"]))


def delete_flow(user_id: UUID, flow_id: UUID) -> bool:
    """Delete the flow item and uncount it; False when there was no such flow."""
    return delete_counted(flow_key(user_id, flow_id), profile_key(user_id), FLOW_COUNTER)


def get_flow_and_profile(user_id: UUID, flow_id: UUID) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The flow and its owner's profile in one round trip (BatchGetItem, strongly consistent); None when absent."""
    found: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {
        table_name(): {"Keys": [flow_key(user_id, flow_id), profile_key(user_id)], "ConsistentRead": True}
    }
    while request:
        response = client().batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(table_name(), []):
            item = deserialize(raw)
            found[item["SK"]] = item
        request = response.get("UnprocessedKeys") or {}
    return _flow(found.get(keys.flow_sk(flow_id))), found.get(keys.PROFILE)
