"""Everything that touches wasmtime: checking an uploaded module against the ABI (wasm_abi.py), compiling it once
into a serialized artifact, and calling a module's `handle_<name>` with the per-call limits of docs/wasm.md.

Imported only where modules are validated or run (wasmtime's import costs tens of milliseconds of cold start).
Every call gets a fresh store and instance: nothing a call leaves in memory reaches another. Time is bounded by
epoch interruption (one ticker thread per process advances the engine's epoch), memory by the store's limits; no
WASI is linked, so a module has no filesystem, network, environment or clock, only the host functions its listener
grants.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Callable, Protocol

import wasmtime

from bloxserver.limits import MAX_WASM_MODULE_BYTES
from bloxserver.engine.wasm_abi import (
    HANDLE_PREFIX,
    HANDLE_SIGNATURE,
    HOST_FUNCTIONS,
    HOST_MODULE,
    LOG_LEVELS,
    KvRefused,
    REQUIRED_FUNCTIONS,
    CAPABILITY_FUNCTIONS,
    interface_names,
)

WASM_MAGIC = b"\0asm"
CORE_MODULE_VERSION = b"\x01\x00\x00\x00"
EPOCH_TICK_SECONDS = 0.01
MAX_LOG_CHARS = 4000
MAX_LOG_RECORDS_PER_CALL = 100
# A trap with the memory past this share of its cap says how close it stood (memory.grow past the cap gives -1,
# and a module out of memory then traps, e.g. on `unreachable`).
MEMORY_NOTE_FRACTION = 0.5
# Beyond the memory cap: a module has one memory and a few tables, as any compiler emits.
MAX_TABLE_ELEMENTS = 100_000
MAX_TABLES = 4


class InvalidModule(Exception):
    """Uploaded bytes that cannot be used as a module; the message says why, for the module's `error`."""


class GuestFailed(Exception):
    """A call did not produce an output; the message says why (a trap, bad output, a memory cap)."""


class GuestTimedOut(GuestFailed):
    """A call ran out of its time."""


@dataclass(frozen=True)
class ModuleShape:
    interfaces: tuple[str, ...]  # the <name>s of its handle_<name> exports
    host_imports: tuple[str, ...]  # the host functions it imports


class Host(Protocol):
    """What a call's host functions act on: the invocation's side of the ABI. Keys and values travel as the bytes the
    module gave; the kv methods raise KvRefused for what the module is told, anything else to end the call."""

    def log(self, level: str, text: str) -> None: ...

    def kv_get(self, key: bytes) -> bytes | None:
        """The entry's JSON text; None when absent."""

    def kv_set(self, key: bytes, value: bytes) -> None: ...

    def kv_delete(self, key: bytes) -> None: ...

    def kv_increment(self, key: bytes, by: float) -> bytes:
        """The new number's JSON text."""


def wasmtime_version() -> str:
    """Part of every artifact's key: an artifact deserializes only into the wasmtime that serialized it."""
    return metadata.version("wasmtime")


