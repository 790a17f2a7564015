"""Scheduled entry point of the memory expiry sweep (EventBridge Scheduler, every minute): expired project memory
entries are removed and uncounted (docs/memory.md)."""

from __future__ import annotations

from typing import Any

from bloxserver import project_memory
from bloxserver.observability import logger, metrics


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"removed": project_memory.sweep_expired()}
