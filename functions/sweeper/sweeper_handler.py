"""Scheduled entry point of the sweeper (EventBridge Scheduler, every 2 minutes)."""

from __future__ import annotations

from typing import Any

from bloxserver import clock
from bloxserver.observability import logger, metrics

import sweeper_logic


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"timedOut": sweeper_logic.sweep(clock.utc_now())}
