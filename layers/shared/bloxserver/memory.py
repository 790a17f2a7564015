"""What a warm container remembers of what it read, to skip that read next time. Only ever a guess: the write
that relies on it checks it in the same transaction, so a stale entry costs one cancelled write and a fresh
read, never a wrong answer."""

from __future__ import annotations

from typing import Generic, TypeVar

Value = TypeVar("Value")


class ContainerMemory(Generic[Value]):
    """At most `capacity` entries (all forgotten at once when full: simple, and a cold container starts empty
    anyway)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._entries: dict[str, Value] = {}
        self._capacity = capacity

    def get(self, key: str) -> Value | None:
        return self._entries.get(key)

    def remember(self, key: str, value: Value) -> Value:
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = value
        return value

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
