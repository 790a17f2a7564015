"""WASM modules as flows see them: the facts a flow's validation reads from the owner's module items and installed
marketplace tools, the versions a start pins on the flow, and the compiled modules the executor runs (docs/wasm.md,
docs/marketplace.md).

The engine is imported inside the functions (the flows function's cold start imports it only to validate).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bloxserver import keys
from bloxserver.dal import installed_tools as tool_store
from bloxserver.dal import module_objects
from bloxserver.dal import modules as module_store
from bloxserver.observability import logger

if TYPE_CHECKING:
    from bloxserver.engine import FlowContext, WasmModuleFacts

# On the flow item: module id → the version a start pinned ({sha256, exports, imports}, and listingId for an
# installed marketplace tool).
PINNED_MODULES = "pinnedModules"
LISTING = "listingId"
RUNNING_STATUSES = ("running", "starting")
# Compiled modules kept per executor container (a few MB each at most; the executor has 1 GB).
MODULE_CACHE_SIZE = 32


def _facts(module_id: str, record: dict[str, Any]) -> WasmModuleFacts:
    """Facts from a module item, an installed tool item or a pin (each holds sha256, exports as handle_<name> and
    imports as host.<name>; a tool's and its pin's listingId)."""
    from bloxserver.engine import WasmModuleFacts
    from bloxserver.engine.wasm_abi import interface_names

    return WasmModuleFacts(
        id=module_id,
        status=record.get("status", "ready"),
        sha256=record.get("sha256"),
        interfaces=interface_names(record.get("exports", [])),
        host_imports=tuple(name.removeprefix("host.") for name in record.get("imports", [])),
        listing_id=record.get(LISTING),
    )


def flow_context(user_id: UUID, organism_yaml: str, owner_tier: str | None = None) -> FlowContext:
    """The context to validate or start `organism_yaml` as `user_id`'s flow (of tier `owner_tier`): their modules
    and installed tools that it names, as stored now (consistent reads: none when it names no module, a second only
    when it names an id that is none of their modules)."""
    from bloxserver.engine import FlowContext, wasm_module_ids

    module_ids = wasm_module_ids(organism_yaml)
    if not module_ids:
        return FlowContext(owner_tier=owner_tier)
    found = module_store.get_modules(user_id, module_ids)
    others = [module_id for module_id in module_ids if module_id not in found]
    if others:
        found.update(tool_store.get_tools(user_id, others))
    modules = tuple(_facts(module_id, item) for module_id, item in found.items())
    return FlowContext(owner_tier=owner_tier, wasm_modules=modules)


def pins(context: FlowContext) -> dict[str, dict[str, Any]]:
    """What a start stores on the flow: the version of each module the validated flow uses."""
    return {
        module.id: {
            "sha256": module.sha256,
            "exports": [f"handle_{name}" for name in module.interfaces],
            "imports": [f"host.{name}" for name in module.host_imports],
            **({LISTING: module.listing_id} if module.listing_id else {}),
        }
        for module in context.wasm_modules
    }


def _by_kind(pinned: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(own module ids, installed tool ids) of a flow's pins."""
    own = [module_id for module_id, pin in pinned.items() if not pin.get(LISTING)]
    tools = [module_id for module_id, pin in pinned.items() if pin.get(LISTING)]
    return own, tools


def use_actions(user_id: UUID | str, pinned: dict[str, dict[str, Any]], flow_id: UUID | str) -> list[dict[str, Any]]:
    """The transaction actions of a start recording the flow as a user of each module and tool it pinned (so none
    can be deleted or uninstalled while it runs); each fails if its item is gone."""
    own, tools = _by_kind(pinned)
    return module_store.use_actions(user_id, own, flow_id) + tool_store.use_actions(user_id, tools, flow_id)


