"""Project memory items: a flow's state item (enabled, usedBytes) and its entries, in one partition per flow whose
key holds the owner (keys.memory_pk), so another user's flow has no memory for the caller.

Every write of an entry is one TransactWriteItems that also adds the entry's size change to the state item's
`usedBytes`, under conditions that pin the entry as the writer assumed it (absent, or its `version`), that memory is
enabled, and, when the write grows the memory, that there is room (and, for the owner's stored tier, that it is
still the tier the room was computed for). So `usedBytes` is always exactly the sum of the stored entries' sizes.
See docs/memory.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.flows import flow_key
from bloxserver.dal.users import tier_check
from bloxserver.dal.table import (
    cancellation_codes,
    client,
    delete_items,
    deserialize,
    error_code,
    key,
    partition_keys,
    query_items,
    serialize,
    table_name,
    transact_write,
)

# TransactWriteItems takes at most 100 actions: a clear removes 99 entries and uncounts them in each.
CLEAR_BATCH = 99
# Not the table's TTL attribute (`expiresAt`): DynamoDB's TTL deletion would remove an entry without uncounting it.
# The expiry sweep removes expired entries and uncounts them in one transaction (docs/memory.md).
EXPIRY_ATTRIBUTE = "expiry"


@dataclass(frozen=True)
class StoredEntry:
    key: str
    value: str | None  # compact JSON text; None only in a container's remembered guess of a large value
    size_bytes: int
    version: int
    updated_at: str
    expires_at: int | None = None  # epoch seconds

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class MemoryState:
    enabled: bool
    used_bytes: int


@dataclass(frozen=True)
class Room:
    """The most bytes the memory may hold after a growing write, and the condition (expression on `#tier`, its
    values) the owner's profile must meet for that limit to be theirs (None: the limit came from a token claim)."""

    max_bytes: int
    profile_condition: tuple[str, dict[str, Any]] | None = None


class StateMissing(Exception):
    """The flow has no memory state: memory was never enabled (or the flow is not the caller's, or gone)."""


class MemoryOff(Exception):
    """The flow's memory is disabled."""


class EntryChanged(Exception):
    """The entry is not as the writer assumed; `current` is how it is (None: absent)."""

    def __init__(self, current: StoredEntry | None) -> None:
        super().__init__("entry changed")
        self.current = current


class NoRoom(Exception):
    """The write would take usedBytes past the limit; `used_bytes` is what the state held."""

    def __init__(self, used_bytes: int) -> None:
        super().__init__(used_bytes)
        self.used_bytes = used_bytes


class ProfileChanged(Exception):
    """The owner's stored tier is not the one the room was computed for; `profile` is the stored profile."""

    def __init__(self, profile: dict[str, Any] | None) -> None:
        super().__init__()
        self.profile = profile


class FlowMissing(Exception):
    """No such flow of this owner."""


class KeptChanging(Exception):
    """Entries kept being written while the memory was being cleared; some may remain."""


def state_key(user_id: UUID | str, flow_id: UUID | str) -> dict[str, Any]:
    return key(keys.memory_pk(user_id, flow_id), keys.MEMORY_STATE_SK)


def entry_key(user_id: UUID | str, flow_id: UUID | str, entry: str) -> dict[str, Any]:
    return key(keys.memory_pk(user_id, flow_id), keys.memory_entry_sk(entry))


def _entry(item: dict[str, Any]) -> StoredEntry:
    return StoredEntry(
        key=item["SK"][len(keys.MEMORY_ENTRY_SK_PREFIX) :],
        value=item.get("value"),
        size_bytes=int(item["sizeBytes"]),
        version=int(item["version"]),
        updated_at=item["updatedAt"],
        expires_at=int(item[EXPIRY_ATTRIBUTE]) if EXPIRY_ATTRIBUTE in item else None,
    )


def _state(item: dict[str, Any]) -> MemoryState:
    return MemoryState(enabled=bool(item.get("enabled")), used_bytes=int(item.get("usedBytes", 0)))


