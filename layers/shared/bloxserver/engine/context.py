"""What the engine knows of a flow beyond its YAML: facts about its owner that validation checks and handlers are
built with (FlowContext), and what a run is given to reach the owner's resources (RunServices): the ports one run
calls (WASM modules, LLM token quota, secrets, project memory), implemented outside the engine. The callers (flows,
executor) read them through the DAL; the engine never does. Loading caches per YAML text and context, so a context
is small, frozen and hashable.

RunServices are what the caller of one run lends it while it runs (the executor); the engine runs without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from bloxserver.engine.model import EngineLog


@dataclass(frozen=True)
class WasmModuleFacts:
    """One of the owner's WASM modules as validation left it (the version a running flow pinned, for a run), or a
    marketplace tool they installed (its id is the listing's), which runs the same way."""

    id: str
    status: str  # pending | ready | invalid
    sha256: str | None = None
    # The `handle_<name>` interfaces it exports, and the host functions (`host.<name>` names) it imports.
    interfaces: tuple[str, ...] = ()
    host_imports: tuple[str, ...] = ()
    # Set for an installed marketplace tool: the listing whose own copy of the bytes runs (docs/marketplace.md).
    listing_id: str | None = None


@dataclass(frozen=True)
class FlowContext:
    # The owner's tier (a bloxserver.contract.Tier value); None: the engine is used as a library, without an owner,
    # and tier ceilings are not applied.
    owner_tier: str | None = None
    # The owner's WASM modules that the flow's `wasm:<module id>` listeners name (only those: the context is a
    # cache key); a module not here does not exist for the flow.
    wasm_modules: tuple[WasmModuleFacts, ...] = ()
    # The names of the owner's secrets (never their values): a `secret('NAME')` naming another is an invalid_config.
    # None: not known here (a library use, or the executor, whose runs resolve them at their start instead).
    secret_names: frozenset[str] | None = None

    def wasm_module(self, module_id: str) -> WasmModuleFacts | None:
        return next((module for module in self.wasm_modules if module.id == module_id), None)


class WasmModuleSource(Protocol):
    def load(self, module_id: str, sha256: str) -> Any:
        """The compiled module (a wasmtime.Module) of that version of one of the owner's modules; raises
        LookupError when it cannot be had."""


class TokenQuota(Protocol):
    """The LLM tokens the flow's owner may still use (its monthly quota); shared by the owner's concurrent runs."""

    # How a run stopped by it names it, e.g. "monthly LLM token quota (200000 tokens, free tier)".
    description: str

    def left(self) -> int: ...

    def spend(self, tokens: int) -> None: ...


# Why the memory store refused: "unavailable" (the flow's memory is disabled, the flow is gone: nothing the run can
# work around), the write would pass the quota, the key or the value cannot be stored, the entry is not a number to
# increment, too many writers at once. The `memory` handler fails the listener for every reason; WASM tools are told
# every reason but "unavailable", which fails their listener too (docs/wasm.md).
RefusalReason = Literal["unavailable", "full", "invalid_key", "invalid_value", "not_a_number", "busy"]


class StoreRefused(Exception):
    """A run-time service refused an operation (memory full or disabled, not a number); the message names the key,
    never a value, and fails the listener."""

    def __init__(self, message: str, reason: RefusalReason = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason


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
    """What a run may use beyond its flow, built by the caller (the executor) for the run's flow. None for a service:
    not available to this run (the engine as a library; a listener needing it fails)."""

    # Where WASM listeners get their compiled modules; None: WASM listeners cannot run (they fail with a reason).
    wasm_modules: WasmModuleSource | None = None
    token_quota: TokenQuota | None = None
    # The owner's secret values for the names asked (those the flow references), asked once when a run starts; a
    # name the owner has no secret for is left out, which ends the run as error. None: no secrets are available.
    secret_values: Callable[[frozenset[str]], Mapping[str, str]] | None = None
    memory: MemoryStore | None = None
    # Asked at every step of a run (between listener invocations, and every runtime.STEP_SECONDS while a blocking
    # call waits): True stops the run as cancelled. Called often: the caller keeps it cheap (rate-limits its reads).
    cancelled: Callable[[], bool] | None = None
    # Handed the run's log records so far at every step, so the caller can store them as the run goes.
    log_progress: Callable[[Sequence[EngineLog]], None] | None = None