@cache
def engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def _signature(func_type: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(map(str, func_type.params)), tuple(map(str, func_type.results))


def _shown(signature: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    params, results = signature
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _first_lines(error: Exception) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())[:500]


def compile_module(data: bytes) -> wasmtime.Module:
    """Compiled module of `data`; InvalidModule naming what is wrong when it is not a WebAssembly core module."""
    if len(data) > MAX_WASM_MODULE_BYTES:
        raise InvalidModule(f"the module is {len(data)} bytes; the limit is {MAX_WASM_MODULE_BYTES} bytes")
    if not data.startswith(WASM_MAGIC):
        raise InvalidModule("not a WebAssembly module: the file does not start with the \\0asm magic number")
    if len(data) >= 8 and data[4:8] != CORE_MODULE_VERSION:
        raise InvalidModule(
            "this is a WebAssembly component (component model), which is not supported: upload a core module "
            "exporting memory, alloc, free and handle_<name> (docs/wasm.md)"
        )
    try:
        return wasmtime.Module(engine(), data)
    except wasmtime.WasmtimeError as error:
        text = _first_lines(error)
        if "end-of-file" in text or "unexpected end" in text:
            raise InvalidModule(f"the file is truncated: {text}") from error
        raise InvalidModule(f"wasmtime cannot compile the module: {text}") from error


def check_shape(module: wasmtime.Module) -> ModuleShape:
    """The module's interfaces and host imports; InvalidModule when its exports or imports break the ABI."""
    exports = {export.name: export.type for export in module.exports}
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise InvalidModule("the module does not export its memory as `memory`")
    for name, expected in REQUIRED_FUNCTIONS.items():
        export = exports.get(name)
        if not isinstance(export, wasmtime.FuncType):
            raise InvalidModule(f"the module does not export the function `{name}` {_shown(expected)}")
        if _signature(export) != expected:
            raise InvalidModule(f"`{name}` is {_shown(_signature(export))}; it must be {_shown(expected)}")
    handles = sorted(name for name, kind in exports.items() if name.startswith(HANDLE_PREFIX) and len(name) > len(HANDLE_PREFIX))
    if not handles:
        raise InvalidModule(f"the module exports no handle_<name> function {_shown(HANDLE_SIGNATURE)}")
    for name in handles:
        export = exports[name]
        if not isinstance(export, wasmtime.FuncType) or _signature(export) != HANDLE_SIGNATURE:
            raise InvalidModule(f"`{name}` must be a function {_shown(HANDLE_SIGNATURE)}")
    host_imports = []
    offered = ", ".join(f"{HOST_MODULE}.{name}" for name in HOST_FUNCTIONS)
    for item in module.imports:
        where = f"{item.module}.{item.name}"
        expected = HOST_FUNCTIONS.get(item.name) if item.module == HOST_MODULE else None
        if expected is None:
            raise InvalidModule(f"the module imports {where}, which is not a host function (only {offered})")
        if not isinstance(item.type, wasmtime.FuncType) or _signature(item.type) != expected:
            raise InvalidModule(f"the module imports {where} with the wrong type; it is {_shown(expected)}")
        host_imports.append(item.name)
    return ModuleShape(interface_names(handles), tuple(sorted(set(host_imports))))


def validate(data: bytes) -> tuple[ModuleShape, bytes]:
    """Checks uploaded bytes against the ABI: their shape and the serialized artifact that runs will load."""
    module = compile_module(data)
    return check_shape(module), module.serialize()


def deserialize(artifact: bytes) -> wasmtime.Module:
    """A module from its serialized artifact, without compiling (only artifacts this code serialized are trusted)."""
    return wasmtime.Module.deserialize(engine(), artifact)


# Epoch interruption: the engine's epoch advances every EPOCH_TICK_SECONDS, and each call's store traps once its
# deadline (in ticks) passes. One daemon thread per process, started by the first call.
_ticker_lock = threading.Lock()
_ticker: threading.Thread | None = None


def _tick_forever() -> None:
    while True:
        time.sleep(EPOCH_TICK_SECONDS)
        engine().increment_epoch()


def _start_ticker() -> None:
    global _ticker
    with _ticker_lock:
        if _ticker is None:
            _ticker = threading.Thread(target=_tick_forever, name="wasm-epoch", daemon=True)
            _ticker.start()


# Host functions are defined once per process and find the call they serve here (a call runs on one thread).
_calls = threading.local()


class _CallState:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.log_records = 0


def _guest_bytes(caller: wasmtime.Caller, pointer: int, length: int, what: str, limit: int | None = None) -> bytes:
    """The bytes the module points at (the first `limit` of them); a trap when they lie outside its memory."""
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.Trap("the module has no memory export")
    size = memory.data_len(caller)
    if pointer < 0 or length < 0 or pointer + length > size:
        raise wasmtime.Trap(f"{what} was given bytes {pointer}..{pointer + length} outside the memory ({size} bytes)")
    return bytes(memory.read(caller, pointer, pointer + (length if limit is None else min(length, limit))))


def _to_guest(caller: wasmtime.Caller, data: bytes, what: str) -> int:
    """Hands `data` to the module in a buffer from its own `alloc` (the module frees it): `(pointer << 32) | len`."""
    alloc, memory = caller.get("alloc"), caller.get("memory")
    assert isinstance(alloc, wasmtime.Func) and isinstance(memory, wasmtime.Memory)  # checked at validation
    pointer = alloc(caller, len(data))
    size = memory.data_len(caller)
    if pointer < 0 or pointer + len(data) > size:
        raise wasmtime.Trap(
            f"{what}: alloc({len(data)}) returned bytes {pointer}..{pointer + len(data)} outside the memory ({size} bytes)"
        )
    memory.write(caller, data, pointer)
    return (pointer << 32) | len(data)


def _record(level: str, text: str) -> None:
    """A log record of the call, up to MAX_LOG_RECORDS_PER_CALL of them."""
    state: _CallState = _calls.state
    state.log_records += 1
    if state.log_records > MAX_LOG_RECORDS_PER_CALL:
        if state.log_records == MAX_LOG_RECORDS_PER_CALL + 1:
            state.host.log("warning", f"more than {MAX_LOG_RECORDS_PER_CALL} log records in one call: the rest are dropped")
        return
    state.host.log(level, text)


def _kv(function: str, act: Callable[[Host], int | None]) -> int:
    """What a kv host function returns to the module: `act`'s result (None: 0, done), or a refusal's code (the
    refusal logged)."""
    try:
        result = act(_calls.state.host)
    except KvRefused as refused:
        _record("warning", f"host.{function} returned {refused.code}: {refused}")
        return refused.code
    return 0 if result is None else result


def _host_log(caller: wasmtime.Caller, level: int, pointer: int, length: int) -> None:
    text = _guest_bytes(caller, pointer, length, "host.log", MAX_LOG_CHARS).decode("utf-8", errors="replace")
    _record(LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else "info", text)


def _host_kv_get(caller: wasmtime.Caller, key_pointer: int, key_length: int) -> int:
    key = _guest_bytes(caller, key_pointer, key_length, "host.kv_get")

    def get(host: Host) -> int:
        value = host.kv_get(key)
        return 0 if value is None else _to_guest(caller, value, "host.kv_get")

    return _kv("kv_get", get)


def _host_kv_set(caller: wasmtime.Caller, key_pointer: int, key_length: int, value_pointer: int, value_length: int) -> int:
    key = _guest_bytes(caller, key_pointer, key_length, "host.kv_set")
    value = _guest_bytes(caller, value_pointer, value_length, "host.kv_set")
    return _kv("kv_set", lambda host: host.kv_set(key, value))


def _host_kv_delete(caller: wasmtime.Caller, key_pointer: int, key_length: int) -> int:
    key = _guest_bytes(caller, key_pointer, key_length, "host.kv_delete")
    return _kv("kv_delete", lambda host: host.kv_delete(key))


def _host_kv_increment(caller: wasmtime.Caller, key_pointer: int, key_length: int, by: float) -> int:
    key = _guest_bytes(caller, key_pointer, key_length, "host.kv_increment")
    return _kv("kv_increment", lambda host: _to_guest(caller, host.kv_increment(key, by), "host.kv_increment"))


# Host function implementations by name; a capability's functions are linked only when the listener grants it.
# An exception other than a trap that one raises (a failure of the listener, the run's deadline) ends the call and
# leaves call() as it is.
_HOST_IMPLEMENTATIONS: dict[str, Callable[..., object]] = {
    "log": _host_log,
    "kv_get": _host_kv_get,
    "kv_set": _host_kv_set,
    "kv_delete": _host_kv_delete,
    "kv_increment": _host_kv_increment,
}


def _value_types(names: tuple[str, ...]) -> list[wasmtime.ValType]:
    types = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64, "f64": wasmtime.ValType.f64}
    return [types[name]() for name in names]


