"""What the engine knows of a flow beyond its YAML: facts about its owner that validation checks and handlers are
built with. The callers (flows, executor) read them through the DAL; the engine never does. Loading caches per YAML
text and context, so a context is small, frozen and hashable. RunServices are the ports one run calls (project memory),
implemented outside the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class FlowContext:
    # The owner's tier (a bloxserver.contract.Tier value); None: the engine is used as a library, without an owner,
    # and tier ceilings are not applied.
    owner_tier: str | None = None


class StoreRefused(Exception):
    """A run-time service refused an operation (memory full or disabled, not a number); the message names the key,
    never a value, and fails the listener."""


class MemoryStore(Protocol):
    """The flow's project memory as a run sees it (docs/memory.md). Blocking: handlers call it in a worker thread.
    Every method raises StoreRefused for what the flow can act on."""

    def get(self, key: str) -> Any:
        """The stored value; None when absent or expired."""

    def set(self, key: str, value: Any, ttl_seconds: int | None) -> None: ...

    def delete(self, key: str) -> None:
        """Removes the entry; nothing when it is absent."""

    def increment(self, key: str, by: int | float, ttl_seconds: int | None) -> int | float:
        """Adds `by` to the stored number (absent counts as 0), atomically; the new number."""


@dataclass(frozen=True)
class RunServices:
    """What one run may call beyond its own messages, built by the caller (the executor) for the run's flow. None:
    not available to this run (a listener needing it fails)."""

    memory: MemoryStore | None = None
