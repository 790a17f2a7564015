"""What a project memory entry may be: its key, its value, its lifetime. Shared by the API, the engine's `memory`
handler and the store (docs/memory.md); no I/O, so the engine may import it."""

from __future__ import annotations

from typing import Any

from bloxserver import jsonvalues

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 350 * 1024  # of the value's compact JSON text: with its key, far below DynamoDB's 400 KB item
MAX_TTL_SECONDS = 31_536_000  # 365 days
MAX_LISTED_KEYS = 1000


def key_problem(key: str) -> str | None:
    """Why `key` cannot name an entry (1–512 bytes of UTF-8 text without control characters), or None."""
    if not isinstance(key, str) or not key:
        return "a key must be 1 to 512 bytes of text"
    if not jsonvalues.is_unicode(key):
        return "a key must be valid Unicode text"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"a key may have at most {MAX_KEY_BYTES} bytes (UTF-8), this one has {len(key.encode())}"
    if any(ord(character) < 0x20 or 0x7F <= ord(character) < 0xA0 for character in key):
        return "a key may not hold control characters"
    return None


def shown_key(key: str) -> str:
    """The key as errors name it: quoted, cut to 100 characters."""
    return repr(key if len(key) <= 100 else key[:100] + "…")


class ValueTooLarge(ValueError):
    """A value whose JSON text is over MAX_VALUE_BYTES."""


def value_text(value: Any) -> str:
    """The value's compact JSON text; ValueTooLarge, or ValueError for a value JSON cannot carry (never quoting the
    value)."""
    problem = jsonvalues.shape_problem(value)
    if problem is not None:
        raise ValueError(f"the value cannot be stored: it has {problem}")
    text = jsonvalues.compact(value)
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise ValueTooLarge(f"the value's JSON has more than {MAX_VALUE_BYTES} bytes")
    return text


def entry_size(key: str, text: str) -> int:
    """What an entry counts against the flow's memory: its key's and its value's JSON bytes (UTF-8)."""
    return len(key.encode()) + len(text.encode())


def ttl_problem(ttl_seconds: Any) -> str | None:
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        return f"ttl_seconds must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}"
    return None


def parsed(text: str) -> Any:
    """A stored value's JSON text as its value."""
    return jsonvalues.parse(text)


def kind(value: Any) -> str:
    """What a value is, for errors that must not quote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a number"
