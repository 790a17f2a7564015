"""WASM module items: one per module in its owner's partition, listed newest-created first through GSI1, counted on
the profile (`moduleCount`) against the tier's limit. `usedBy` holds the running flows that pinned the module
(added in the transaction that starts a flow), so a module in use cannot be deleted.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import (
    batch_get,
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
from bloxserver.dal.users import MODULE_COUNTER, insert_counted, uncount_action

SUMMARY_FIELDS = ("id", "#name", "description", "createdAt", "#status")
USED_BY = "usedBy"


class ModuleConditionFailed(Exception):
    """A conditional write on a module failed; `current` is the item as it was (None: no such module)."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.current = current


def module_key(user_id: UUID | str, module_id: UUID | str) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.module_sk(module_id))


def _module(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored item as the logic sees it: `usedBy` as a list (a string set in DynamoDB)."""
    if item is not None:
        item[USED_BY] = sorted(item.get(USED_BY, ()))
    return item


def create_module(
    module: dict[str, Any],
    owner_profile: dict[str, Any],
    limits_by_tier: dict[str, int | None],
    claimed_tier: str | None,
    default_tier: str,
) -> None:
    """Insert the module and count it against the owner's module limit in one transaction; raises users.LimitFull
    at the limit."""
    user_id = module["userId"]
    item = {
        "PK": keys.user_pk(user_id),
        "SK": keys.module_sk(module["id"]),
        "GSI1PK": keys.modules_by_creation_pk(user_id),
        "GSI1SK": keys.modules_by_creation_sk(module["createdAt"], module["id"]),
        "entity": "module",
        **module,
    }
    insert_counted(item, MODULE_COUNTER, owner_profile, limits_by_tier, claimed_tier, default_tier)


def get_module(user_id: UUID | str, module_id: UUID | str) -> dict[str, Any] | None:
    return _module(get_item(module_key(user_id, module_id)))


def get_modules(user_id: UUID | str, module_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The owner's modules among `module_ids`, by id (absent ones are left out), consistently read."""
    found = batch_get([module_key(user_id, module_id) for module_id in sorted(set(module_ids))], consistent=True)
    return {item["id"]: _module(item) for item in found}


def list_module_summaries(user_id: UUID | str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the user's modules, newest first."""
    return query_items(
        {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.modules_by_creation_pk(user_id)}},
            "ExpressionAttributeNames": {"#name": "name", "#status": "status"},
            "ProjectionExpression": ", ".join(SUMMARY_FIELDS),
            "ScanIndexForward": False,
        },
        limit,
    )


def update_module(
    user_id: UUID | str,
    module_id: UUID | str,
    changes: dict[str, Any],
    updated_at: str,
    expected: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply `changes` (None removes the attribute) and return the new item. Conditions: the module exists, and
    each attribute of `expected` has that value. Raises ModuleConditionFailed with the current item otherwise."""
    sets, removes, names, values = set_and_remove(changes, "f")
    names["#updatedAt"] = "updatedAt"
    values[":updatedAt"] = updated_at
    sets.append("#updatedAt = :updatedAt")
    conditions = ["attribute_exists(PK)"]
    for index, (field, value) in enumerate((expected or {}).items()):
        names[f"#e{index}"] = field
        values[f":e{index}"] = value
        conditions.append(f"#e{index} = :e{index}")
    try:
        response = client().update_item(
            TableName=table_name(),
            Key=module_key(user_id, module_id),
            UpdateExpression=update_expression(sets, removes),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialize(values),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            old = exc.response.get("Item")
            raise ModuleConditionFailed(_module(deserialize(old)) if old else None) from exc
        raise
    return _module(deserialize(response["Attributes"]))


def use_actions(user_id: UUID | str, module_ids: list[str], flow_id: UUID | str) -> list[dict[str, Any]]:
    """Transaction actions recording that running flow `flow_id` uses these modules; each fails if its module is
    gone (a start racing a delete)."""
    return [use_action(module_key(user_id, module_id), flow_id) for module_id in sorted(set(module_ids))]


def use_action(item_key: dict[str, Any], flow_id: UUID | str) -> dict[str, Any]:
    """The transaction action adding `flow_id` to the `usedBy` of an item a flow runs (a module, an installed
    tool); it fails if the item is gone."""
    return {
        "Update": {
            "TableName": table_name(),
            "Key": item_key,
            "UpdateExpression": "ADD #usedBy :flow",
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeNames": {"#usedBy": USED_BY},
            "ExpressionAttributeValues": {":flow": {"SS": [str(flow_id)]}},
        }
    }


def release(user_id: UUID | str, module_ids: list[str], flow_id: UUID | str) -> None:
    """Forget that `flow_id` uses these modules (it stopped); modules deleted meanwhile are skipped."""
    for module_id in sorted(set(module_ids)):
        release_item(module_key(user_id, module_id), flow_id)


def release_item(item_key: dict[str, Any], flow_id: UUID | str) -> None:
    """Take `flow_id` out of an item's `usedBy`; nothing when the item is gone."""
    try:
        client().update_item(
            TableName=table_name(),
            Key=item_key,
            UpdateExpression="DELETE #usedBy :flow",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#usedBy": USED_BY},
            ExpressionAttributeValues={":flow": {"SS": [str(flow_id)]}},
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise


def delete_module(user_id: UUID | str, module_id: UUID | str) -> bool:
    """Delete the module item and uncount it, only while no flow is recorded as using it; False when there was no
    such module. Raises ModuleConditionFailed (with the current item) when a flow uses it."""
    return delete_unused(module_key(user_id, module_id), user_id, MODULE_COUNTER)


def delete_unused(item_key: dict[str, Any], user_id: UUID | str, counter: str) -> bool:
    """Delete an item flows run (a module, an installed tool) and take it off the owner's `counter`, only while no
    flow is recorded as using it; False when there was no such item. Raises ModuleConditionFailed (with the current
    item) when a flow uses it."""
    try:
        transact_write(
            [
                {
                    "Delete": {
                        "TableName": table_name(),
                        "Key": item_key,
                        "ConditionExpression": "attribute_exists(PK) AND "
                        "(attribute_not_exists(#usedBy) OR size(#usedBy) = :zero)",
                        "ExpressionAttributeNames": {"#usedBy": USED_BY},
                        "ExpressionAttributeValues": {":zero": {"N": "0"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                uncount_action(user_id, counter),
            ]
        )
    except ClientError as exc:
        if first_action_failed(exc):
            old = exc.response.get("CancellationReasons", [{}])[0].get("Item")
            if not old:
                return False
            raise ModuleConditionFailed(_module(deserialize(old))) from exc
        raise
    return True