def get_state(user_id: UUID, flow_id: UUID) -> MemoryState | None:
    raw = client().get_item(TableName=table_name(), Key=state_key(user_id, flow_id), ConsistentRead=True).get("Item")
    return _state(deserialize(raw)) if raw else None


def get_state_and_entry(user_id: UUID, flow_id: UUID, entry: str) -> tuple[MemoryState | None, StoredEntry | None]:
    """The memory state and one entry as they are now (None when absent): one strongly consistent BatchGetItem."""
    wanted = [state_key(user_id, flow_id), entry_key(user_id, flow_id, entry)]
    request: dict[str, Any] = {table_name(): {"Keys": wanted, "ConsistentRead": True}}
    state = stored = None
    while request:
        response = client().batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(table_name(), []):
            item = deserialize(raw)
            if item["SK"] == keys.MEMORY_STATE_SK:
                state = _state(item)
            else:
                stored = _entry(item)
        request = response.get("UnprocessedKeys") or {}
    return state, stored


def _pinned(assumed: StoredEntry | None) -> tuple[str, dict[str, Any]]:
    if assumed is None:
        return "attribute_not_exists(PK)", {}
    return "#version = :assumedVersion", {":assumedVersion": assumed.version}


def write_entry(
    user_id: UUID,
    flow_id: UUID,
    entry: str,
    assumed: StoredEntry | None,
    new: StoredEntry | None,
    room: Room | None,
) -> None:
    """Replace entry `entry`, assumed to be `assumed` (None: absent), by `new` (None: delete it) and count the size
    change, in one transaction. `room` applies when the change is growth. With both None, checks that the entry is
    absent and memory enabled. Raises EntryChanged, StateMissing, MemoryOff, ProfileChanged or NoRoom (checked in
    that order: a wrong assumption about the entry or the tier makes a lack of room meaningless)."""
    delta = (new.size_bytes if new else 0) - (assumed.size_bytes if assumed else 0)
    state_condition = "attribute_exists(PK) AND #enabled = :true"
    state_values: dict[str, Any] = {":delta": delta, ":true": True}
    if delta > 0 and room is not None:
        state_condition += " AND #used <= :room"
        state_values[":room"] = room.max_bytes - delta
    actions: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table_name(),
                "Key": state_key(user_id, flow_id),
                "UpdateExpression": "ADD #used :delta",
                "ConditionExpression": state_condition,
                "ExpressionAttributeNames": {"#used": "usedBytes", "#enabled": "enabled"},
                "ExpressionAttributeValues": serialize(state_values),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
    ]
    entry_condition, entry_values = _pinned(assumed)
    entry_names = {"#version": "version"} if assumed is not None else {}
    if new is not None:
        item: dict[str, Any] = {
            "PK": keys.memory_pk(user_id, flow_id),
            "SK": keys.memory_entry_sk(entry),
            "entity": "memory",
            "value": new.value,
            "sizeBytes": new.size_bytes,
            "version": new.version,
            "updatedAt": new.updated_at,
        }
        if new.expires_at is not None:
            item[EXPIRY_ATTRIBUTE] = new.expires_at
            item["GSI1PK"] = keys.memory_expiry_pk(flow_id)
            item["GSI1SK"] = keys.memory_expiry_sk(new.expires_at)
        operation: dict[str, Any] = {"Put": {"TableName": table_name(), "Item": serialize(item)}}
    else:
        operation = {"Delete": {"TableName": table_name(), "Key": entry_key(user_id, flow_id, entry)}}
    body = next(iter(operation.values()))
    body["ConditionExpression"] = entry_condition
    body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if entry_names:
        body["ExpressionAttributeNames"] = entry_names
        body["ExpressionAttributeValues"] = serialize(entry_values)
    actions.append(operation)
    if delta > 0 and room is not None and room.profile_condition is not None:
        actions.append(tier_check(user_id, room.profile_condition))
    try:
        transact_write(actions)
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        reasons = exc.response.get("CancellationReasons", [])
        codes = cancellation_codes(exc)
        if codes[1] == "ConditionalCheckFailed":
            old = reasons[1].get("Item")
            raise EntryChanged(_entry(deserialize(old)) if old else None) from exc
        state = reasons[0].get("Item")
        if codes[0] == "ConditionalCheckFailed" and not state:
            raise StateMissing() from exc
        if codes[0] == "ConditionalCheckFailed" and not _state(deserialize(state)).enabled:
            raise MemoryOff() from exc
        if len(codes) > 2 and codes[2] == "ConditionalCheckFailed":
            profile = reasons[2].get("Item")
            raise ProfileChanged(deserialize(profile) if profile else None) from exc
        if codes[0] == "ConditionalCheckFailed":
            raise NoRoom(_state(deserialize(state)).used_bytes) from exc
        raise


