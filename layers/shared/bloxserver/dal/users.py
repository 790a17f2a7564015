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


def get_user(user_id: UUID) -> dict[str, Any] | None:
    return get_item(profile_key(user_id))


# Attributes of a usage counter item (USAGE#M / USAGE#D): executions started, LLM tokens used.
USAGE_EXECUTIONS = "count"
USAGE_TOKENS = "tokens"


def get_user_with_usage(user_id: UUID, usage_sk: str) -> tuple[dict[str, Any] | None, int, int]:
    """The profile and one usage counter (executions started, LLM tokens used) in a single round trip."""
    pk = keys.user_pk(user_id)
    response = client().batch_get_item(
        RequestItems={
            table_name(): {"Keys": [key(pk, keys.PROFILE), key(pk, usage_sk)], "ConsistentRead": True}
        }
    )
    user, usage = None, {}
    for raw in response.get("Responses", {}).get(table_name(), []):
        item = deserialize(raw)
        if item["SK"] == keys.PROFILE:
            user = item
        else:
            usage = item
    return user, int(usage.get(USAGE_EXECUTIONS, 0)), int(usage.get(USAGE_TOKENS, 0))


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


def upsert_profile(
    user_id: UUID, profile: dict[str, Any], created_at: str, if_absent: dict[str, Any] | None = None
) -> None:
    """Create or update a user's profile fields, keeping counters and the creation time. A field that `profile`
    leaves None is removed, unless `if_absent` names it: then a stored value stays, and that value is only
    written when there is none."""
    if_absent = if_absent or {}
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
        if profile.get(field) is None and field in if_absent:
            values[f":{field}"] = if_absent[field]
            sets.append(f"#{field} = if_not_exists(#{field}, :{field})")
        elif profile.get(field) is None:
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
