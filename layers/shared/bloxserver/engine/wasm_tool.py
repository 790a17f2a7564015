"""The `wasm:<module id>` handler: a listener that runs one of its owner's uploaded WASM modules (docs/wasm.md).

Building it checks the listener against the module's facts in the flow's context (ready, the interface exported,
every host import granted); running it gets the compiled module from the run's services and calls it through
wasm.py, which is imported only then (wasmtime stays out of the API functions' cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bloxserver import jsonvalues, memory_rules
from bloxserver.engine.base import (
    HandlerResult,
    InvalidConfig,
    ListenerFailed,
    ListenerTimedOut,
    config_keys,
    is_finite_number,
    is_positive_number,
    memory_tier_warnings,
)
from bloxserver.engine.context import StoreRefused
from bloxserver.engine.expressions import MAX_MESSAGE_BYTES
from bloxserver.engine.wasm_abi import (
    CAPABILITY_FUNCTIONS,
    KV_BUSY,
    KV_FULL,
    KV_INVALID_KEY,
    KV_INVALID_VALUE,
    KV_NOT_A_NUMBER,
    KvRefused,
    capability_of,
)
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
        self.validation_warnings = (
            memory_tier_warnings(context, "its kv host functions fail this listener whenever they are called")
            if "kv" in self.capabilities
            else ()
        )

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
        payload = jsonvalues.compact(message).encode()
        remaining = invocation.remaining()
        try:
            output = wasm.call(
                module,
                self.interface,
                payload,
                host=_InvocationHost(invocation, self.module_id, self.interface),
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


# What a WASM tool is told (docs/wasm.md) for each reason the memory store refuses; "unavailable" (memory disabled)
# is not among them: it fails the listener, as it fails the `memory` handler.
_KV_CODES = {
    "full": KV_FULL,
    "invalid_key": KV_INVALID_KEY,
    "invalid_value": KV_INVALID_VALUE,
    "not_a_number": KV_NOT_A_NUMBER,
    "busy": KV_BUSY,
}


class _InvocationHost:
    """The host side of a call: its log records go to the execution's logs, under the listener; its kv calls go to
    the flow's project memory through the run's memory port, as the `memory` handler's do."""

    def __init__(self, invocation: Invocation, module_id: str, interface: str) -> None:
        self.invocation = invocation
        self.module_id = module_id
        self.interface = interface

    def log(self, level: str, text: str) -> None:
        self.invocation.log(level, text, wasmModule=self.module_id)  # type: ignore[arg-type]

    def kv_get(self, key: bytes) -> bytes | None:
        value = self._memory_call("get", key)
        return None if value is None else memory_rules.value_text(value).encode()

    def kv_set(self, key: bytes, value: bytes) -> None:
        if len(value) > MAX_MESSAGE_BYTES:  # refused unparsed: a value is at most a message's size as sent
            shown_key = memory_rules.shown_key(self._key(key))
            raise KvRefused(
                KV_INVALID_VALUE,
                f"the value for memory key {shown_key} is {len(value)} bytes; at most {MAX_MESSAGE_BYTES} are read",
            )
        try:
            parsed = jsonvalues.parse(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            shown_key = memory_rules.shown_key(self._key(key))
            raise KvRefused(KV_INVALID_VALUE, f"the value for memory key {shown_key} is not UTF-8 JSON: {exc}") from None
        self._memory_call("set", key, parsed, None)

    def kv_delete(self, key: bytes) -> None:
        self._memory_call("delete", key)

    def kv_increment(self, key: bytes, by: float) -> bytes:
        if not is_finite_number(by):
            shown_key = memory_rules.shown_key(self._key(key))
            raise KvRefused(KV_INVALID_VALUE, f"host.kv_increment was given {by} to add to memory key {shown_key}")
        # A whole number adds as an integer, so a counter stays 1, 2, 3 rather than 1.0, 2.0, 3.0.
        total = self._memory_call("increment", key, int(by) if by.is_integer() else by, None)
        return memory_rules.value_text(total).encode()

    @staticmethod
    def _key(key: bytes) -> str:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise KvRefused(KV_INVALID_KEY, f"a memory key must be UTF-8 text; the {len(key)} bytes given are not") from None

    def _memory_call(self, operation: str, key: bytes, *arguments: Any) -> Any:
        """The memory port's `operation` on the key, in a worker thread within the listener's time: a refusal the
        module is told of as KvRefused, an unavailable memory as the listener's failure."""
        text = self._key(key)
        memory = self.invocation.run.services.memory
        if memory is None:
            raise self._failed(f"project memory is not available to this run (key {memory_rules.shown_key(text)})")
        try:
            return self.invocation.call_blocking(getattr(memory, operation), text, *arguments)
        except StoreRefused as refused:
            if refused.reason not in _KV_CODES:
                raise self._failed(str(refused)) from refused
            raise KvRefused(_KV_CODES[refused.reason], str(refused)) from None

    def _failed(self, reason: str) -> ListenerFailed:
        """Raised from a host function, it ends the call and leaves wasmtime as it is."""
        return ListenerFailed(f"WASM module {self.module_id} (handle_{self.interface}): {reason}")