def set_enabled(user_id: UUID, flow_id: UUID, enabled: bool) -> None:
    """Turn the flow's memory on or off (its entries stay either way); FlowMissing when there is no such flow."""
    try:
        transact_write(
            [
                {
                    "ConditionCheck": {
                        "TableName": table_name(),
                        "Key": flow_key(user_id, flow_id),
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
                {
                    "Update": {
                        "TableName": table_name(),
                        "Key": state_key(user_id, flow_id),
                        "UpdateExpression": "SET #enabled = :enabled, #entity = :entity, #flowId = :flowId, "
                        "#used = if_not_exists(#used, :zero)",
                        "ExpressionAttributeNames": {
                            "#enabled": "enabled",
                            "#entity": "entity",
                            "#flowId": "flowId",
                            "#used": "usedBytes",
                        },
                        "ExpressionAttributeValues": serialize(
                            {":enabled": enabled, ":entity": "memory-state", ":flowId": str(flow_id), ":zero": 0}
                        ),
                    }
                },
            ]
        )
    except ClientError as exc:
        if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[0] == "ConditionalCheckFailed":
            raise FlowMissing() from exc
        raise


def _entries_request(user_id: UUID, flow_id: UUID, projection: str, names: dict[str, str]) -> dict[str, Any]:
    return {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
        "ExpressionAttributeValues": {
            ":pk": {"S": keys.memory_pk(user_id, flow_id)},
            ":prefix": {"S": keys.MEMORY_ENTRY_SK_PREFIX},
        },
        "ProjectionExpression": projection,
        **({"ExpressionAttributeNames": names} if names else {}),
        "ConsistentRead": True,
    }


def list_keys(user_id: UUID, flow_id: UUID, now: int, limit: int) -> list[str]:
    """The first `limit` keys of live (unexpired) entries, in key order (UTF-8 bytes)."""
    request = _entries_request(user_id, flow_id, "SK", {"#expiry": EXPIRY_ATTRIBUTE})
    request["FilterExpression"] = "attribute_not_exists(#expiry) OR #expiry > :now"
    request["ExpressionAttributeValues"][":now"] = {"N": str(now)}
    prefix = len(keys.MEMORY_ENTRY_SK_PREFIX)
    return [item["SK"][prefix:] for item in query_items(request, limit)]


def clear(user_id: UUID, flow_id: UUID, attempts: int = 5) -> None:
    """Delete every entry and uncount it: each transaction deletes up to CLEAR_BATCH entries as read (by version) and
    subtracts exactly their sizes, so concurrent writes keep usedBytes exact; entries changed meanwhile are read
    again and deleted in a later round."""
    request = _entries_request(user_id, flow_id, "SK, sizeBytes, #version", {"#version": "version"})
    for _ in range(attempts):
        entries = query_items(dict(request))
        if not entries:
            return
        for start in range(0, len(entries), CLEAR_BATCH):
            batch = entries[start : start + CLEAR_BATCH]
            deletes = [
                {
                    "Delete": {
                        "TableName": table_name(),
                        "Key": key(keys.memory_pk(user_id, flow_id), entry["SK"]),
                        "ConditionExpression": "#version = :version",
                        "ExpressionAttributeNames": {"#version": "version"},
                        "ExpressionAttributeValues": serialize({":version": entry["version"]}),
                    }
                }
                for entry in batch
            ]
            uncount = {
                "Update": {
                    "TableName": table_name(),
                    "Key": state_key(user_id, flow_id),
                    "UpdateExpression": "ADD #used :delta",
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": {"#used": "usedBytes"},
                    "ExpressionAttributeValues": serialize({":delta": -sum(e["sizeBytes"] for e in batch)}),
                }
            }
            try:
                transact_write([uncount, *deletes])
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise  # a cancelled batch (an entry changed, the state gone) is read again next round
    raise KeptChanging()


def delete_all(user_id: UUID | str, flow_id: UUID | str) -> None:
    """Delete the flow's memory outright (with its flow): the state first, so no write succeeds after it, then the
    entries."""
    delete_items([state_key(user_id, flow_id)])
    delete_items(partition_keys(keys.memory_pk(user_id, flow_id)))


@dataclass(frozen=True)
class ExpiredEntry:
    pk: str
    sk: str
    version: int
    size_bytes: int


def _expired(shard_pk: str, now: int, limit: int | None, memory_pk: str | None = None) -> list[ExpiredEntry]:
    request: dict[str, Any] = {
        "IndexName": "GSI1",
        "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK <= :now",
        "ExpressionAttributeValues": {":pk": {"S": shard_pk}, ":now": {"S": keys.memory_expiry_sk(now)}},
        "ProjectionExpression": "PK, SK, sizeBytes, #version",
        "ExpressionAttributeNames": {"#version": "version"},
    }
    if memory_pk is not None:
        request["FilterExpression"] = "PK = :memory"
        request["ExpressionAttributeValues"][":memory"] = {"S": memory_pk}
    items = query_items(request, limit)
    return [ExpiredEntry(item["PK"], item["SK"], int(item["version"]), int(item["sizeBytes"])) for item in items]


def expired_entries(shard: int, now: int, limit: int) -> list[ExpiredEntry]:
    """Up to `limit` entries of one expiry shard whose expiry has passed, soonest first (GSI1: eventually
    consistent, so the removal checks each entry's version)."""
    return _expired(keys.memory_expiry_shard_pk(shard), now, limit)


def expired_entries_of(user_id: UUID, flow_id: UUID, now: int) -> list[ExpiredEntry]:
    """The flow's entries whose expiry has passed and that the sweep has not removed yet: the expired part of its
    shard (at most the last sweep interval's worth), filtered to the flow."""
    return _expired(keys.memory_expiry_pk(flow_id), now, None, keys.memory_pk(user_id, flow_id))


def remove_expired(entry: ExpiredEntry) -> bool:
    """Delete an expired entry as read and uncount it; False when it changed since (rewritten, deleted)."""
    delete = {
        "Delete": {
            "TableName": table_name(),
            "Key": key(entry.pk, entry.sk),
            "ConditionExpression": "#version = :version",
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": serialize({":version": entry.version}),
        }
    }
    uncount = {
        "Update": {
            "TableName": table_name(),
            "Key": key(entry.pk, keys.MEMORY_STATE_SK),
            "UpdateExpression": "ADD #used :delta",
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeNames": {"#used": "usedBytes"},
            "ExpressionAttributeValues": serialize({":delta": -entry.size_bytes}),
        }
    }
    try:
        transact_write([delete, uncount])
        return True
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        codes = cancellation_codes(exc)
        if codes[0] == "ConditionalCheckFailed":
            return False
        if codes[1] != "ConditionalCheckFailed":
            raise
    # The state is gone (the flow's memory is being deleted): the entry goes without accounting.
    try:
        client().delete_item(
            TableName=table_name(),
            Key=key(entry.pk, entry.sk),
            ConditionExpression="#version = :version",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues=serialize({":version": entry.version}),
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True
