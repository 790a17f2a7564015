"""A flow's http listener uses its owner's secret: a missing one fails validation and start; a run sends the value,
and neither the execution, its output nor its logs ever show it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bloxserver.engine import get_engine_settings
from tests.support import ALICE, BOB, call

API_KEY = "sk-live-0123456789abcdef"


class EchoServer:
    """Answers every request with the Authorization header it received (as an API that echoes would)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.append(dict(self.headers))
                body = json.dumps({"youSent": self.headers.get("Authorization")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setenv("BLOX_ALLOWED_PRIVATE_CIDRS", "127.0.0.1/32")
    get_engine_settings.cache_clear()
    server = EchoServer()
    yield server
    server.close()
    get_engine_settings.cache_clear()


@pytest.fixture
def secrets_api(aws):
    import secrets_handler

    return secrets_handler.handler


def flow_calling(url: str) -> str:
    return f"""
organism: {{name: with-secret}}
log_payloads: true
listeners:
  - name: call
    description: Calls the API with the owner's key
    handler: http
    config:
      url: "{url}/v1/me"
      headers: {{Authorization: "Bearer {{{{ secret('API_KEY') }}}}"}}
    peers: [done]
  - {{name: done, description: The answer, handler: output}}
"""


def create_flow(system, yaml_text: str, claims=ALICE) -> str:
    reply = call(system.flows, "POST", "/api/v1/flows", body={"name": "Secretive", "organismYaml": yaml_text}, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json["id"]


def test_a_missing_secret_fails_validation_and_start_with_invalid_config(system, secrets_api, echo):
    flow_id = create_flow(system, flow_calling(echo.url))

    issues = call(system.flows, "POST", f"/api/v1/flows/{flow_id}/validate", claims=ALICE).json
    [error] = [issue for issue in issues if issue["severity"] == "error"]
    assert error["code"] == "invalid_config" and "'API_KEY'" in error["message"]
    refused = call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE)
    assert (refused.status, refused.json["code"]) == (422, "invalid_flow")

    # another user's secret of that name does not count
    call(secrets_api, "PUT", "/api/v1/secrets/API_KEY", body={"value": "bobs-own-key-000"}, claims=BOB)
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 422

    call(secrets_api, "PUT", "/api/v1/secrets/API_KEY", body={"value": API_KEY}, claims=ALICE)
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/validate", claims=ALICE).json == []
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200


def test_a_run_sends_the_secret_and_its_records_show_only_stars(system, secrets_api, echo):
    call(secrets_api, "PUT", "/api/v1/secrets/API_KEY", body={"value": API_KEY}, claims=ALICE)
    flow_id = create_flow(system, flow_calling(echo.url))
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200

    started = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body={"q": 1}, claims=ALICE)
    system.drain()

    [headers] = echo.received
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    execution = system.execution(flow_id, started.json["id"])
    assert execution["status"] == "success"
    assert json.loads(execution["outputPayload"])["body"] == {"youSent": "Bearer ***"}
    logs = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE)
    flow = call(system.flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE)
    for text in (json.dumps(execution), logs.body, flow.body):
        assert API_KEY not in text
    assert "***" in logs.body
