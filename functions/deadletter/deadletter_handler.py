"""Consumer of the execution dead-letter queue (rules: deadletter_logic)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bloxserver import clock
from bloxserver.executions import parse_queue_message
from bloxserver.observability import logger, metrics

import deadletter_logic

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    message = parse_queue_message(record.body)
    if message is None:
        logger.error("Malformed dead letter dropped", extra={"messageId": record.message_id})
        return
    deadletter_logic.end_dead_lettered(message, clock.utc_now())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
