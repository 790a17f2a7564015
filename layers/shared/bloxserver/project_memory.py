"""Project memory rules: one flow's key-value store as the API, the engine's `memory` handler (through
EngineMemory, the run's port) and WASM tools' `kv` host functions (the same port) use it. See docs/memory.md.

Each write is one conditional transaction (dal.memory.write_entry) that assumes how the entry is now. The assumption
comes from what this container last saw of the entry (ContainerMemory), else "absent"; when it is wrong, the
cancelled transaction returns the entry as it is and the write is made again on that, so a warm write costs one
call and a wrong guess one more. Growth is checked against the owner's tier: a token's claim, else the stored tier
(remembered per container and checked in the same transaction).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bloxserver import clock, keys, memory_rules
from bloxserver.contract import Tier
from bloxserver.dal import flows as flow_store
from bloxserver.dal import memory as store
from bloxserver.dal import users as user_store
from bloxserver.dal.memory import StoredEntry
from bloxserver.engine.context import StoreRefused
from bloxserver.errors import (
    AppError,
    MemoryDisabled,
    MemoryFull,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    VersionMismatch,
    flow_not_found,
)
from bloxserver.limits import TIER_LIMITS, known_stored_tiers, remember_stored_tier, stored_tier_condition
from bloxserver.memory import ContainerMemory

# A write whose assumption keeps being overtaken by concurrent writers is made again this many times at most; each
# failed attempt lets another writer through, so contention of this many writers on one key still succeeds.
WRITE_ATTEMPTS = 100
# Entries remembered with their value (increment reads its number from it) when the value is at most this long.
REMEMBERED_VALUE_BYTES = 1024
# Entries the expiry sweep removes in one run, per shard.
SWEEP_BUDGET_PER_SHARD = 500

_known_entries: ContainerMemory[StoredEntry | None] = ContainerMemory()


@dataclass(frozen=True)
class Precondition:
    """If-Match (a version) and If-None-Match: * of an API write; the engine's writes have none."""

    if_match: int | None = None
    if_none_match: bool = False

    def problem(self, live: StoredEntry | None) -> str | None:
        if self.if_match is not None and (live is None or live.version != self.if_match):
            found = "no entry" if live is None else f"version {live.version}"
            return f"If-Match expects version {self.if_match}, found {found}"
        if self.if_none_match and live is not None:
            return f"If-None-Match: * expects no entry, found version {live.version}"
        return None


