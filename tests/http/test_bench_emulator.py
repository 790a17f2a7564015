"""The benchmark's emulator answers like AWS where our CPU can tell: one kept-alive connection for many calls."""

from __future__ import annotations

import boto3
import pytest
from urllib3.connection import HTTPConnection

from devstack.bench.pipeline import EmulatorProcess


@pytest.fixture
def emulator():
    process = EmulatorProcess()
    yield process
    process.stop()


def test_given_the_bench_emulator_when_a_client_calls_it_repeatedly_then_one_connection_serves_every_call(
    emulator, monkeypatch
):
    client = boto3.client("sqs", endpoint_url=emulator.url, region_name="us-east-1")
    connects = []
    unpatched = HTTPConnection.connect
    monkeypatch.setattr(HTTPConnection, "connect", lambda self: (connects.append(self), unpatched(self))[1])

    queue_url = client.create_queue(QueueName="kept-alive")["QueueUrl"]
    for body in ("one", "two", "three"):
        client.send_message(QueueUrl=queue_url, MessageBody=body)

    assert client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]["ApproximateNumberOfMessages"] == "3"
    assert len(connects) == 1
