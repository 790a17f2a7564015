"""End to end on the local stack: a webhook call is queued, picked up by the executor worker the stack runs for
the template's SQS event source, and its result and logs are readable through the API."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest

from devstack.server import LocalStack, start_local_stack
from tests.support import SHOUT_YAML

WAIT_FOR_RESULT_SECONDS = 30  # an upper bound for a slow machine, not a timing requirement


@pytest.fixture(scope="module")
def stack():
    with start_local_stack(port=0) as running:
        yield running


def send(stack: LocalStack, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    payload = None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["content-type"] = "application/json"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def test_given_a_started_flow_with_a_webhook_when_called_then_the_execution_succeeds_with_output_and_logs(stack):
    token = stack.token(sub="user_e2e", email="e2e@example.com")
    status, flow = send(stack, "POST", "/api/v1/flows", token, {"name": "Shout", "organismYaml": SHOUT_YAML})
    assert status == 201
    base = f"/api/v1/flows/{flow['id']}"
    assert send(stack, "POST", f"{base}/start", token)[0] == 200
    status, trigger = send(stack, "POST", f"{base}/triggers", token, {"type": "webhook", "name": "in", "config": {"type": "webhook"}})
    assert status == 201

    status, accepted = send(stack, "POST", f"/webhooks/{trigger['webhookToken']}", body={"name": "grace"})
    assert status == 202 and accepted["status"] == "accepted"

    give_up = time.monotonic() + WAIT_FOR_RESULT_SECONDS
    execution = send(stack, "GET", f"{base}/executions/{accepted['executionId']}", token)[1]
    while execution["status"] == "running" and time.monotonic() < give_up:
        time.sleep(0.2)
        execution = send(stack, "GET", f"{base}/executions/{accepted['executionId']}", token)[1]
    assert execution["status"] == "success", execution
    assert json.loads(execution["outputPayload"]) == {"shout": "GRACE"}

    status, logs = send(stack, "GET", f"{base}/logs?execution_id={accepted['executionId']}", token)
    assert status == 200 and logs[0]["message"] == "execution finished: success"
    status, listing = send(stack, "GET", f"{base}/executions?status=success", token)
    assert listing["total"] == 1 and listing["items"][0]["id"] == accepted["executionId"]
    status, usage = send(stack, "GET", "/api/v1/me/usage?period=day", token)
    assert usage["executionCount"] == 1
