"""The execution queue (SQS): ingress sends one message per accepted execution; the executor consumes them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from bloxserver.settings import get_settings

# parameter_validation off: the one request is built here (see dal/table.py).
_CLIENT_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}, parameter_validation=False
)


@cache
def client() -> Any:
    return boto3.client("sqs", config=_CLIENT_CONFIG)


def send_execution(message: dict[str, Any]) -> None:
    client().send_message(QueueUrl=get_settings().queue_url, MessageBody=json.dumps(message))
