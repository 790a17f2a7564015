"""The execution queue (SQS): ingress sends one message per accepted execution; the executor consumes them."""

from __future__ import annotations

import json
from typing import Any

from bloxserver.dal import aws
from bloxserver.settings import get_settings

def client() -> Any:
    return aws.client("sqs")


def send_execution(message: dict[str, Any]) -> None:
    client().send_message(QueueUrl=get_settings().queue_url, MessageBody=json.dumps(message))


def redeliver_now(receipt_handles: list[str]) -> None:
    """Make received messages visible again at once (visibility timeout 0) rather than after the queue's
    VisibilityTimeout: ChangeMessageVisibilityBatch, 10 a call. Best effort: a message it fails for comes back
    after its timeout, as it would have."""
    sqs, queue_url = client(), get_settings().queue_url
    for start in range(0, len(receipt_handles), 10):
        entries = [
            {"Id": str(position), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for position, handle in enumerate(receipt_handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
