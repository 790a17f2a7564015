"""End to end on the local stack: a run that fails reaches the alerts function through the table's stream, read by
the worker the stack runs for the template's DynamoDB event source, and the receiver gets one signed alert.

A module of its own: a stack resets the process's embedded AWS, so it must not run beside another module's stack.
"""

from __future__ import annotations

import time

from svix.webhooks import Webhook

from devstack.server import start_local_stack
from tests.http.test_executions_end_to_end import send
from tests.http.test_local_stack_persistence import PRO, SIGNING_SECRET
from tests.support import REFUSED_CALL_YAML
from tests.unit.engine.engine_fakes import LocalServer, Reply

WAIT_SECONDS = 30  # an upper bound for a slow machine, not a timing requirement


def test_given_a_flow_with_alerts_on_the_local_stack_when_a_webhook_run_fails_then_one_signed_alert_arrives(
    tmp_path, loopback_allowed
):
    receiver = LocalServer(lambda _: Reply(204))
    with receiver, start_local_stack(port=0, key_path=tmp_path / "key.pem") as stack:
        token = stack.token(**PRO)
        flow = send(stack, "POST", "/api/v1/flows", token, {"name": "Failing", "organismYaml": REFUSED_CALL_YAML})[1]
        base = f"/api/v1/flows/{flow['id']}"
        assert send(stack, "POST", f"{base}/start", token)[0] == 200
        assert send(stack, "PUT", "/api/v1/secrets/ALERT_KEY", token, {"value": SIGNING_SECRET})[0] == 200
        alerts = {"on": ["error"], "url": f"{receiver.url}/alerts", "secret": "secret('ALERT_KEY')"}
        assert send(stack, "PATCH", base, token, {"alerts": alerts})[0] == 200
        hook = send(stack, "POST", f"{base}/triggers", token, {"type": "webhook", "name": "in", "config": {"type": "webhook"}})[1]

        execution_id = send(stack, "POST", f"/webhooks/{hook['webhookToken']}", body={})[1]["executionId"]
        give_up = time.monotonic() + WAIT_SECONDS
        while not receiver.requests and time.monotonic() < give_up:
            time.sleep(0.2)
        time.sleep(1)  # nothing more comes

    (request,) = receiver.requests
    Webhook(SIGNING_SECRET).verify(request.body, {k.lower(): v for k, v in request.headers.items()})  # raises if not
    alert = request.json()
    assert (alert["flowId"], alert["executionId"], alert["status"]) == (flow["id"], execution_id, "error")
