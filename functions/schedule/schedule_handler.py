"""EventBridge Scheduler target: one invocation per schedule trigger firing starts one `schedule` execution.

Input: {"userId", "flowId", "triggerId", "scheduledTime", "executionId"}, the last two filled in by the Scheduler
(<aws.scheduler.scheduled-time>, <aws.scheduler.execution-id>). The Scheduler's execution id is the delivery
key, so a retried invocation (Lambda's async retries, the Scheduler's own) records the execution once. A firing for
a trigger that no longer exists records nothing and deletes its schedule (schedule_logic).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from bloxserver.contract import TriggerType
from bloxserver.executions import StartRequest
from bloxserver.observability import logger, metrics

import schedule_logic


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        trigger_id = UUID(str(event["triggerId"]))
        request = StartRequest(
            user_id=UUID(str(event["userId"])),
            flow_id=UUID(str(event["flowId"])),
            trigger_type=TriggerType.SCHEDULE.value,
            trigger_id=trigger_id,
            input_payload=json.dumps({"scheduledTime": event.get("scheduledTime")}),
            tier=None,
            delivery_scope=trigger_id,
            delivery_key=f"scheduler:{event['executionId']}",
        )
    except (KeyError, ValueError, TypeError) as exc:
        # A retry cannot fix a malformed target input; raising would only make the Scheduler retry it.
        logger.error("Malformed schedule event", extra={"error": str(exc)})
        return {"status": "skipped", "reason": "malformed event"}
    return schedule_logic.fire(request)
