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
    delete_prefixed,
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


def _with_canvas_text(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with its canvasState (if any) as the JSON text it is stored as."""
    if "canvasState" not in fields:
        return fields
    stored = dict(fields)
    canvas_state = stored.pop("canvasState")
    stored[CANVAS_STATE_TEXT] = None if canvas_state is None else json.dumps(canvas_state, ensure_ascii=False)
    return stored


def create_flow(
    flow: dict[str, Any],
    owner_profile: dict[str, Any],
    limits_by_tier: dict[str, int | None],
    claimed_tier: str | None,
    default_tier: str,
    first_version: dict[str, Any] | None = None,
    together_with: list[dict[str, Any]] | None = None,
) -> None:
    """Insert the flow with its first stored version (version_put's fields; None: a flow without versions, as
    stored before they existed) and count it against the owner's flow limit in one transaction
    (users.insert_counted), with `together_with` (its triggers); raises users.LimitFull at the limit."""
    user_id = flow["userId"]
    item = {
        "PK": keys.user_pk(user_id),
        "SK": keys.flow_sk(flow["id"]),
        "GSI1PK": keys.flows_by_update_pk(user_id),
        "GSI1SK": keys.flows_by_update_sk(flow["updatedAt"], flow["id"]),
        "entity": "flow",
        **_with_canvas_text(flow),
    }
    actions = [version_put(user_id, flow["id"], first_version)] if first_version else []
    actions += together_with or []
    insert_counted(item, FLOW_COUNTER, owner_profile, limits_by_tier, claimed_tier, default_tier, actions)


# Stored versions of a flow's definition (organismYaml + canvasState): one item each in the owner's partition.
VERSION_SUMMARY_FIELDS = ("version", "createdAt", "sha256")


def version_put(user_id: UUID | str, flow_id: UUID | str, version: dict[str, Any]) -> dict[str, Any]:
    """The transaction action storing `version` ({version, createdAt, sha256, organismYaml, canvasState}), which
    must be new."""
    item = {
        "PK": keys.user_pk(user_id),
        "SK": keys.flow_version_sk(flow_id, version["version"]),
        "entity": "flowVersion",
        "flowId": str(flow_id),
        **_with_canvas_text(version),
    }
    return {
        "Put": {"TableName": table_name(), "Item": serialize(item), "ConditionExpression": "attribute_not_exists(PK)"}
    }


def version_delete(user_id: UUID | str, flow_id: UUID | str, version: int) -> dict[str, Any]:
    """The transaction action deleting a stored version (nothing when it is not stored)."""
    return {"Delete": {"TableName": table_name(), "Key": key(keys.user_pk(user_id), keys.flow_version_sk(flow_id, version))}}


def get_version(user_id: UUID, flow_id: UUID, version: int) -> dict[str, Any] | None:
    return _flow(get_item(key(keys.user_pk(user_id), keys.flow_version_sk(flow_id, version))))


def list_version_summaries(user_id: UUID, flow_id: UUID, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` stored versions of the flow, newest first, without their content."""
    return query_items(
        {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": keys.user_pk(user_id)},
                ":prefix": {"S": keys.flow_versions_prefix(flow_id)},
            },
            "ProjectionExpression": ", ".join(VERSION_SUMMARY_FIELDS),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        },
        limit,
    )


def delete_versions(user_id: UUID, flow_id: UUID) -> None:
    """Every stored version of the flow (with the flow's deletion)."""
    delete_prefixed(keys.user_pk(user_id), keys.flow_versions_prefix(flow_id))


def _flow(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is not None and CANVAS_STATE_TEXT in item:
        item["canvasState"] = json.loads(item.pop(CANVAS_STATE_TEXT))
    return item


def get_flow(user_id: UUID, flow_id: UUID) -> dict[str, Any] | None:
    return _flow(get_item(flow_key(user_id, flow_id)))


def get_flow_and_owner(
    user_id: UUID | str, flow_id: UUID | str, with_owner: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The flow and, `with_owner`, its owner's profile (None when absent), strongly consistent, in one round trip."""
    wanted = [flow_key(user_id, flow_id)] + ([profile_key(user_id)] if with_owner else [])
    if not with_owner:
        return _flow(get_item(wanted[0])), None
    found: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {table_name(): {"Keys": wanted, "ConsistentRead": True}}
    while request:
        response = client().batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(table_name(), []):
            found[raw["SK"]["S"]] = deserialize(raw)
        request = response.get("UnprocessedKeys") or {}
    return _flow(found.get(keys.flow_sk(flow_id))), found.get(keys.PROFILE)


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
    expected_version: int | None = None,
    written_over: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply `changes` (None removes the attribute) and return the new item.

    Conditions: the flow exists, its status is one of `required_statuses` (if given), it was not updated
    since `expected_updated_at` (if given), and its `version` is `expected_version` (if given; a flow stored
    before versions existed has none and counts as version 1). Raises FlowConditionFailed with the current item
    otherwise.
    `together_with`: other transaction actions that must succeed with the update (a start recording the modules
    it pins); when one of them fails, TogetherFailed. The item is then read back, unless `written_over` is the item
    read (the update's `expected_updated_at` condition proved it unchanged): the new item is that item with `changes`.
    """
    sets, removes, names, values = set_and_remove(_with_canvas_text(changes), "f")
    names.update({"#updatedAt": "updatedAt", "#gsi1sk": "GSI1SK"})
    values.update({":updatedAt": updated_at, ":gsi1sk": keys.flows_by_update_sk(updated_at, flow_id)})
    sets += ["#updatedAt = :updatedAt", "#gsi1sk = :gsi1sk"]
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
    if expected_version is not None:
        names["#version"] = "version"
        values[":expectedVersion"] = expected_version
        unversioned = " OR attribute_not_exists(#version)" if expected_version == 1 else ""
        conditions.append(f"(#version = :expectedVersion{unversioned})")
    expression = update_expression(sets, removes)
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
        if written_over is None:
            return get_flow(user_id, flow_id)
        written = {field: value for field, value in {**written_over, **changes}.items() if value is not None}
        return {**written, "updatedAt": updated_at}
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
