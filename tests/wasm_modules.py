"""Real WebAssembly modules for the tests, written in the text format and built with wasmtime.wat2wasm: each one
a case of docs/wasm.md's ABI (a well-behaved tool, or one way a module goes wrong)."""

from __future__ import annotations

import json

import wasmtime

# A bump allocator from 1024 up, a no-op free: enough for one call per fresh instance.
ALLOCATOR = """
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 1024))
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $len)))
    ;; grow the memory when the bump passes its end
    (block $fits
      (br_if $fits (i32.le_u (global.get $next) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.div_u (i32.sub (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
                                             (i32.const 65536)) (i32.const 1)))))
    (local.get $at))
  (func (export "free") (param i32))
"""

PACK = "(i64.or (i64.shl (i64.extend_i32_u {pointer}) (i64.const 32)) (i64.extend_i32_u {length}))"

# Returns its input: the output is the input buffer itself.
ECHO_WAT = f"""(module {ALLOCATOR}
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""

FIXED_ANSWER = {"answer": 42, "source": "wasm"}
_FIXED_TEXT = json.dumps(FIXED_ANSWER, separators=(",", ":"))
_FIXED_WAT_STRING = _FIXED_TEXT.replace('"', '\\"')  # as a WAT string literal

# Ignores its input and answers a fixed JSON object from a data segment, through two interfaces (handle_echo too:
# a replacement for ECHO that behaves differently).
_ANSWER = PACK.format(pointer="(i32.const 16)", length=f"(i32.const {len(_FIXED_TEXT)})")
FIXED_WAT = f"""(module {ALLOCATOR}
  (data (i32.const 16) "{_FIXED_WAT_STRING}")
  (func (export "handle_answer") (param i32 i32) (result i64) {_ANSWER})
  (func (export "handle_echo") (param i32 i32) (result i64) {_ANSWER}))"""

# Never returns.
LOOP_WAT = f"""(module {ALLOCATOR}
  (func (export "handle_spin") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))"""

# Grows its memory a page at a time until refused, then traps (as a real allocator does when out of memory).
MEMORY_BOMB_WAT = f"""(module {ALLOCATOR}
  (func (export "handle_bomb") (param i32 i32) (result i64)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))"""

# Imports a host function that does not exist.
FORBIDDEN_IMPORT_WAT = f"""(module
  (import "env" "fetch" (func $fetch (param i32 i32) (result i32)))
  {ALLOCATOR}
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""

# Exports no alloc.
NO_ALLOC_WAT = f"""(module
  (memory (export "memory") 1)
  (func (export "free") (param i32))
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""

# Logs its input at level 1 (info) through host.log, then returns it.
LOGGING_WAT = f"""(module
  (import "host" "log" (func $log (param i32 i32 i32)))
  {ALLOCATOR}
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 1) (local.get $ptr) (local.get $len))
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""

# Imports the kv host functions (project memory).
KV_WAT = f"""(module
  (import "host" "kv_get" (func $get (param i32 i32) (result i64)))
  {ALLOCATOR}
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""

# Answers bytes that are not JSON, and (another interface) a pointer past the end of its memory.
BAD_OUTPUT_WAT = f"""(module {ALLOCATOR}
  (data (i32.const 16) "not json")
  (func (export "handle_text") (param i32 i32) (result i64)
    {PACK.format(pointer="(i32.const 16)", length="(i32.const 8)")})
  (func (export "handle_outside") (param i32 i32) (result i64)
    {PACK.format(pointer="(i32.const 65530)", length="(i32.const 100)")}))"""


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


ECHO = wasm(ECHO_WAT)
FIXED = wasm(FIXED_WAT)
LOOP = wasm(LOOP_WAT)
MEMORY_BOMB = wasm(MEMORY_BOMB_WAT)
FORBIDDEN_IMPORT = wasm(FORBIDDEN_IMPORT_WAT)
NO_ALLOC = wasm(NO_ALLOC_WAT)
LOGGING = wasm(LOGGING_WAT)
KV = wasm(KV_WAT)
BAD_OUTPUT = wasm(BAD_OUTPUT_WAT)
TRUNCATED = ECHO[: len(ECHO) // 2]

# Counts its calls in a global: every call answers 1 when each call gets a fresh instance.
COUNTER_WAT = f"""(module {ALLOCATOR}
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 16) "0123456789")
  (func (export "handle_count") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    {PACK.format(pointer="(i32.add (i32.const 16) (global.get $calls))", length="(i32.const 1)")}))"""
COUNTER = wasm(COUNTER_WAT)

# Asks for more memory at instantiation (300 pages, 18.75 MiB) than a small cap allows.
BIG_MEMORY_WAT = f"""(module
  (memory (export "memory") 300)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "free") (param i32))
  (func (export "handle_echo") (param $ptr i32) (param $len i32) (result i64)
    {PACK.format(pointer="(local.get $ptr)", length="(local.get $len)")}))"""
BIG_MEMORY = wasm(BIG_MEMORY_WAT)
