"""Project memory rules for the API: a flow's memory state, its entries, their preconditions. The store and its
accounting live in the layer (bloxserver.project_memory), shared with the executor's runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

from bloxserver import memory_rules
from bloxserver.auth import Principal
from bloxserver.contract import MemoryEntry, ProjectMemory
from bloxserver.dal import memory as memory_store
from bloxserver.dal.memory import StoredEntry
from bloxserver.errors import (
    LimitReached,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
    flow_not_found,
)
from bloxserver.ownership import owned_flow
from bloxserver.project_memory import FlowMemory, Precondition


def _memory(principal: Principal, flow_id: UUID) -> FlowMemory:
    return FlowMemory(principal.user_id, flow_id, principal.tier_claim)


def checked_key(key: str) -> str:
    problem = memory_rules.key_problem(key)
    if problem:
        raise ValidationFailed(f"Invalid memory key: {problem}", {"path.key": problem})
    return key


def precondition(if_match: str | None, if_none_match: str | None) -> Precondition:
    """If-Match: <version> (quoted or not) and If-None-Match: *; anything else in them is a 422 naming the header."""
    version = None
    if if_match is not None:
        text = if_match.strip().removeprefix("W/").strip('"')
        if not text.isdigit() or not text.isascii() or len(text) > 20:  # versions are microsecond times
            raise ValidationFailed(
                "If-Match must be an entry's version (an integer)", {"header.if-match": "must be a version"}
            )
        version = int(text)
    if if_none_match is not None and if_none_match.strip() != "*":
        raise ValidationFailed("If-None-Match takes only *", {"header.if-none-match": "must be *"})
    if version is not None and if_none_match is not None:
        raise ValidationFailed(
            "If-Match and If-None-Match cannot be combined", {"header.if-none-match": "not with If-Match"}
        )
    return Precondition(version, if_none_match is not None)


def _entry(entry: StoredEntry) -> MemoryEntry:
    return MemoryEntry.model_validate(
        {
            "key": entry.key,
            "value": entry.value,
            "sizeBytes": entry.size_bytes,
            "updatedAt": entry.updated_at,
            "version": entry.version,
            "expiresAt": datetime.fromtimestamp(entry.expires_at, UTC) if entry.expires_at else None,
        }
    )


def describe(principal: Principal, flow_id: UUID) -> ProjectMemory:
    memory = _memory(principal, flow_id)
    state = memory_store.get_state(principal.user_id, flow_id)
    listed: list[str] = []
    used = 0
    if state is None:
        owned_flow(principal.user_id, flow_id)
    else:
        listed = memory_store.list_keys(
            principal.user_id, flow_id, int(time.time()), memory_rules.MAX_LISTED_KEYS + 1
        )
        used = state.used_bytes - memory.expired_bytes()  # expired entries stop counting at expiry
    return ProjectMemory.model_validate(
        {
            "flowId": flow_id,
            "enabled": bool(state and state.enabled),
            "usedBytes": used,
            "maxBytes": memory.max_bytes(fresh=True),
            "keys": listed[: memory_rules.MAX_LISTED_KEYS],
            "hasMoreKeys": len(listed) > memory_rules.MAX_LISTED_KEYS,
        }
    )


def set_enabled(principal: Principal, flow_id: UUID, enabled: bool) -> ProjectMemory:
    if enabled:
        memory = _memory(principal, flow_id)
        if memory.max_bytes(fresh=True) == 0:
            owned_flow(principal.user_id, flow_id)  # another user's flow stays a 404, whatever the caller's tier
            tier = memory.tier().value
            raise LimitReached(
                f"Project memory is not available on the {tier} tier; upgrade to use it", {"tier": tier, "limit": 0}
            )
    try:
        memory_store.set_enabled(principal.user_id, flow_id, enabled)
    except memory_store.FlowMissing:
        raise flow_not_found() from None
    return describe(principal, flow_id)


def clear(principal: Principal, flow_id: UUID) -> None:
    owned_flow(principal.user_id, flow_id)
    try:
        memory_store.clear(principal.user_id, flow_id)
    except memory_store.KeptChanging:
        raise ServiceUnavailable("The flow's memory kept being written while it was cleared; try again") from None


def get_entry(principal: Principal, flow_id: UUID, key: str) -> MemoryEntry:
    entry = _memory(principal, flow_id).read(checked_key(key))
    if entry is None:
        raise NotFound("Memory entry not found", {"key": key})
    return _entry(entry)


def put_entry(
    principal: Principal, flow_id: UUID, key: str, value: object, ttl_seconds: int | None, condition: Precondition
) -> MemoryEntry:
    checked_key(key)
    try:
        text = memory_rules.value_text(value)
    except memory_rules.ValueTooLarge as problem:
        raise PayloadTooLarge(f"Memory value too large: {problem}", {"body.value": str(problem)}) from None
    except ValueError as problem:
        raise ValidationFailed(f"Invalid memory value: {problem}", {"body.value": str(problem)}) from None
    return _entry(_memory(principal, flow_id).put(key, text, ttl_seconds, condition))


def delete_entry(principal: Principal, flow_id: UUID, key: str, condition: Precondition) -> None:
    _memory(principal, flow_id).delete(checked_key(key), condition)
