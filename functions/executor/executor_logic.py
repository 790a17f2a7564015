"""Running one queued execution: claim it once, run the engine within the time left, record the outcome.

The claim protocol (docs/executions.md): a delivery runs the execution only if its conditional claim wins, so a
redelivered message never runs it twice; anything that stops before the end is ended by the sweeper.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bloxserver import clock, keys
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.executions import CLAIM_GRACE_SECONDS, end_execution
from bloxserver.observability import logger

# Time kept back from the invocation's remaining time for the writes after the run.
FINISH_MARGIN_SECONDS = 15
# Below this much run time a delivery is handed back to the queue instead of starting a run bound to time out.
MIN_RUN_SECONDS = 10
MAX_LOG_RECORDS = 200  # per execution, the last one saying how many were left out
MAX_LOG_MESSAGE_CHARS = 4000
MAX_OUTPUT_BYTES = 128 * 1024  # with a webhook's 256 KB input, keeps the execution under the 400 KB item limit


class NotEnoughTime(Exception):
    """The invocation cannot give this execution a useful run; the message goes back to the queue."""


def log_items(result_logs: list[Any]) -> list[dict[str, Any]]:
    """The engine's records as stored log items, capped at MAX_LOG_RECORDS."""
    kept = result_logs
    if len(result_logs) > MAX_LOG_RECORDS:
        kept = result_logs[: MAX_LOG_RECORDS - 1]
    items = [
        {
            "timestamp": clock.iso(record.timestamp),
            "level": record.level,
            "message": record.message[:MAX_LOG_MESSAGE_CHARS],
            "metadataJson": json.dumps(record.metadata, default=str),
        }
        for record in kept
    ]
    if len(kept) < len(result_logs):
        last = result_logs[-1]
        items.append(
            {
                "timestamp": clock.iso(last.timestamp),
                "level": "warning",
                "message": f"log truncated: {len(result_logs) - len(kept)} of {len(result_logs)} records not stored",
                "metadataJson": json.dumps(dict(last.metadata, listener=None), default=str),
            }
        )
    return items


def _outcome(result: Any) -> tuple[str, dict[str, Any]]:
    if result.status == "success":
        if result.output is not None and len(result.output.encode()) > MAX_OUTPUT_BYTES:
            return "error", {"errorMessage": f"Output exceeds {MAX_OUTPUT_BYTES} bytes"}
        return "success", {"outputPayload": result.output}
    return result.status, {"errorMessage": result.error or f"Execution ended: {result.status}"}


def process(message: dict[str, str], remaining_seconds: Callable[[], float]) -> None:
    """Run the execution `message` names, unless it already ran, ended or is running elsewhere."""
    execution_id = message["executionId"]
    execution, flow = execution_store.get_execution_and_flow(message["userId"], message["flowId"], execution_id)
    if execution is None or execution["status"] != "running" or execution.get("claimedAt"):
        logger.info("Execution already handled or gone", extra={"executionId": execution_id})
        return
    if flow is None or flow["status"] != "running":
        end_execution(execution, "error", {"errorMessage": "Flow stopped before the execution started"}, unclaimed=True)
        return
    run_seconds = remaining_seconds() - FINISH_MARGIN_SECONDS
    if run_seconds < MIN_RUN_SECONDS:
        raise NotEnoughTime(execution_id)
    claimed = clock.utc_now()
    claimed_at = clock.iso(claimed)
    marker_deadline = clock.iso(claimed + timedelta(seconds=run_seconds + FINISH_MARGIN_SECONDS + CLAIM_GRACE_SECONDS))
    if not execution_store.claim(execution, claimed_at, keys.running_marker_sk(marker_deadline, execution_id), marker_deadline):
        logger.info("Execution claimed by another delivery", extra={"executionId": execution_id})
        return
    execution["runningMarker"] = keys.running_marker_sk(marker_deadline, execution_id)

    from bloxserver.engine import run_flow

    result = run_flow(
        flow["organismYaml"],
        execution.get("inputPayload"),
        execution_id=execution_id,
        deadline=time.monotonic() + run_seconds,
    )
    try:
        log_store.put_records(execution["flowId"], execution_id, log_items(result.logs), execution["expiresAt"])
    except Exception:  # the outcome matters more than its logs: still record it
        logger.exception("Could not store the execution's logs", extra={"executionId": execution_id})
    status, fields = _outcome(result)
    if not end_execution(execution, status, fields, claimed_at=claimed_at):
        logger.warning("Execution was ended by the sweeper before the run finished", extra={"executionId": execution_id})
