"""What one firing of a trigger's schedule does: start a `schedule` execution, unless the trigger is gone.

A schedule never outlives its trigger when requests complete (bloxserver/triggers.py); one can only when a request
failed between deleting a trigger item and deleting its schedule again. So the start of a firing's execution
requires the trigger's item (checked in its transaction, no extra read): when it no longer exists, nothing is
recorded (no execution names a trigger that 404s) and the schedule is deleted, the last step the failed request did
not take. A disabled trigger's schedule is disabled; a firing that was under way when it was disabled is checked in
the same transaction (the trigger must not be disabled) and records nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bloxserver import triggers as trigger_rules
from bloxserver.dal import executions as execution_store
from bloxserver.errors import InvalidState, NotFound, QuotaExceeded
from bloxserver.executions import StartRequest, start_execution
from bloxserver.observability import logger

TRIGGER_GONE = "Trigger not found"
TRIGGER_DISABLED = "Trigger is disabled"


def fire(request: StartRequest) -> dict[str, Any]:
    """{"status": "accepted", "executionId"} or {"status": "skipped", "reason"}; raises only what a retry may fix."""
    try:
        outcome = start_execution(replace(request, require_trigger=True))
    except execution_store.TriggerGone:
        logger.warning(
            "Schedule fired for a trigger that no longer exists; deleting the schedule",
            extra={"flowId": str(request.flow_id), "triggerId": str(request.trigger_id)},
        )
        try:
            trigger_rules.forget_orphan_schedule(request.trigger_id)
        except Exception:  # it fires again, and is retried then; a Scheduler retry of this firing would not help
            logger.exception("Deleting the schedule of a removed trigger failed")
        return {"status": "skipped", "reason": TRIGGER_GONE}
    except execution_store.TriggerDisabled:  # its schedule is disabled too; this firing was already under way
        logger.info("Schedule fired for a disabled trigger", extra={"triggerId": str(request.trigger_id)})
        return {"status": "skipped", "reason": TRIGGER_DISABLED}
    except (NotFound, InvalidState, QuotaExceeded) as refused:
        logger.info("Scheduled run not recorded", extra={"reason": refused.message, "flowId": str(request.flow_id)})
        return {"status": "skipped", "reason": refused.message}
    return {"status": "accepted", "executionId": outcome.execution["id"]}
