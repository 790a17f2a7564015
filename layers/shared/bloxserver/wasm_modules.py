"""WASM modules as flows see them: the facts a flow's validation reads from the owner's module items, the versions a
start pins on the flow, and the compiled modules the executor runs (docs/wasm.md).

The engine is imported inside the functions (the flows function's cold start imports it only to validate).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bloxserver import keys
from bloxserver.dal import module_objects
from bloxserver.dal import modules as module_store
from bloxserver.observability import logger

if TYPE_CHECKING:
    from bloxserver.engine import FlowContext, WasmModuleFacts

# On the flow item: module id → the version a start pinned ({sha256, exports, imports}).
PINNED_MODULES = "pinnedModules"
# Compiled modules kept per executor container (a few MB each at most; the executor has 1 GB).
MODULE_CACHE_SIZE = 32


def _facts(module_id: str, record: dict[str, Any]) -> WasmModuleFacts:
    """Facts from a module item or a pin (both hold sha256, exports as handle_<name> and imports as host.<name>)."""
    from bloxserver.engine import WasmModuleFacts
    from bloxserver.engine.wasm_abi import interface_names

    return WasmModuleFacts(
        id=module_id,
        status=record.get("status", "ready"),
        sha256=record.get("sha256"),
        interfaces=interface_names(record.get("exports", [])),
        host_imports=tuple(name.removeprefix("host.") for name in record.get("imports", [])),
    )


def flow_context(user_id: UUID, organism_yaml: str, owner_tier: str | None = None) -> FlowContext:
    """The context to validate or start `organism_yaml` as `user_id`'s flow (of tier `owner_tier`): their modules
    that it names, as stored now (one consistent read, none when it names no module)."""
    from bloxserver.engine import FlowContext, wasm_module_ids

    module_ids = wasm_module_ids(organism_yaml)
    if not module_ids:
        return FlowContext(owner_tier=owner_tier)
    found = module_store.get_modules(user_id, module_ids)
    modules = tuple(_facts(module_id, item) for module_id, item in found.items())
    return FlowContext(owner_tier=owner_tier, wasm_modules=modules)


def pins(context: FlowContext) -> dict[str, dict[str, Any]]:
    """What a start stores on the flow: the version of each module the validated flow uses."""
    return {
        module.id: {
            "sha256": module.sha256,
            "exports": [f"handle_{name}" for name in module.interfaces],
            "imports": [f"host.{name}" for name in module.host_imports],
        }
        for module in context.wasm_modules
    }


def run_context(flow: dict[str, Any], owner_tier: str | None = None) -> FlowContext:
    """The context a run of a running flow uses (its owner of tier `owner_tier`): the module versions its start
    pinned, whatever was uploaded since."""
    from bloxserver.engine import FlowContext

    pinned = flow.get(PINNED_MODULES) or {}
    modules = tuple(_facts(module_id, pin) for module_id, pin in sorted(pinned.items()))
    return FlowContext(owner_tier=owner_tier, wasm_modules=modules)


class _CompiledModules:
    """Deserialized modules by (owner, module, sha256), least recently used dropped first; one per process."""

    def __init__(self) -> None:
        self._modules: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Any | None:
        with self._lock:
            module = self._modules.get(key)
            if module is not None:
                self._modules.move_to_end(key)
            return module

    def put(self, key: tuple[str, str, str], module: Any) -> None:
        with self._lock:
            self._modules[key] = module
            if len(self._modules) > MODULE_CACHE_SIZE:
                self._modules.popitem(last=False)


_compiled = _CompiledModules()


def store_version(user_id: UUID | str, module_id: UUID | str, sha256: str, data: bytes, artifact: bytes) -> None:
    """Keep a validated version: its bytes and its compiled artifact, by sha256 (what a start pins)."""
    from bloxserver.engine.wasm import wasmtime_version

    module_objects.write(keys.module_source_key(user_id, module_id, sha256), data, module_objects.WASM_CONTENT_TYPE)
    module_objects.write(keys.module_artifact_key(user_id, module_id, sha256, wasmtime_version()), artifact)


class OwnerModules:
    """The engine's WasmModuleSource for one owner's runs: pinned versions from the container's cache, else from
    their stored artifact, else compiled from their stored bytes (a new wasmtime version), storing the artifact."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    def load(self, module_id: str, sha256: str) -> Any:
        cache_key = (self.user_id, module_id, sha256)
        module = _compiled.get(cache_key)
        if module is None:
            module = self._fetch(module_id, sha256)
            _compiled.put(cache_key, module)
        return module

    def _fetch(self, module_id: str, sha256: str) -> Any:
        from bloxserver.engine import wasm

        artifact_key = keys.module_artifact_key(self.user_id, module_id, sha256, wasm.wasmtime_version())
        artifact = module_objects.read(artifact_key)
        if artifact is not None:
            try:
                return wasm.deserialize(artifact)
            except Exception:  # a damaged artifact: compile the stored bytes again below
                logger.warning("Stored WASM artifact could not be loaded", exc_info=True, extra={"key": artifact_key})
        data = module_objects.read(keys.module_source_key(self.user_id, module_id, sha256))
        if data is None:
            raise LookupError(f"version {sha256} of the module is no longer stored")
        try:
            module = wasm.compile_module(data)
        except wasm.InvalidModule as exc:
            raise LookupError(str(exc)) from exc
        try:
            module_objects.write(artifact_key, module.serialize())
        except Exception:  # the run goes on; the next container compiles again
            logger.warning("Could not store the WASM artifact", exc_info=True, extra={"key": artifact_key})
        return module
