"""Consumer of the execution dead-letter queue: a message the executor failed on every delivery attempt leaves
its execution `error`, never `running`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bloxserver.dal import executions as execution_store
from bloxserver.executions import QUEUE_MAX_RECEIVES, end_execution, parse_queue_message
from bloxserver.observability import logger, metrics

processor = BatchProcessor(event_type=EventType.SQS)

DEAD_LETTER_MESSAGE = f"Execution failed: not processed after {QUEUE_MAX_RECEIVES} delivery attempts"


def record_handler(record: SQSRecord) -> None:
    message = parse_queue_message(record.body)
    if message is None:
        logger.error("Malformed dead letter dropped", extra={"messageId": record.message_id})
        return
    execution = execution_store.get_execution(message["flowId"], message["executionId"])
    if execution is not None and execution["status"] == "running":
        end_execution(execution, "error", {"errorMessage": DEAD_LETTER_MESSAGE})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
