"""WASM modules end to end on the local stack: a browser-style multipart POST of the presigned upload to the
embedded S3, validation, a flow running the module from a webhook to its recorded output, and a re-upload while
that flow runs."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from devstack.server import start_local_stack
from tests.wasm_modules import ECHO, FIXED, FIXED_ANSWER, TRUNCATED

WAIT_FOR_RESULT_SECONDS = 30  # an upper bound for a slow machine, not a timing requirement


@pytest.fixture(scope="module")
def stack():
    with start_local_stack(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack):
    token = stack.token(sub="user_wasm_e2e", email="wasm@example.com", tier="pro")
    with httpx.Client(base_url=stack.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


def upload(form: dict[str, Any], data: bytes, content_type: str = "application/wasm") -> httpx.Response:
    """What a browser's form POST sends: the presigned fields, then the file."""
    return httpx.post(form["url"], data=form["fields"], files={"file": ("tool.wasm", data, content_type)}, timeout=30)


def wasm_flow(module_id: str) -> str:
    return f"""
organism: {{name: wasm-echo}}
listeners:
  - name: tool
    description: Runs the uploaded module
    handler: wasm:{module_id}
    config: {{interface: echo}}
    peers: [done]
  - name: done
    description: The result
    handler: output
"""


def run_webhook(api: httpx.Client, flow_id: str, token: str, body: Any) -> dict[str, Any]:
    accepted = api.post(f"/webhooks/{token}", json=body, headers={"authorization": ""})
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["executionId"]
    give_up = time.monotonic() + WAIT_FOR_RESULT_SECONDS
    while True:
        execution = api.get(f"/api/v1/flows/{flow_id}/executions/{execution_id}").json()
        if execution["status"] != "running" or time.monotonic() > give_up:
            return execution
        time.sleep(0.2)


def test_given_a_module_uploaded_through_its_presigned_post_when_completed_then_it_is_ready(api):
    created = api.post("/api/v1/modules", json={"name": "Echo"})
    assert created.status_code == 201, created.text
    module = created.json()
    assert module["status"] == "pending" and module["sha256"] is None and module["exports"] == []
    assert module["upload"]["url"].startswith("http://127.0.0.1:")

    assert upload(module["upload"], ECHO).status_code in (200, 201, 204)
    completed = api.post(f"/api/v1/modules/{module['id']}/complete")

    assert completed.status_code == 200, completed.text
    ready = completed.json()
    assert ready["status"] == "ready" and ready["error"] is None
    assert ready["exports"] == ["handle_echo"] and ready["sizeBytes"] == len(ECHO)
    assert len(ready["sha256"]) == 64


def test_given_a_truncated_upload_when_completed_then_the_module_is_invalid_saying_why(api):
    module = api.post("/api/v1/modules", json={"name": "Broken"}).json()
    upload(module["upload"], TRUNCATED)

    invalid = api.post(f"/api/v1/modules/{module['id']}/complete").json()

    assert invalid["status"] == "invalid" and "truncated" in invalid["error"]


def test_given_a_running_flow_with_a_module_when_the_module_is_reuploaded_then_the_flow_keeps_its_version(api):
    module = api.post("/api/v1/modules", json={"name": "Tool"}).json()
    upload(module["upload"], ECHO)
    assert api.post(f"/api/v1/modules/{module['id']}/complete").json()["status"] == "ready"
    flow = api.post("/api/v1/flows", json={"name": "WASM", "organismYaml": wasm_flow(module["id"])}).json()
    assert api.post(f"/api/v1/flows/{flow['id']}/start").status_code == 200
    hook = api.post(
        f"/api/v1/flows/{flow['id']}/triggers", json={"type": "webhook", "name": "in", "config": {"type": "webhook"}}
    ).json()

    first = run_webhook(api, flow["id"], hook["webhookToken"], {"hello": "wasm"})
    assert first["status"] == "success", first
    assert json.loads(first["outputPayload"]) == {"hello": "wasm"}

    # When: new bytes (answering a fixed object from the same handle_echo) replace the module while the flow runs.
    form = api.post(f"/api/v1/modules/{module['id']}/upload")
    assert form.status_code == 200 and api.get(f"/api/v1/modules/{module['id']}").json()["status"] == "pending"
    upload(form.json(), FIXED)
    assert api.post(f"/api/v1/modules/{module['id']}/complete").json()["exports"] == ["handle_answer", "handle_echo"]

    # Then: the running flow still runs the version it started with, and deleting the module is refused.
    second = run_webhook(api, flow["id"], hook["webhookToken"], {"hello": "again"})
    assert second["status"] == "success" and json.loads(second["outputPayload"]) == {"hello": "again"}
    refused = api.delete(f"/api/v1/modules/{module['id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_state"

    # And a restart pins the new version (its handle_echo answers the fixed object).
    assert api.post(f"/api/v1/flows/{flow['id']}/stop").status_code == 200
    assert api.post(f"/api/v1/flows/{flow['id']}/start").status_code == 200
    third = run_webhook(api, flow["id"], hook["webhookToken"], {"hello": "new"})
    assert third["status"] == "success" and json.loads(third["outputPayload"]) == FIXED_ANSWER

    # Once stopped, the module can go, with its objects.
    assert api.post(f"/api/v1/flows/{flow['id']}/stop").status_code == 200
    assert api.delete(f"/api/v1/modules/{module['id']}").status_code == 204
    assert api.get(f"/api/v1/modules/{module['id']}").status_code == 404


def test_given_only_an_upload_then_the_bucket_notification_makes_the_module_ready(api):
    module = api.post("/api/v1/modules", json={"name": "Notified"}).json()

    assert upload(module["upload"], ECHO).status_code in (200, 201, 204)

    give_up = time.monotonic() + WAIT_FOR_RESULT_SECONDS
    current = api.get(f"/api/v1/modules/{module['id']}").json()
    while current["status"] == "pending" and time.monotonic() < give_up:
        time.sleep(0.2)
        current = api.get(f"/api/v1/modules/{module['id']}").json()
    assert current["status"] == "ready" and current["exports"] == ["handle_echo"]
