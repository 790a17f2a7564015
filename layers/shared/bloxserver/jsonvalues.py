"""JSON as the flows exchange it: standard JSON only (RFC 8259), in values of bounded size.

Python's json module also reads NaN, Infinity and numbers that overflow to infinity, none of which JSON can carry
back out, and recurses once per nesting level; every flow input is parsed here, so every entry point agrees on
what counts as JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

# json.dumps refuses integers longer than this many digits (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300
UNPAIRED_SURROGATE = "text that is not valid Unicode (an unpaired surrogate such as \\ud800)"
# json.dumps recurses once per level, under Python's recursion limit (1000) less the frames already in use.
MAX_NESTING = 256


def is_unicode(text: str) -> bool:
    """False for text holding an unpaired surrogate (JSON's "\\ud800" escape decodes to one): no UTF-8 encodes it,
    so it could be neither stored nor answered."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable_text(text: str) -> str:
    """`text` with any unpaired surrogate replaced, for messages that quote what a flow held."""
    return text if is_unicode(text) else text.encode(errors="replace").decode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of more than {MAX_INT_DIGITS} digits")
    return int(text)


# Built once: json.loads and json.dumps build a new decoder or encoder on every call given options, which costs as
# much as reading or writing a small message (both are stateless, so threads share them).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
_COMPACT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def parse(text: str) -> Any:
    """The value of a JSON text; ValueError (naming what is wrong) for anything RFC 8259 does not allow, numbers
    JSON cannot carry back out, and nesting deeper than the parser can follow."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("the JSON nests too deeply") from None


def compact(value: Any) -> str:
    """`value` as compact JSON text (no spaces, non-ASCII kept): how flows' messages, outputs and memory values are
    written."""
    return _COMPACT_ENCODER.encode(value)


def size_problem(value: Any, max_bytes: int) -> str | None:
    """Why `value` cannot travel as a JSON message of at most about `max_bytes` bytes and MAX_NESTING levels, or
    None when it can."""
    return measure(value, max_bytes)[1]


def shape_problem(value: Any) -> str | None:
    """Why `value` cannot travel as a JSON message whatever its size (nesting, numbers, text), or None."""
    return measure(value, math.inf)[1]


def measure(value: Any, max_bytes: float) -> tuple[int, str | None]:
    """About how many bytes `value` takes as JSON, and why it cannot travel as a message of at most `max_bytes`
    bytes and MAX_NESTING levels (None when it can); the size counted so far when there is a problem.

    Walks the value instead of serialising it: values that share parts (a transform doubling a list each round) can
    be exponentially larger than their memory, so the walk stops as soon as the budget is spent.
    """
    size = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not is_unicode(item):
                return size, UNPAIRED_SURROGATE
            size += len(item) + 2
        elif isinstance(item, (dict, list)):
            if depth > MAX_NESTING:
                return size, f"nesting deeper than {MAX_NESTING} levels"
            size += 2 + len(item)
            if isinstance(item, dict):
                for key in item:
                    if not is_unicode(str(key)):
                        return size, UNPAIRED_SURROGATE
                    size += len(str(key)) + 3
                item = item.values()
            pending.extend((nested, depth + 1) for nested in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return size, "a number JSON cannot carry (infinity or NaN)"
            size += 8
        elif isinstance(item, int) and not isinstance(item, bool):
            digits = item.bit_length() * 0.302 + 1  # log10(2) digits per bit
            if digits > MAX_INT_DIGITS:
                return size, f"a number of more than {MAX_INT_DIGITS} digits"
            size += int(digits)
        else:
            size += 5
        if size > max_bytes:
            return size, f"more than {max_bytes} bytes"
    return size, None
