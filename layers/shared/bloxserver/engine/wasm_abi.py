"""The ABI between BloxServer and a WASM module (docs/wasm.md), as plain data: what a module must export, which host
functions it may import and which listener capability grants each. Module validation (wasm.py, with wasmtime) and
flow validation (wasm_tool.py, without it) both read it from here.
"""

from __future__ import annotations

HOST_MODULE = "host"
HANDLE_PREFIX = "handle_"
# Signatures as (params, results) of wasm value type names.
I32, I64 = "i32", "i64"
REQUIRED_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "alloc": ((I32,), (I32,)),
    "free": ((I32,), ()),
}
HANDLE_SIGNATURE: tuple[tuple[str, ...], tuple[str, ...]] = ((I32, I32), (I64,))
HOST_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": ((I32, I32, I32), ()),
    "kv_get": ((I32, I32), (I64,)),
    "kv_set": ((I32, I32, I32, I32), (I32,)),
}
# What each capability a listener may list in config.capabilities lets its module import from `host`.
CAPABILITY_FUNCTIONS: dict[str, frozenset[str]] = {
    "log": frozenset({"log"}),
    "kv": frozenset({"kv_get", "kv_set"}),
}
# Capabilities the server cannot grant yet, with the reason flow validation gives.
UNAVAILABLE_CAPABILITIES: dict[str, str] = {
    "kv": "the kv capability needs project memory, which is not available yet",
}
LOG_LEVELS = ("debug", "info", "warning", "error")  # host.log's level argument indexes this


def capability_of(host_function: str) -> str:
    """The capability that grants `host_function` (one of HOST_FUNCTIONS)."""
    return next(name for name, functions in CAPABILITY_FUNCTIONS.items() if host_function in functions)


def interface_names(exports: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The `<name>`s of a module's `handle_<name>` exports."""
    return tuple(name.removeprefix(HANDLE_PREFIX) for name in exports if name.startswith(HANDLE_PREFIX))
