"""User profile items and their counters (flowCount)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import (
    client,
    delete_items,
    deserialize,
    error_code,
    get_item,
    key,
    partition_keys,
    serialize,
    table_name,
)


def profile_key(user_id: UUID) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.PROFILE)


def tier_check(user_id: UUID | str, condition: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A transaction's ConditionCheck that the profile meets `condition` (an expression on `#tier`, its values,
    as limits.stored_tier_condition makes), returning the profile when it does not."""
    expression, values = condition
    return {
        "ConditionCheck": {
            "TableName": table_name(),
            "Key": key(keys.user_pk(user_id), keys.PROFILE),
            "ConditionExpression": expression,
            "ExpressionAttributeNames": {"#tier": "tier"},
            "ExpressionAttributeValues": serialize(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def get_user(user_id: UUID) -> dict[str, Any] | None:
    return get_item(profile_key(user_id))


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


PROFILE_FIELDS = ("clerkId", "email", "name", "avatarUrl", "tier", "tierAsOf")


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


def record_tier(user_id: UUID, tier: str, as_of: int) -> bool:
    """Store the user's tier as known at `as_of` (epoch seconds) unless newer word is stored; False if it was."""
    try:
        client().update_item(
            TableName=table_name(),
            Key=profile_key(user_id),
            UpdateExpression="SET #tier = :tier, #asOf = :asOf",
            ConditionExpression="attribute_exists(PK) AND (attribute_not_exists(#asOf) OR #asOf < :asOf)",
            ExpressionAttributeNames={"#tier": "tier", "#asOf": "tierAsOf"},
            ExpressionAttributeValues=serialize({":tier": tier, ":asOf": as_of}),
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def owned_item_keys(user_id: UUID) -> list[dict[str, Any]]:
    """Keys of every item in the user's partition (profile, flows, triggers, counters)."""
    return partition_keys(keys.user_pk(user_id))


def delete_owned_items(user_id: UUID) -> None:
    """Delete every item left in the user's partition."""
    delete_items(owned_item_keys(user_id))
