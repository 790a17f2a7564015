"""SQS entry point of the executor: each record of a batch is one execution; failed records go back to the queue
(partial batch response), and after the redrive policy's receives to the dead-letter queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bloxserver.executions import parse_queue_message
from bloxserver.observability import logger, metrics

import executor_logic

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def record_handler(record: SQSRecord) -> None:
        message = parse_queue_message(record.body)
        if message is None:
            # Nothing names an execution to end, and a retry cannot fix it: drop it, loudly.
            logger.error("Malformed execution message dropped", extra={"messageId": record.message_id})
            return
        executor_logic.process(message, lambda: context.get_remaining_time_in_millis() / 1000)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