def release(user_id: UUID | str, pinned: dict[str, dict[str, Any]], flow_id: UUID | str) -> None:
    """The stopped flow no longer uses the modules and tools it pinned."""
    own, tools = _by_kind(pinned)
    module_store.release(user_id, own, flow_id)
    tool_store.release(user_id, tools, flow_id)


def flows_running_with(user_id: UUID, module_id: str, used_by: list[str], forget: Any) -> list[str]:
    """The flows recorded as using module (or tool) `module_id` that still run with it pinned; the others (a stop
    whose release failed, a deleted flow) are forgotten with `forget(flow_id)`."""
    from bloxserver.dal import flows as flow_store

    running = []
    for flow_id in used_by:
        flow = flow_store.get_flow(user_id, UUID(flow_id))
        if flow is not None and flow["status"] in RUNNING_STATUSES and module_id in (flow.get(PINNED_MODULES) or {}):
            running.append(flow_id)
        else:
            forget(flow_id)
    return running


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


def copy_version(user_id: UUID | str, module_id: UUID | str, sha256: str, listing_id: UUID | str) -> None:
    """Give a tool listing its own copy of one version of its author's module (bytes and artifact), so that what
    installers run stays whatever the author does with the module afterwards."""
    from bloxserver.engine.wasm import wasmtime_version

    module_objects.copy(keys.module_source_key(user_id, module_id, sha256), keys.listing_source_key(listing_id, sha256))
    artifact = keys.module_artifact_key(user_id, module_id, sha256, wasmtime_version())
    if module_objects.describe(artifact) is not None:  # else the executor compiles the bytes once and stores it
        module_objects.copy(artifact, keys.listing_artifact_key(listing_id, sha256, wasmtime_version()))


def store_version(user_id: UUID | str, module_id: UUID | str, sha256: str, data: bytes, artifact: bytes) -> None:
    """Keep a validated version: its bytes and its compiled artifact, by sha256 (what a start pins)."""
    from bloxserver.engine.wasm import wasmtime_version

    module_objects.write(keys.module_source_key(user_id, module_id, sha256), data, module_objects.WASM_CONTENT_TYPE)
    module_objects.write(keys.module_artifact_key(user_id, module_id, sha256, wasmtime_version()), artifact)


class OwnerModules:
    """The engine's WasmModuleSource for one owner's runs: pinned versions from the container's cache, else from
    their stored artifact, else compiled from their stored bytes (a new wasmtime version), storing the artifact.
    Installed tools (`pinned` names them) load from their listing's copies, cached once for every installer."""

    def __init__(self, user_id: str, pinned: dict[str, dict[str, Any]] | None = None) -> None:
        self.user_id = user_id
        self.tools = {module_id: pin[LISTING] for module_id, pin in (pinned or {}).items() if pin.get(LISTING)}

    def load(self, module_id: str, sha256: str) -> Any:
        listing_id = self.tools.get(module_id)
        cache_key = ("listing", listing_id, sha256) if listing_id else (self.user_id, module_id, sha256)
        module = _compiled.get(cache_key)
        if module is None:
            module = self._fetch(module_id, sha256, listing_id)
            _compiled.put(cache_key, module)
        return module

    def _fetch(self, module_id: str, sha256: str, listing_id: str | None) -> Any:
        from bloxserver.engine import wasm

        if listing_id:
            artifact_key = keys.listing_artifact_key(listing_id, sha256, wasm.wasmtime_version())
            source_key = keys.listing_source_key(listing_id, sha256)
        else:
            artifact_key = keys.module_artifact_key(self.user_id, module_id, sha256, wasm.wasmtime_version())
            source_key = keys.module_source_key(self.user_id, module_id, sha256)
        artifact = module_objects.read(artifact_key)
        if artifact is not None:
            try:
                return wasm.deserialize(artifact)
            except Exception:  # a damaged artifact: compile the stored bytes again below
                logger.warning("Stored WASM artifact could not be loaded", exc_info=True, extra={"key": artifact_key})
        data = module_objects.read(source_key)
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
