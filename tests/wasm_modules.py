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

# Project memory through the kv host functions: `handle_set` stores its input under "note" and answers
# {"code":-N} with kv_set's status (0: stored); `handle_get` answers what "note" holds (the string "absent" when
# nothing); `handle_count` adds 1 to "count" and answers the new number; `handle_forget` deletes "note" and answers
# kv_delete's status. A refusal's negative code is answered as {"code":-N}.
_KV_CODE_JSON = '{\\"code\\":-0}'  # 11 bytes at 64; the digit at 73 is patched with the code
KV_WAT = f"""(module
  (import "host" "kv_get" (func $get (param i32 i32) (result i64)))
  (import "host" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "host" "kv_delete" (func $delete (param i32 i32) (result i32)))
  (import "host" "kv_increment" (func $increment (param i32 i32 f64) (result i64)))
  {ALLOCATOR}
  (data (i32.const 16) "note")
  (data (i32.const 32) "count")
  (data (i32.const 48) "\\"absent\\"")
  (data (i32.const 64) "{_KV_CODE_JSON}")
  (func $code (param $code i32) (result i64)
    (i32.store8 (i32.const 73) (i32.sub (i32.const 48) (local.get $code)))
    {PACK.format(pointer="(i32.const 64)", length="(i32.const 11)")})
  (func $answer (param $packed i64) (result i64)
    (if (result i64) (i64.lt_s (local.get $packed) (i64.const 0))
      (then (call $code (i32.wrap_i64 (local.get $packed))))
      (else (local.get $packed))))
  (func (export "handle_set") (param $ptr i32) (param $len i32) (result i64)
    (call $code (call $set (i32.const 16) (i32.const 4) (local.get $ptr) (local.get $len))))
  (func (export "handle_get") (param i32 i32) (result i64)
    (local $packed i64)
    (local.set $packed (call $get (i32.const 16) (i32.const 4)))
    (if (result i64) (i64.eqz (local.get $packed))
      (then {PACK.format(pointer="(i32.const 48)", length="(i32.const 8)")})
      (else (call $answer (local.get $packed)))))
  (func (export "handle_count") (param i32 i32) (result i64)
    (call $answer (call $increment (i32.const 32) (i32.const 5) (f64.const 1))))
  (func (export "handle_forget") (param i32 i32) (result i64)
    (call $code (call $delete (i32.const 16) (i32.const 4)))))"""

# Answers bytes that are not JSON, and (another interface) a pointer past the end of its memory.
BAD_OUTPUT_WAT = f"""(module {ALLOCATOR}
  (data (i32.const 16) "not json")
  (func (export "handle_text") (param i32 i32) (result i64)
    {PACK.format(pointer="(i32.const 16)", length="(i32.const 8)")})
  (func (export "handle_outside") (param i32 i32) (result i64)
    {PACK.format(pointer="(i32.const 65530)", length="(i32.const 100)")}))"""


# Well formed, but `alloc` returns nothing where its type promises an i32: wasmtime refuses to compile it.
UNCOMPILABLE_WAT = """(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32))
  (func (export "free") (param i32))
  (func (export "handle_echo") (param i32 i32) (result i64) (i64.const 0)))"""


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
UNCOMPILABLE = wasm(UNCOMPILABLE_WAT)

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
