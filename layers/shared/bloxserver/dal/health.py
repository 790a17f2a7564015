"""Readiness probe of the application table."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from bloxserver.dal.table import client, key, table_name


def check_table() -> str:
    """'ok' when a read of the table succeeds, else the error's class (no details leak to the caller)."""
    try:
        client().get_item(TableName=table_name(), Key=key("HEALTH", "HEALTH"))
    except (BotoCoreError, ClientError) as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
