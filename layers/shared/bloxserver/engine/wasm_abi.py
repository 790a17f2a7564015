"""The ABI between BloxServer and a WASM module (docs/wasm.md), as plain data: what a module must export, which host
functions it may import and which listener capability grants each. Module validation (wasm.py, with wasmtime) and
flow validation (wasm_tool.py, without it) both read it from here.
"""

from __future__ import annotations

HOST_MODULE = "host"
HANDLE_PREFIX = "handle_"
# Signatures as (params, results) of wasm value type names.
I32, I64, F64 = "i32", "i64", "f64"
REQUIRED_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alloc": ((I32,), (I32,)),
    "free": ((I32,), ()),
}
HANDLE_SIGNATURE: tuple[tuple[str, ...], tuple[str, ...]] = ((I32, I32), (I64,))
HOST_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": ((I32, I32, I32), ()),
    "kv_get": ((I32, I32), (I64,)),
    "kv_set": ((I32, I32, I32, I32), (I32,)),
    "kv_delete": ((I32, I32), (I32,)),
    "kv_increment": ((I32, I32, F64), (I64,)),
}
# What each capability a listener may list in config.capabilities lets its module import from `host`.
CAPABILITY_FUNCTIONS: dict[str, frozenset[str]] = {
    "log": frozenset({"log"}),
    "kv": frozenset({"kv_get", "kv_set", "kv_delete", "kv_increment"}),
}
# What the kv host functions return for a refusal (an i32, or the i64 in place of a packed pointer): negative, so
# never a status of success (0) nor a packed (pointer << 32) | length (pointers stay below 2**31 under the memory cap).
KV_FULL = -1  # the write would take the flow's memory past its owner's quota
KV_INVALID_KEY = -2  # the key is not 1-512 bytes of UTF-8 without control characters
KV_INVALID_VALUE = -3  # the value is not UTF-8 JSON, is over 1 MiB as sent or 350 KiB compact; `by` is not finite
KV_NOT_A_NUMBER = -4  # kv_increment: the entry holds something other than a number, or the sum overflows
KV_BUSY = -5  # the store is contended or unavailable for now: the same call may succeed later


class KvRefused(Exception):
    """A kv host function's refusal that the module is told of: `code` (one of the KV_* above) is what the host
    function returns to it; the message (naming the key, never the value) goes into the execution's logs."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


LOG_LEVELS = ("debug", "info", "warning", "error")  # host.log's level argument indexes this


def capability_of(host_function: str) -> str:
    """The capability that grants `host_function` (one of HOST_FUNCTIONS)."""
    return next(name for name, functions in CAPABILITY_FUNCTIONS.items() if host_function in functions)


def interface_names(exports: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The `<name>`s of a module's `handle_<name>` exports."""
    return tuple(name.removeprefix(HANDLE_PREFIX) for name in exports if name.startswith(HANDLE_PREFIX))
