"""Identifiers whose order is their creation order (UUIDv7, RFC 9562), so a sort key made of one sorts by time.

Python gains uuid.uuid7 only in 3.14; the runtime is 3.11+, so the layout is written out here.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


def time_ordered_uuid(at_ms: int | None = None) -> uuid.UUID:
    """48 bits of Unix milliseconds, version 7, variant 10, 74 random bits."""
    millis = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    value = (millis & (2**48 - 1)) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value &= ~(0xF << 76)
    value |= 0x7 << 76
    value &= ~(0x3 << 62)
    value |= 0x2 << 62
    return uuid.UUID(int=value)


def earliest_uuid_at(moment: datetime) -> uuid.UUID:
    """Below every time_ordered_uuid made at or after `moment` (its millisecond, all other bits zero)."""
    return uuid.UUID(int=(int(moment.timestamp() * 1000) & (2**48 - 1)) << 80)


def latest_uuid_at(moment: datetime) -> uuid.UUID:
    """Above every time_ordered_uuid made at or before `moment` (its millisecond, all other bits one)."""
    return uuid.UUID(int=(((int(moment.timestamp() * 1000) & (2**48 - 1)) + 1) << 80) - 1)


def uuid_time(identifier: uuid.UUID) -> datetime:
    """When a time_ordered_uuid was made (millisecond precision)."""
    return datetime.fromtimestamp((identifier.int >> 80) / 1000, UTC)
