"""The SQS event source mappings and the sweeper's schedule of template.yaml, run locally.

Workers poll each queue that a function consumes (an `SQS` event in the template), several batches at once
(CONCURRENT_BATCHES), hand batches to the function as Lambda's event source mapping does (BatchSize,
ReportBatchItemFailures), delete what succeeded and leave failed records to come back. moto implements the
redrive policy: on the receive after maxReceiveCount, a message moves to the dead-letter queue. One local difference: a failed record becomes visible again after
LOCAL_RETRY_DELAY_SECONDS instead of the queue's VisibilityTimeout (90 minutes for the execution queue).

Functions with a `ScheduleV2` event `rate(N unit)` are invoked every N units with a Scheduler-like event.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.gateway import LocalFunction
from devstack.template import FunctionSpec, functions, resources_of_type

LOCAL_RETRY_DELAY_SECONDS = 1
# Lambda's event source mapping runs several batches of one queue at once (five to begin with, more under load),
# so one slow batch never holds up the next: so do the local pollers.
CONCURRENT_BATCHES = 5
POLL_WAIT_SECONDS = 1
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class QueueMapping:
    function: str
    queue: str  # the queue's logical id
    batch_size: int
    reports_item_failures: bool


@dataclass(frozen=True)
class ScheduledFunction:
    function: str
    every_seconds: int


def queue_mappings() -> list[QueueMapping]:
    """Every SQS event of every function in the template."""
    mappings = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            props = event["Properties"]
            queue = props["Queue"]["Fn::GetAtt"]
            mappings.append(
                QueueMapping(
                    function=logical_id,
                    queue=queue[0] if isinstance(queue, list) else queue.split(".")[0],
                    batch_size=int(props.get("BatchSize", 10)),
                    reports_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
    return mappings


def scheduled_functions() -> list[ScheduledFunction]:
    """Every ScheduleV2 event with a rate() expression."""
    scheduled = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "ScheduleV2":
                continue
            match = re.fullmatch(r"rate\((\d+) (\w+)\)", event["Properties"]["ScheduleExpression"])
            if match:
                scheduled.append(ScheduledFunction(logical_id, int(match.group(1)) * _RATE_UNITS[match.group(2)]))
    return scheduled


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping sends for a batch of received messages."""
    region = queue_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def deliver_batch(
    sqs: Any,
    queue_url: str,
    mapping: QueueMapping,
    function: LocalFunction,
    wait_seconds: int = 0,
    retry_delay_seconds: int = LOCAL_RETRY_DELAY_SECONDS,
) -> int:
    """Receive one batch, invoke the function with it, settle it; returns how many messages were received.
    Failed records become visible again after `retry_delay_seconds`."""
    received = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=mapping.batch_size,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    if not received:
        return 0
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        response = function.invoke(sqs_event(received, queue_arn)) or {}
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        if failed and not mapping.reports_item_failures:
            failed = {message["MessageId"] for message in received}
    except Exception:  # an invocation error fails the whole batch, as Lambda does
        failed = {message["MessageId"] for message in received}
    done = [message for message in received if message["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(done)],
        )
    for message in received:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=retry_delay_seconds
            )
    return len(received)


def scheduler_event(function: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": now,
        "region": "us-east-1",
        "resources": [f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{function}"],
        "detail": "{}",
    }


def poll_queue(queue_url: str, mapping: QueueMapping, function: LocalFunction, endpoint_url: str | None):
    def run(stop: threading.Event) -> None:
        sqs = boto3.client("sqs", endpoint_url=endpoint_url)
        while not stop.is_set():
            try:
                deliver_batch(sqs, queue_url, mapping, function, wait_seconds=POLL_WAIT_SECONDS)
            except Exception:  # the embedded AWS stopping under us, or a transient error: keep polling
                stop.wait(POLL_WAIT_SECONDS)

    return run


def run_on_schedule(scheduled: ScheduledFunction, function: LocalFunction):
    def run(stop: threading.Event) -> None:
        while not stop.wait(scheduled.every_seconds):
            try:
                function.invoke(scheduler_event(scheduled.function))
            except Exception:  # logged by the function; the next tick tries again
                pass

    return run


def start_workers(stack: Any, queue_urls: dict[str, str], specs: dict[str, FunctionSpec] | None = None) -> None:
    """Register, on a local stack, one poller per SQS event source and one timer per ScheduleV2 rate.
    `queue_urls`: queue logical id → URL (what create_all returned)."""
    specs = specs or functions()
    for mapping in queue_mappings():
        function = LocalFunction(specs[mapping.function])
        for poller in range(CONCURRENT_BATCHES):
            stack.add_worker(
                poll_queue(queue_urls[mapping.queue], mapping, function, stack.aws.endpoint_url),
                name=f"sqs-{mapping.function}-{poller}",
            )
    for scheduled in scheduled_functions():
        stack.add_worker(run_on_schedule(scheduled, LocalFunction(specs[scheduled.function])), name=f"schedule-{scheduled.function}")
