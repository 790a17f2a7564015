"""An execution's log records as stored: the engine's records, each bounded, at most MAX_LOG_RECORDS of them."""

from __future__ import annotations

import json
from typing import Any

from bloxserver import clock
from bloxserver.jsonvalues import storable_text

MAX_LOG_RECORDS = 200  # per execution, one of them saying how many were left out
KEPT_LAST_LOG_RECORDS = 2
MAX_LOG_MESSAGE_CHARS = 4000
# Metadata JSON (ASCII: json.dumps escapes the rest) above this is replaced by a note, so a logged payload never
# takes a record past DynamoDB's 400 KB item size (which would fail the BatchWriteItem holding the batch's logs).
MAX_LOG_METADATA_CHARS = 32_000
# However long the run, its first this many records are stored as they are (log_items): they can be stored while it
# runs.
STORED_AS_EMITTED = MAX_LOG_RECORDS - 1 - KEPT_LAST_LOG_RECORDS


def _metadata_json(metadata: dict[str, Any]) -> str:
    text = json.dumps(metadata, default=str)
    if len(text) <= MAX_LOG_METADATA_CHARS:
        return text
    kept = {name: metadata.get(name) for name in ("executionId", "listener")}
    return json.dumps({**kept, "metadataTruncated": f"{len(text)} characters not stored"}, default=str)


def log_item(record: Any) -> dict[str, Any]:
    return {
        "timestamp": clock.iso(record.timestamp),
        "level": record.level,
        "message": storable_text(record.message[:MAX_LOG_MESSAGE_CHARS]),
        "metadataJson": _metadata_json(record.metadata),
    }


def log_items(result_logs: list[Any]) -> list[dict[str, Any]]:
    """The engine's records as stored log items, capped at MAX_LOG_RECORDS: past the cap, the first ones, a note
    saying how many were left out, and the last KEPT_LAST_LOG_RECORDS (how the run ended: its error and its end)."""
    if len(result_logs) <= MAX_LOG_RECORDS:
        return [log_item(record) for record in result_logs]
    head = result_logs[:STORED_AS_EMITTED]
    tail = result_logs[-KEPT_LAST_LOG_RECORDS:]
    first_left_out = result_logs[len(head)]
    note = {
        "timestamp": clock.iso(first_left_out.timestamp),
        "level": "warning",
        "message": f"log truncated: {len(result_logs) - len(head) - len(tail)} of {len(result_logs)} records not stored",
        "metadataJson": _metadata_json({"executionId": first_left_out.metadata.get("executionId"), "listener": None}),
    }
    return [*map(log_item, head), note, *map(log_item, tail)]