@cache
def _linker(granted: frozenset[str]) -> wasmtime.Linker:
    """A linker defining the host functions of the `granted` capabilities, and nothing else (no WASI)."""
    linker = wasmtime.Linker(engine())
    for capability in sorted(granted):
        for name in sorted(CAPABILITY_FUNCTIONS[capability]):
            params, results = HOST_FUNCTIONS[name]
            func_type = wasmtime.FuncType(_value_types(params), _value_types(results))
            linker.define_func(HOST_MODULE, name, func_type, _HOST_IMPLEMENTATIONS[name], access_caller=True)
    return linker


def _region(memory: wasmtime.Memory, store: wasmtime.Store, pointer: int, length: int, what: str) -> None:
    size = memory.data_len(store)
    if pointer < 0 or length < 0 or pointer + length > size:
        raise GuestFailed(f"{what} (bytes {pointer}..{pointer + length}) lies outside the module's memory ({size} bytes)")


def call(
    module: wasmtime.Module,
    interface: str,
    payload: bytes,
    *,
    host: Host,
    granted: frozenset[str],
    timeout_seconds: float,
    memory_bytes: int,
    max_output_bytes: int,
) -> bytes:
    """Calls `handle_<interface>` with `payload` in a fresh instance: the output bytes, or GuestFailed /
    GuestTimedOut saying what happened."""
    _start_ticker()
    store = wasmtime.Store(engine())
    store.set_limits(
        memory_size=memory_bytes, table_elements=MAX_TABLE_ELEMENTS, instances=1, tables=MAX_TABLES, memories=1
    )
    store.set_epoch_deadline(max(1, math.ceil(timeout_seconds / EPOCH_TICK_SECONDS)))
    _calls.state = _CallState(host)
    memory: wasmtime.Memory | None = None
    try:
        instance = _linker(granted).instantiate(store, module)
        exports = instance.exports(store)
        memory = exports["memory"]
        handle = exports.get(f"{HANDLE_PREFIX}{interface}")
        if not isinstance(handle, wasmtime.Func):
            raise GuestFailed(f"the module exports no {HANDLE_PREFIX}{interface}")
        alloc, free = exports["alloc"], exports["free"]
        pointer = alloc(store, len(payload))
        _region(memory, store, pointer, len(payload), "the input buffer alloc returned")
        memory.write(store, payload, pointer)
        packed = handle(store, pointer, len(payload)) & 0xFFFF_FFFF_FFFF_FFFF
        out_pointer, out_length = packed >> 32, packed & 0xFFFF_FFFF
        if out_length > max_output_bytes:
            raise GuestFailed(f"the output is {out_length} bytes; at most {max_output_bytes} are accepted")
        _region(memory, store, out_pointer, out_length, "the output")
        output = bytes(memory.read(store, out_pointer, out_pointer + out_length))
        free(store, pointer)
        if out_pointer != pointer:
            free(store, out_pointer)
        return output
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            raise GuestTimedOut(f"the call ran past its {timeout_seconds:g} s time limit") from trap
        raise GuestFailed(_trap_reason(trap, memory, store, memory_bytes)) from trap
    except wasmtime.WasmtimeError as error:  # e.g. a memory minimum above the cap, at instantiation
        raise GuestFailed(_with_memory_note(_first_lines(error), memory, store, memory_bytes)) from error
    finally:
        _calls.state = None


