"""Readiness probes of the tables the functions depend on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from bloxserver.dal.table import client, key, table_name
from bloxserver.settings import get_settings


def _probe(request: dict) -> str:
    """'ok' when the read succeeds, else the error's class (no details leak to the caller)."""
    try:
        client().get_item(**request)
    except (BotoCoreError, ClientError) as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def check_tables() -> dict[str, str]:
    """One read of each table: the application table and the idempotency table (Clerk deliveries)."""
    return {
        "table": _probe({"TableName": table_name(), "Key": key("HEALTH", "HEALTH")}),
        "idempotencyTable": _probe(
            {"TableName": get_settings().idempotency_table_name, "Key": {"id": {"S": "HEALTH"}}}
        ),
    }
