"""YAML values as messages show them: a user wrote YAML, so a message names what they wrote in YAML's words."""

from __future__ import annotations

import datetime
from typing import Any


def shown(value: Any) -> str:
    """`value` (anything the safe YAML loader builds) as a short phrase for a validation message."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return f"the timestamp {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (dict, set)):
        return "a mapping"
    return type(value).__name__
