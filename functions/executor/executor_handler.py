"""SQS entry point of the executor: each record of a batch is one execution, and the batch is processed together
(executor_logic.process); failed records go back to the queue (partial batch response, ReportBatchItemFailures),
and after the redrive policy's receives to the dead-letter queue. Records handed back unstarted are made visible
at once, so another invocation runs them now rather than after the queue's 90-minute visibility timeout."""

from __future__ import annotations

from typing import Any

from bloxserver.dal import queue
from bloxserver.executions import parse_queue_message
from bloxserver.observability import logger, metrics

import executor_logic


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event["Records"]
    positions: list[int] = []
    messages: list[dict[str, str]] = []
    for position, record in enumerate(records):
        message = parse_queue_message(record["body"])
        if message is None:
            # Nothing names an execution to end, and a retry cannot fix it: drop it, loudly.
            logger.error("Malformed execution message dropped", extra={"messageId": record["messageId"]})
            continue
        positions.append(position)
        messages.append(message)
    failed: set[int] = set()
    if messages:
        try:
            failed = executor_logic.process(messages, lambda: context.get_remaining_time_in_millis() / 1000)
        except Exception:  # nothing of it is known to be recorded: every record goes back to the queue, in time
            logger.exception("Execution batch failed")
            failed = set(range(len(messages)))
        else:
            _redeliver_now([records[positions[i]]["receiptHandle"] for i in sorted(failed)])
    return {"batchItemFailures": [{"itemIdentifier": records[positions[i]]["messageId"]} for i in sorted(failed)]}


def _redeliver_now(receipt_handles: list[str]) -> None:
    if not receipt_handles:
        return
    try:
        queue.redeliver_now(receipt_handles)
    except Exception:  # they come back after the visibility timeout instead
        logger.exception("Could not make handed-back records visible again")
