"""Calling functions the way API Gateway does: an HTTP API v2 event into the real Lambda handler."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from devstack.events import LambdaContext, http_api_event, run_handler


# A small valid flow: upper-cases `name` and outputs {"shout": ...}.
SHOUT_YAML = """
organism: {name: shout}
listeners:
  - name: upper
    description: Upper-cases the name
    handler: transform
    config: {expression: "{shout: upper(name)}"}
    peers: [done]
  - name: done
    description: The result
    handler: output
"""

# Every run of this flow ends `error` at once: the SSRF guard refuses the address.
REFUSED_CALL_YAML = """\
organism: {name: failing}
listeners:
  - name: call
    description: A request the guard refuses, so every run ends error
    handler: http
    config: {url: "http://169.254.169.254/latest/meta-data/"}
"""


def claims_for(sub: str = "user_alice", *, email: str | None = None, tier: str | None = None) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": sub, "email": email or f"{sub}@example.com", "name": sub.title()}
    if tier:
        claims["tier"] = tier
    return claims


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def call(
    handler: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    claims: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Reply:
    event = http_api_event(method, path, body=body, claims=claims, headers=headers, query=query)
    response = run_handler(handler, event, LambdaContext("test"))
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return Reply(response["statusCode"], response.get("headers") or {}, raw)


ALICE = claims_for("user_alice")
BOB = claims_for("user_bob")


def triggers_path(flow_id: str) -> str:
    return f"/api/v1/flows/{flow_id}/triggers"
