"""User profile items and their counters (flowCount, moduleCount), and inserts counted against a tier limit."""

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
    first_action_failed,
    serialize,
    table_name,
    transact_write,
)
from bloxserver.dal.table import uncount_action as uncount_item_action

FLOW_COUNTER = "flowCount"
MODULE_COUNTER = "moduleCount"
TOOL_COUNTER = "toolCount"  # marketplace tools installed (no tier limit: the count is the list's total)


class LimitFull(Exception):
    """The owner's count is at their tier's limit; carries the stored tier the condition saw."""

    def __init__(self, stored_tier: str | None) -> None:
        super().__init__(stored_tier)
        self.stored_tier = stored_tier


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


def counted(user_id: UUID, counter: str) -> int:
    """The profile's `counter` (FLOW_COUNTER, MODULE_COUNTER, TOOL_COUNTER), 0 before the user has a profile."""
    user = get_user(user_id)
    return int(user.get(counter, 0)) if user else 0


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


class _NeverBelow(Exception):
    """The claimed tier's limit is 0: no write can pass."""


def _limit_condition(
    limits_by_tier: dict[str, int | None], claimed_tier: str | None, default_tier: str
) -> tuple[str | None, dict[str, Any]]:
    """Condition on the profile item that holds only while the owner may add one more to the counter `#count`.

    With a tier claim the claimed tier's limit applies; otherwise the condition reads the stored tier itself,
    so the limit check and the increment are one atomic write. A tier whose limit is 0 never passes (a missing
    counter is below any other limit).
    """
    values: dict[str, Any] = {}

    def below(limit_name: str) -> str:
        return f"(attribute_not_exists(#count) OR #count < {limit_name})"

    if claimed_tier is not None:
        limit = limits_by_tier[claimed_tier]
        if limit is None:
            return None, values
        if limit == 0:
            raise _NeverBelow()
        values[":limit"] = limit
        return below(":limit"), values
    clauses = []
    for index, (tier, limit) in enumerate(limits_by_tier.items()):
        if limit == 0:
            continue
        values[f":tier{index}"] = tier
        is_tier = f"#tier = :tier{index}"
        if tier == default_tier:
            is_tier = f"(attribute_not_exists(#tier) OR {is_tier})"
        if limit is None:
            clauses.append(f"({is_tier})")
        else:
            values[f":limit{index}"] = limit
            clauses.append(f"({is_tier} AND {below(f':limit{index}')})")
    return " OR ".join(clauses), values


def insert_counted(
    item: dict[str, Any],
    counter: str,
    owner_profile: dict[str, Any],
    limits_by_tier: dict[str, int | None],
    claimed_tier: str | None,
    default_tier: str,
    together_with: list[dict[str, Any]] | None = None,
) -> None:
    """Put `item` (absent before) and add one to the owner's `counter` under their tier's limit, in one transaction
    (with `together_with`, more actions written with it: a new flow's first version, its triggers, a marketplace
    download; a failure of theirs is raised as the ClientError).

    The owner's profile is provisioned by the same write if this is their first request (with the claimed tier,
    else the default). Raises LimitFull when the limit is reached.
    """
    try:
        condition, values = _limit_condition(limits_by_tier, claimed_tier, default_tier)
    except _NeverBelow:
        raise LimitFull(None) from None
    names = {"#count": counter, "#tier": "tier", "#entity": "entity"}
    sets = ["#entity = :entity"]
    values.update({":one": 1, ":entity": "user", ":provisioned_tier": claimed_tier or default_tier})
    sets.append("#tier = if_not_exists(#tier, :provisioned_tier)")
    for field, value in owner_profile.items():
        if value is None:
            continue
        names[f"#{field}"] = field
        values[f":{field}"] = value
        sets.append(f"#{field} = if_not_exists(#{field}, :{field})")
    profile_update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": profile_key(owner_profile["id"]),
        "UpdateExpression": "SET " + ", ".join(sets) + " ADD #count :one",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": serialize(values),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if condition:
        profile_update["ConditionExpression"] = condition
    put = {"TableName": table_name(), "Item": serialize(item), "ConditionExpression": "attribute_not_exists(PK)"}
    try:
        transact_write([{"Update": profile_update}, {"Put": put}, *(together_with or [])])
    except ClientError as exc:
        if first_action_failed(exc):
            old = deserialize(exc.response.get("CancellationReasons", [])[0].get("Item", {}))
            raise LimitFull(old.get("tier")) from exc
        raise


def uncount_action(user_id: UUID | str, counter: str) -> dict[str, Any]:
    """The transaction action that takes one off the owner's `counter` (with the deletion of what it counted)."""
    return uncount_item_action(profile_key(user_id), counter)