class _Refusal(Exception):
    """What the current entry makes of the write; raised only when that entry was read, not guessed."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.message)
        self.error = error


def _growth(old: StoredEntry | None, new: StoredEntry | None) -> int:
    """How many bytes replacing `old` by `new` adds to the memory (None: absent)."""
    return (new.size_bytes if new else 0) - (old.size_bytes if old else 0)


def _new_version(old: StoredEntry | None) -> int:
    """Larger than the old version and than any version given before now (microseconds), so a deleted and
    re-created entry never repeats a version an If-Match may still hold."""
    return max((old.version + 1) if old else 1, time.time_ns() // 1000)


def _expiry(ttl_seconds: int | None) -> int | None:
    """Epoch seconds from which the entry is gone: at least ttl_seconds from now."""
    return None if ttl_seconds is None else math.ceil(time.time()) + ttl_seconds


class FlowMemory:
    """One flow's memory, for its owner. `tier_claim`: the tier a caller's token claims (its limit applies); None:
    the owner's stored tier applies (runs carry no token)."""

    def __init__(self, user_id: UUID, flow_id: UUID, tier_claim: Tier | None = None) -> None:
        self.user_id = user_id
        self.flow_id = flow_id
        self.tier_claim = tier_claim

    def _cache_key(self, key: str) -> str:
        return f"{self.user_id}#{self.flow_id}#{key}"

    def _remember(self, key: str, entry: StoredEntry | None) -> None:
        if entry is not None and entry.value is not None and len(entry.value) > REMEMBERED_VALUE_BYTES:
            entry = StoredEntry(entry.key, None, entry.size_bytes, entry.version, entry.updated_at, entry.expires_at)
        _known_entries.remember(self._cache_key(key), entry)

    def _disabled_or_missing(self) -> AppError:
        """No memory state: a flow that never had memory enabled, or none of the caller's."""
        if flow_store.get_flow(self.user_id, self.flow_id) is None:
            return flow_not_found()
        return self._disabled()

    @staticmethod
    def _disabled() -> MemoryDisabled:
        return MemoryDisabled("Project memory is disabled for this flow; enable it with PATCH .../memory")

    def max_bytes(self, fresh: bool = False) -> int:
        """The owner's limit; `fresh`: read the stored tier rather than trust this container's memory of it."""
        return TIER_LIMITS[self.tier(fresh)].project_memory_bytes

    def tier(self, fresh: bool = False) -> Tier:
        if self.tier_claim is not None:
            return self.tier_claim
        known = None if fresh else known_stored_tiers.get(str(self.user_id))
        return known if known is not None else remember_stored_tier(self.user_id, user_store.get_user(self.user_id))

    def _room(self) -> store.Room:
        tier = self.tier()
        condition = None if self.tier_claim is not None else stored_tier_condition(tier)
        return store.Room(TIER_LIMITS[tier].project_memory_bytes, condition)

    def expired_bytes(self) -> int:
        """What the flow's expired entries not yet removed by the sweep still count in usedBytes."""
        return sum(entry.size_bytes for entry in store.expired_entries_of(self.user_id, self.flow_id, int(time.time())))

    def remove_expired(self) -> int:
        """Remove the flow's expired entries now (as the sweep would) and uncount them; how many were removed."""
        expired = store.expired_entries_of(self.user_id, self.flow_id, int(time.time()))
        return sum(store.remove_expired(entry) for entry in expired)

    # Reads

    def read(self, key: str) -> StoredEntry | None:
        """The live entry (None when absent or expired); MemoryDisabled, or NotFound for no such flow."""
        entry = self._read_stored(key)
        return None if entry is None or entry.expired(time.time()) else entry

    # Writes

    def _change(self, key: str, decide: Callable[[StoredEntry | None], StoredEntry | None]) -> StoredEntry | None:
        """Write what `decide` makes of the live entry (None: absent or expired): the new entry, or None to delete.
        `decide` raises _Refusal for a write the entry does not allow. Returns the entry written (None: deleted or
        nothing to delete)."""
        stored = _known_entries.get(self._cache_key(key))
        read = False  # whether `stored` is the entry as read, rather than this container's guess
        swept = False  # whether the flow's expired entries were removed for lack of room
        for attempt in range(WRITE_ATTEMPTS):
            now = time.time()
            live = None if stored is None or stored.expired(now) else stored
            try:
                new = decide(live)
            except _Refusal as refusal:
                if read:
                    raise refusal.error from None
                stored, read = self._read_stored(key), True
                continue
            if new is None and stored is None and read:
                return None  # nothing to delete
            try:
                store.write_entry(self.user_id, self.flow_id, key, stored, new, self._room_for(stored, new))
            except store.EntryChanged as changed:
                stored, read = changed.current, True
                self._remember(key, stored)
                if attempt >= 2:  # contention: let the other writers through
                    time.sleep(random.uniform(0, min(0.05, 0.002 * attempt)))
                continue
            except store.ProfileChanged as changed:
                remember_stored_tier(self.user_id, changed.profile)
                continue
            except store.StateMissing:
                raise self._disabled_or_missing() from None
            except store.MemoryOff:
                raise self._disabled() from None
            except store.NoRoom as full:
                if not swept:  # expired entries stop counting at expiry: make room from them before refusing
                    swept = True
                    if self.remove_expired():
                        continue
                limit = self.max_bytes()
                raise MemoryFull(
                    f"Project memory is full: key {memory_rules.shown_key(key)} needs {_growth(stored, new)} more "
                    f"bytes, {full.used_bytes} of {limit} are used",
                    {"usedBytes": full.used_bytes, "maxBytes": limit, "key": key},
                ) from None
            self._remember(key, new)
            return new
        raise ServiceUnavailable(
            f"Memory key {memory_rules.shown_key(key)} is being written by too many writers at once; try again"
        )

    def _room_for(self, stored: StoredEntry | None, new: StoredEntry | None) -> store.Room | None:
        return self._room() if _growth(stored, new) > 0 else None

    def _read_stored(self, key: str) -> StoredEntry | None:
        """The entry as stored, expired or not (a write must pin what is there), and remembered; raises as `read`
        does."""
        state, entry = store.get_state_and_entry(self.user_id, self.flow_id, key)
        if state is None:
            raise self._disabled_or_missing()
        if not state.enabled:
            raise self._disabled()
        self._remember(key, entry)
        return entry

    def put(
        self, key: str, text: str, ttl_seconds: int | None, precondition: Precondition = Precondition()
    ) -> StoredEntry:
        """Store `text` (a value's compact JSON) under `key`; VersionMismatch when `precondition` fails."""

        def decide(live: StoredEntry | None) -> StoredEntry:
            problem = precondition.problem(live)
            if problem:
                raise _Refusal(VersionMismatch(problem, {"key": key, "version": live.version if live else None}))
            return StoredEntry(
                key, text, memory_rules.entry_size(key, text), _new_version(live), clock.now_iso(), _expiry(ttl_seconds)
            )

        written = self._change(key, decide)
        assert written is not None
        return written

    def delete(self, key: str, precondition: Precondition = Precondition(), must_exist: bool = True) -> None:
        """Remove the entry (an expired one too); NotFound when there was no live one and `must_exist`."""

        def decide(live: StoredEntry | None) -> None:
            if live is None and must_exist:
                raise _Refusal(NotFound("Memory entry not found", {"key": key}))
            problem = precondition.problem(live)
            if problem:
                raise _Refusal(VersionMismatch(problem, {"key": key, "version": live.version if live else None}))
            return None

        self._change(key, decide)

    def increment(self, key: str, by: int | float, ttl_seconds: int | None) -> int | float:
        """Add `by` to the number under `key` (absent: 0) and return the new number."""
        outcome: list[int | float] = []

        def decide(live: StoredEntry | None) -> StoredEntry:
            current: Any = 0
            if live is not None:
                if live.value is None:  # remembered without its (long) value: read it
                    raise _Refusal(ValidationFailed(f"key {memory_rules.shown_key(key)} does not hold a number"))
                current = memory_rules.parsed(live.value)
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise _Refusal(
                    ValidationFailed(
                        f"key {memory_rules.shown_key(key)} holds {memory_rules.kind(current)}, not a number, "
                        "so it cannot be incremented",
                        {"key": key},
                    )
                )
            total = current + by
            if not math.isfinite(total):
                overflow = f"incrementing key {memory_rules.shown_key(key)} overflows"
                raise _Refusal(ValidationFailed(overflow, {"key": key}))
            text = memory_rules.value_text(total)
            outcome[:] = [total]
            return StoredEntry(
                key, text, memory_rules.entry_size(key, text), _new_version(live), clock.now_iso(), _expiry(ttl_seconds)
            )

        self._change(key, decide)
        return outcome[0]


