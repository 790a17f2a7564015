"""User profile items and their counters (flowCount)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import client, deserialize, error_code, key, serialize, table_name


def profile_key(user_id: UUID) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.PROFILE)


def get_user(user_id: UUID) -> dict[str, Any] | None:
    response = client().get_item(TableName=table_name(), Key=profile_key(user_id), ConsistentRead=True)
    item = response.get("Item")
    return deserialize(item) if item else None


def get_user_with_usage(user_id: UUID, usage_sk: str) -> tuple[dict[str, Any] | None, int]:
    """The profile and one usage counter in a single round trip."""
    pk = keys.user_pk(user_id)
    response = client().batch_get_item(
        RequestItems={
            table_name(): {"Keys": [key(pk, keys.PROFILE), key(pk, usage_sk)], "ConsistentRead": True}
        }
    )
    user, count = None, 0
    for raw in response.get("Responses", {}).get(table_name(), []):
        item = deserialize(raw)
        if item["SK"] == keys.PROFILE:
            user = item
        else:
            count = int(item.get("count", 0))
    return user, count


def insert_user(user: dict[str, Any]) -> bool:
    """Create the profile if absent; False when it already existed (another request provisioned it first)."""
    item = {"PK": keys.user_pk(user["id"]), "SK": keys.PROFILE, "entity": "user", "flowCount": 0, **user}
    try:
        client().put_item(
            TableName=table_name(), Item=serialize(item), ConditionExpression="attribute_not_exists(PK)"
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


PROFILE_FIELDS = ("clerkId", "email", "name", "avatarUrl", "tier")


def upsert_profile(user_id: UUID, profile: dict[str, Any], created_at: str) -> None:
    """Create or update a user's profile fields, keeping counters and the creation time."""
    names = {"#id": "id", "#created": "createdAt", "#entity": "entity", "#count": "flowCount"}
    values: dict[str, Any] = {":id": str(user_id), ":created": created_at, ":entity": "user", ":zero": 0}
    sets = [
        "#id = :id",
        "#created = if_not_exists(#created, :created)",
        "#entity = :entity",
        "#count = if_not_exists(#count, :zero)",
    ]
    removes = []
    for field in PROFILE_FIELDS:
        names[f"#{field}"] = field
        if profile.get(field) is None:
            removes.append(f"#{field}")
        else:
            values[f":{field}"] = profile[field]
            sets.append(f"#{field} = :{field}")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    client().update_item(
        TableName=table_name(),
        Key=profile_key(user_id),
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=serialize(values),
    )


def owned_item_keys(user_id: UUID) -> list[dict[str, Any]]:
    """Keys of every item in the user's partition (profile, flows, counters)."""
    keys_found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": keys.user_pk(user_id)}},
        "ProjectionExpression": "PK, SK",
        "ConsistentRead": True,
    }
    while True:
        response = client().query(**kwargs)
        keys_found.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return keys_found
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_items(item_keys: list[dict[str, Any]]) -> None:
    for start in range(0, len(item_keys), 25):
        pending = {table_name(): [{"DeleteRequest": {"Key": k}} for k in item_keys[start : start + 25]]}
        while pending:
            response = client().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