def _trap_reason(trap: wasmtime.Trap, memory: wasmtime.Memory | None, store: wasmtime.Store, memory_bytes: int) -> str:
    """The trap's cause (wasmtime's "Caused by" line, e.g. "wasm `unreachable` instruction executed")."""
    lines = [line.strip() for line in (trap.message or "").splitlines() if line.strip()]
    cause = lines[lines.index("Caused by:") + 1] if "Caused by:" in lines[:-1] else (lines[0] if lines else "trap")
    return _with_memory_note(f"the module trapped: {cause.removeprefix('wasm trap: ')}", memory, store, memory_bytes)


def _with_memory_note(reason: str, memory: wasmtime.Memory | None, store: wasmtime.Store, memory_bytes: int) -> str:
    """The store refuses memory growth past the cap (memory.grow gives -1) and a module that cannot go on then
    traps: say so when its memory is near the cap, or when instantiation needed more memory than it."""
    mib = memory_bytes / (1024 * 1024)
    if memory is not None:
        used = memory.data_len(store)
        if used >= MEMORY_NOTE_FRACTION * memory_bytes:
            return (
                f"{reason} (its memory stood at {used / (1024 * 1024):.1f} MiB of its {mib:g} MiB limit, "
                "past which memory.grow is refused)"
            )
        return reason
    if "memory" in reason:
        return f"{reason} (the memory limit is {mib:g} MiB)"
    return reason