class EngineMemory:
    """The run's memory port (bloxserver.engine.MemoryStore) over FlowMemory, with the owner's stored tier: values
    in and out as JSON values, refusals as StoreRefused naming the key, never the value."""

    def __init__(self, user_id: UUID, flow_id: UUID) -> None:
        self.memory = FlowMemory(user_id, flow_id)

    def _refused(self, key: str, error: AppError) -> StoreRefused:
        if isinstance(error, NotFound) and error.message == flow_not_found().message:
            return StoreRefused(f"project memory (key {memory_rules.shown_key(key)}): the flow no longer exists")
        if isinstance(error, MemoryDisabled):
            return StoreRefused(f"project memory is disabled for this flow (key {memory_rules.shown_key(key)})")
        if isinstance(error, MemoryFull):
            return StoreRefused(error.message, "full")
        if isinstance(error, ServiceUnavailable):
            return StoreRefused(error.message, "busy")
        if isinstance(error, ValidationFailed):  # increment: not a number, or the sum overflows
            return StoreRefused(error.message, "not_a_number")
        return StoreRefused(error.message)

    def _checked_key(self, key: str) -> None:
        problem = memory_rules.key_problem(key)
        if problem:
            raise StoreRefused(f"memory key {memory_rules.shown_key(key)}: {problem}", "invalid_key")

    def get(self, key: str) -> Any:
        self._checked_key(key)
        try:
            entry = self.memory.read(key)
        except AppError as error:
            raise self._refused(key, error) from None
        return None if entry is None else memory_rules.parsed(entry.value or "null")

    def set(self, key: str, value: Any, ttl_seconds: int | None) -> None:
        self._checked_key(key)
        try:
            text = memory_rules.value_text(value)
        except ValueError as problem:
            raise StoreRefused(f"memory key {memory_rules.shown_key(key)}: {problem}", "invalid_value") from None
        try:
            self.memory.put(key, text, ttl_seconds)
        except AppError as error:
            raise self._refused(key, error) from None

    def delete(self, key: str) -> None:
        self._checked_key(key)
        try:
            self.memory.delete(key, must_exist=False)
        except AppError as error:
            raise self._refused(key, error) from None

    def increment(self, key: str, by: int | float, ttl_seconds: int | None) -> int | float:
        self._checked_key(key)
        try:
            return self.memory.increment(key, by, ttl_seconds)
        except AppError as error:
            raise self._refused(key, error) from None


def sweep_expired(now: int | None = None) -> int:
    """Remove expired entries and uncount them; how many were removed. Run every minute (MemoryExpiryFunction)."""
    moment = int(time.time()) if now is None else now
    removed = 0
    for shard in range(keys.MEMORY_EXPIRY_SHARDS):
        for entry in store.expired_entries(shard, moment, SWEEP_BUDGET_PER_SHARD):
            removed += store.remove_expired(entry)
    return removed
