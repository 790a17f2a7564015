"""AWS for the local stack: moto in server mode, in this process, on a free port of 127.0.0.1."""

from __future__ import annotations

import functools
import logging
import threading
import urllib.request
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

# Environment that makes every boto3 client in this process talk to the embedded moto with fake credentials.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_dynamodb_lock = threading.Lock()


def serialize_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time, as DynamoDB's per-item atomicity requires.

    moto's server is threaded and its DynamoDB backend takes no lock: a conditional put checks the condition and
    then writes, so two concurrent requests can both pass the check (two "first" creates, a quota exceeded), and
    TransactWriteItems rolls back by restoring a deep copy of the table, wiping concurrent writes to other items.
    AWS makes each of these atomic. One lock around every DynamoDB action gives the same outcome; the local stack
    is small enough that the lost parallelism does not matter. Idempotent: the handler is wrapped once.
    """
    if getattr(DynamoHandler.call_action, "serialized_by_devstack", False):
        return
    unserialized = DynamoHandler.call_action

    @functools.wraps(unserialized)
    def call_action(self: DynamoHandler) -> Any:
        with _dynamodb_lock:
            return unserialized(self)

    call_action.serialized_by_devstack = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


class EmbeddedAws:
    def __init__(self) -> None:
        serialize_dynamodb()
        # Werkzeug logs each of moto's requests at INFO; the gateway's own access log is the useful one.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")).close()

    def stop(self) -> None:
        self._server.stop()
