"""Consumer of the application table's stream, filtered in template.yaml to executions that ended failing
(rules: alerts_logic)."""

from __future__ import annotations

from typing import Any

from bloxserver import clock
from bloxserver.dal.table import deserialize
from bloxserver.observability import logger, metrics

import alerts_logic


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> None:
    ended = [deserialize(record["dynamodb"]["NewImage"]) for record in event.get("Records", [])]
    alerts_logic.send_alerts(ended, clock.utc_now())
