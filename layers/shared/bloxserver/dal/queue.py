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
