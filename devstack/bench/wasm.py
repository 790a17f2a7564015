"""WASM modules: a warm call through the engine's `wasm:` handler against a bare wasmtime call of the same export,
and a module's first call in a fresh process from its stored artifact against compiling its bytes there.

Warm calls (one process, CPU time of the calling thread, the targets called in turn, median of the rounds' means):
the engine's handler (`WasmTool.run`: JSON in and
out, a fresh store and instance, limits, the host functions its grant links) on the echo module with a 1 KB message;
the baseline is the same export called with bare wasmtime, as the engine must call it (a fresh store and instance per
call, the same compiled module and engine, the same bytes in and out); a bare call on one reused instance is shown
for reference (the engine never reuses one: no state may pass between executions).

First calls (a fresh Python process per sample, wasmtime already imported, timed from the module's bytes or
artifact in memory to the first call's output): `Module.deserialize` of the stored artifact, as the executor does,
against `Module(engine, bytes)`, for the echo module and a larger generated module (tens of KB of code, as
compilers emit for real tools).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import wasmtime

from bloxserver.engine import FlowContext, RunServices, WasmModuleFacts
from bloxserver.engine import wasm as runtime
from bloxserver.engine.loader import load_organism
from bloxserver.engine.runtime import Invocation, Run
from bloxserver.engine.settings import get_engine_settings
from devstack.bench import ratio_table

# One buffer at 1024 for the one input of a call (the reused instance gets many calls, each in the same place).
ALLOCATOR = """
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "free") (param i32))
"""
HANDLE_ECHO = """
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
"""
ECHO_WAT = f"(module {ALLOCATOR} {HANDLE_ECHO})"
# Echo plus many functions of arithmetic, so compiling it takes what a real tool's code takes.
_FILLER = "".join(
    f"""(func $f{index} (param $x i64) (result i64)
          (i64.add (i64.mul (local.get $x) (i64.const {index + 3})) (i64.xor (local.get $x) (i64.const {index})))
          (i64.rotl (i64.const 7)) (i64.sub (i64.shr_u (local.get $x) (i64.const 3)))
          (i64.add (call $f{max(index - 1, 0)} (i64.const 1))))"""
    if index
    else "(func $f0 (param $x i64) (result i64) (local.get $x))"
    for index in range(1200)
)
LARGE_WAT = f"(module {ALLOCATOR} {HANDLE_ECHO} {_FILLER} (func (export \"handle_big\") (param i32 i32) (result i64) (call $f1199 (i64.const 1))))"

MESSAGE = {"text": "x" * 1000}  # 1 KB of JSON
MODULE_ID = "bench-echo"
ORGANISM = f"""
organism: {{name: wasm-bench}}
listeners:
  - name: tool
    description: the echo module
    handler: wasm:{MODULE_ID}
    peers: [done]
  - name: done
    description: result
    handler: output
