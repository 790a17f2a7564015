"""Shared by the execution tests: the functions involved, a running flow with a webhook, and a queue drained
into the executor the way the event source mapping does it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.events import LambdaContext, run_handler
from devstack.queue_worker import QueueMapping, deliver_batch
from devstack.resources import queue_url
from tests.support import ALICE, SHOUT_YAML, call
from tests.unit.engine.engine_fakes import LocalServer, Reply


EXECUTOR_TIMEOUT_SECONDS = 900.0
SLOW_SECONDS = 20  # how long the slow server holds each request, unless released earlier


class Invoker:
    """A handler with the invoke(event) shape of a devstack LocalFunction."""

    def __init__(self, handler: Any, name: str, timeout_seconds: float) -> None:
        self.handler, self.name, self.timeout_seconds = handler, name, timeout_seconds

    def invoke(self, event: dict[str, Any]) -> Any:
        return run_handler(self.handler, event, LambdaContext(self.name, self.timeout_seconds))


@dataclass
class System:
    flows: Any
    triggers: Any
    ingress: Any
    executions: Any
    executor: Any
    deadletter: Any
    schedule: Any

    def running_flow(self, claims: dict = ALICE, organism_yaml: str = SHOUT_YAML, name: str = "Shout") -> str:
        flow = call(self.flows, "POST", "/api/v1/flows", body={"name": name, "organismYaml": organism_yaml}, claims=claims)
        assert flow.status == 201, flow.body
        started = call(self.flows, "POST", f"/api/v1/flows/{flow.json['id']}/start", claims=claims)
        assert started.status == 200, started.body
        return flow.json["id"]

    def webhook(self, flow_id: str, claims: dict = ALICE, name: str = "Inbound") -> dict:
        reply = call(
            self.triggers,
            "POST",
            f"/api/v1/flows/{flow_id}/triggers",
            body={"type": "webhook", "name": name, "config": {"type": "webhook"}},
            claims=claims,
        )
        assert reply.status == 201, reply.body
        return reply.json

    def stop_flow(self, flow_id: str, claims: dict = ALICE) -> None:
        assert call(self.flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=claims).status == 200

    def execution(self, flow_id: str, execution_id: str, claims: dict = ALICE) -> dict:
        reply = call(self.executions, "GET", f"/api/v1/flows/{flow_id}/executions/{execution_id}", claims=claims)
        assert reply.status == 200, reply.body
        return reply.json

    def deliver(self, handler: Any = None, queue: str = "ExecutionQueue", timeout_seconds: float = EXECUTOR_TIMEOUT_SECONDS) -> int:
        """One batch from `queue` into the executor (or `handler`); returns how many messages it received."""
        mapping = QueueMapping(function="ExecutorFunction", queue=queue, batch_size=10, reports_item_failures=True)
        invoker = Invoker(handler or self.executor, "ExecutorFunction", timeout_seconds)
        return deliver_batch(boto3.client("sqs"), queue_url(queue), mapping, invoker, retry_delay_seconds=0)

    def drain(self) -> int:
        """Deliver until the execution queue is empty; returns how many messages were delivered."""
        delivered = total = self.deliver()
        while delivered:
            delivered = self.deliver()
            total += delivered
        return total


def messages_in(queue: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def system_of_handlers() -> System:
    import deadletter_handler
    import executions_handler
    import executor_handler
    import flows_handler
    import ingress_handler
    import schedule_handler
    import triggers_handler

    return System(
        flows=flows_handler.handler,
        triggers=triggers_handler.handler,
        ingress=ingress_handler.handler,
        executions=executions_handler.handler,
        executor=executor_handler.handler,
        deadletter=deadletter_handler.handler,
        schedule=schedule_handler.handler,
    )


class SlowServer:
    """Answers each request after SLOW_SECONDS (or at once after `release()`), counting the requests in flight."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self.server = LocalServer(self._respond)

    def _respond(self, _recorded) -> Reply:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.released.wait(SLOW_SECONDS)
        with self._lock:
            self.in_flight -= 1
        return Reply(200, {"slow": True})

    def release(self) -> None:
        self.released.set()


@contextmanager
def slow_server():
    slow = SlowServer()
    with slow.server:
        try:
            yield slow
        finally:
            slow.release()


def slow_flow_yaml(url: str) -> str:
    return f"""\
organism: {{name: slow}}
listeners:
  - name: call
    description: Waits on a slow upstream
    handler: http
    config: {{url: "{url}/slow", timeout_seconds: 30}}
    timeout_seconds: 30
"""
