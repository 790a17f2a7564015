"""The `wasm:<module id>` handler: a listener that runs one of its owner's uploaded WASM modules (docs/wasm.md).

Building it checks the listener against the module's facts in the flow's context (ready, the interface exported,
every host import granted); running it gets the compiled module from the run's services and calls it through
wasm.py, which is imported only then (wasmtime stays out of the API functions' cold start).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bloxserver import jsonvalues
from bloxserver.engine.base import HandlerResult, InvalidConfig, ListenerFailed, ListenerTimedOut, config_keys, is_positive_number
from bloxserver.engine.expressions import MAX_MESSAGE_BYTES
from bloxserver.engine.wasm_abi import CAPABILITY_FUNCTIONS, UNAVAILABLE_CAPABILITIES, capability_of
from bloxserver.engine.yamlvalues import shown

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation

WASM_HANDLER_PREFIX = "wasm:"
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_MEMORY_LIMIT_MB = 64
MAX_MEMORY_LIMIT_MB = 256


def module_id_of(handler_name: str) -> str:
    return handler_name.removeprefix(WASM_HANDLER_PREFIX)


class WasmTool:
    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        self.module_id = module_id_of(spec.handler_name)
        module = context.wasm_module(self.module_id)
        if module is None:  # the loader reports an unknown module first; a library caller may still get here
            raise InvalidConfig(f"WASM module {self.module_id} is not one of the flow owner's modules")
        config = config_keys(spec, {"interface", "capabilities", "timeout_seconds", "memory_limit_mb"})
        if module.status != "ready" or module.sha256 is None:
            raise InvalidConfig(f"WASM module {self.module_id} is {module.status}, not ready: upload a valid module first")
        self.sha256 = module.sha256
        self.interface = self._interface(config, module.interfaces)
        self.capabilities = self._capabilities(config)
        for function in module.host_imports:
            needed = capability_of(function)
            if needed not in self.capabilities:
                raise InvalidConfig(
                    f"WASM module {self.module_id} imports host.{function}, which needs the {needed!r} capability: "
                    "add it to config.capabilities"
                )
        self.timeout_seconds = config.get("timeout_seconds", min(DEFAULT_TIMEOUT_SECONDS, spec.timeout_seconds))
        if not is_positive_number(self.timeout_seconds) or self.timeout_seconds > spec.timeout_seconds:
            raise InvalidConfig(
                f"config.timeout_seconds must be a positive number of at most the listener's timeout_seconds "
                f"({spec.timeout_seconds:g}), got {shown(self.timeout_seconds)}"
            )
        memory_mb = config.get("memory_limit_mb", DEFAULT_MEMORY_LIMIT_MB)
        if not is_positive_number(memory_mb, integer=True) or memory_mb > MAX_MEMORY_LIMIT_MB:
            raise InvalidConfig(f"config.memory_limit_mb must be an integer from 1 to {MAX_MEMORY_LIMIT_MB}, got {shown(memory_mb)}")
        self.memory_bytes = memory_mb * 1024 * 1024

    def _interface(self, config: dict[str, Any], exported: tuple[str, ...]) -> str:
        if "interface" not in config:
            if len(exported) != 1:
                raise InvalidConfig(
                    f"WASM module {self.module_id} exports several interfaces ({', '.join(exported)}): "
                    "choose one with config.interface"
                )
            return exported[0]
        interface = config["interface"]
        if interface not in exported:
            raise InvalidConfig(
                f"WASM module {self.module_id} exports no handle_{interface if isinstance(interface, str) else shown(interface)}; "
                f"its interfaces are {', '.join(exported)}"
            )
        return interface

    @staticmethod
    def _capabilities(config: dict[str, Any]) -> frozenset[str]:
        listed = config.get("capabilities", [])
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise InvalidConfig(f"config.capabilities must be a list of capability names ({', '.join(CAPABILITY_FUNCTIONS)})")
        for name in listed:
            if name in UNAVAILABLE_CAPABILITIES:
                raise InvalidConfig(UNAVAILABLE_CAPABILITIES[name])
            if name not in CAPABILITY_FUNCTIONS:
                raise InvalidConfig(f"unknown capability {name!r}: the capabilities are {', '.join(CAPABILITY_FUNCTIONS)}")
        return frozenset(listed)

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        from bloxserver.engine import wasm  # wasmtime: only when a WASM listener runs

        source = invocation.run.services.wasm_modules
        if source is None:
            raise ListenerFailed(f"WASM module {self.module_id} cannot run here: no module store is configured")
        try:
            module = source.load(self.module_id, self.sha256)
        except LookupError as exc:
            raise ListenerFailed(f"WASM module {self.module_id} could not be loaded: {exc}") from exc
        payload = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        remaining = invocation.remaining()
        try:
            output = wasm.call(
                module,
                self.interface,
                payload,
                host=_InvocationHost(invocation, self.module_id),
                granted=self.capabilities,
                timeout_seconds=max(0.001, min(self.timeout_seconds, remaining)),
                memory_bytes=self.memory_bytes,
                max_output_bytes=MAX_MESSAGE_BYTES,
            )
        except wasm.GuestTimedOut as exc:
            if remaining < self.timeout_seconds:
                invocation.check_deadline()  # the listener's or the run's own deadline: reported as such
            raise ListenerTimedOut(f"WASM module {self.module_id} (handle_{self.interface}): {exc}") from exc
        except wasm.GuestFailed as exc:
            raise ListenerFailed(f"WASM module {self.module_id} (handle_{self.interface}): {exc}") from exc
        try:
            return HandlerResult(jsonvalues.parse(output.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ListenerFailed(
                f"WASM module {self.module_id} (handle_{self.interface}) returned output that is not UTF-8 JSON: {exc}"
            ) from exc


class _InvocationHost:
    """The host side of a call: its log records go to the execution's logs, under the listener."""

    def __init__(self, invocation: Invocation, module_id: str) -> None:
        self.invocation = invocation
        self.module_id = module_id

    def log(self, level: str, text: str) -> None:
        self.invocation.log(level, text, wasmModule=self.module_id)  # type: ignore[arg-type]