"""

ENGINE = "engine's wasm: handler (WasmTool.run)"
BARE_FRESH = "bare wasmtime, fresh instance per call (baseline)"
BARE_REUSED = "bare wasmtime, one reused instance (reference only)"


class _OneModule:
    def __init__(self, module: wasmtime.Module) -> None:
        self.module = module

    def load(self, module_id: str, sha256: str) -> wasmtime.Module:
        return self.module


def _bare_call(module: wasmtime.Module, linker: wasmtime.Linker, payload: bytes) -> bytes:
    store = wasmtime.Store(runtime.engine())
    store.set_epoch_deadline(1_000_000)
    exports = linker.instantiate(store, module).exports(store)
    return _call_exports(store, exports, payload)


def _call_exports(store: wasmtime.Store, exports: Any, payload: bytes) -> bytes:
    memory = exports["memory"]
    pointer = exports["alloc"](store, len(payload))
    memory.write(store, payload, pointer)
    packed = exports["handle_echo"](store, pointer, len(payload))
    output = bytes(memory.read(store, packed >> 32, (packed >> 32) + (packed & 0xFFFF_FFFF)))
    exports["free"](store, pointer)
    return output


def measure_warm(calls: int, rounds: int = 7) -> dict[str, list[float]]:
    """CPU microseconds per call of this thread (robust to other load on the machine, and leaving out the epoch
    ticker's thread), one mean per round and target."""
    shape, artifact = runtime.validate(wasmtime.wat2wasm(ECHO_WAT))
    module = runtime.deserialize(artifact)
    facts = WasmModuleFacts(MODULE_ID, "ready", "sha", shape.interfaces, shape.host_imports)
    organism = load_organism(ORGANISM, FlowContext(wasm_modules=(facts,)))
    listener = organism.listeners["tool"]
    run = Run(organism, get_engine_settings(), "bench", time.monotonic() + 3600, RunServices(wasm_modules=_OneModule(module)))
    payload = json.dumps(MESSAGE, separators=(",", ":")).encode()
    linker = wasmtime.Linker(runtime.engine())
    reused_store = wasmtime.Store(runtime.engine())
    reused_store.set_epoch_deadline(10**12)
    reused = linker.instantiate(reused_store, module).exports(reused_store)

    def engine_call(invocation: Invocation | None) -> None:
        assert listener.handler.run(MESSAGE, invocation).value == MESSAGE

    # Each target: what is prepared for a call outside its timing (the runtime's Invocation for the handler), and
    # the timed call.
    targets: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]] = {
        ENGINE: (lambda: Invocation(run, listener, None), engine_call),
        BARE_FRESH: (lambda: None, lambda _: _bare_call(module, linker, payload)),
        BARE_REUSED: (lambda: None, lambda _: _call_exports(reused_store, reused, payload)),
    }
    for prepare, call in targets.values():  # warm: the ticker thread, caches, the prepared instance
        for _ in range(50):
            call(prepare())
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        spent = dict.fromkeys(targets, 0.0)
        for _ in range(calls):  # call by call in turn, so a burst of load elsewhere hits every target alike
            for name, (prepare, call) in targets.items():
                prepared = prepare()
                started = time.thread_time()
                call(prepared)
                spent[name] += time.thread_time() - started
        for name in targets:
            samples[name].append(spent[name] / calls * 1e6)
        run.logs.clear()
    return samples


_FIRST_CALL_CHILD = """
import sys, time, json, wasmtime
from bloxserver.engine import wasm as runtime
path, way = sys.argv[1:3]
data = open(path, "rb").read()
engine = runtime.engine()
started = time.perf_counter()
module = runtime.deserialize(data) if way == "artifact" else wasmtime.Module(engine, data)
store = wasmtime.Store(engine)
store.set_epoch_deadline(1_000_000)
exports = wasmtime.Linker(engine).instantiate(store, module).exports(store)
pointer = exports["alloc"](store, 2)
exports["memory"].write(store, b"{}", pointer)
exports["handle_echo"](store, pointer, 2)
print(json.dumps({"ms": (time.perf_counter() - started) * 1000}))
"""


def measure_first_calls(runs: int) -> dict[str, list[float]]:
    """Milliseconds from the bytes (or artifact) in memory to the first call's output, in a fresh process each."""
    with tempfile.TemporaryDirectory() as folder:
        files: dict[str, tuple[Path, str]] = {}  # by label: the file, and how the child loads it
        for name, wat in (("echo", ECHO_WAT), ("large", LARGE_WAT)):
            data = bytes(wasmtime.wat2wasm(wat))
            _, artifact = runtime.validate(data)
            for way, content in (("bytes", data), ("artifact", artifact)):
                path = Path(folder, f"{name}.{way}")
                path.write_bytes(content)
                files[f"{name} ({max(1, len(data) // 1024)} KB) from {way}"] = (path, way)
        samples: dict[str, list[float]] = {label: [] for label in files}
        for run in range(runs + 1):  # run 0 warms the file cache; it is not counted
            for label, (path, way) in files.items():
                output = subprocess.run(
                    [sys.executable, "-c", _FIRST_CALL_CHILD, str(path), way], capture_output=True, text=True, check=True
                ).stdout
                if run:
                    samples[label].append(json.loads(output.strip().splitlines()[-1])["ms"])
    return samples


def report(warm: dict[str, list[float]], first: dict[str, list[float]]) -> str:
    lines = ratio_table("| warm call, echo module, 1 KB message | median CPU µs per call", warm, BARE_FRESH, 1)
    lines += ["", "| first call in a fresh process | median ms | ratio to compiling |", "|---|---:|---:|"]
    for label, values in first.items():
        compiled = statistics.median(first[label.replace("from artifact", "from bytes")])
        lines.append(f"| {label} | {statistics.median(values):.2f} | {statistics.median(values) / compiled:.2f}× |")
    return "\n".join(lines)
