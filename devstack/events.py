"""API Gateway HTTP API (payload format 2.0) events, as API Gateway builds them for a Lambda integration."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode


def http_api_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_query: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | str | dict | list | None = None,
    claims: dict[str, Any] | None = None,
    cookies: list[str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """Build the event API Gateway sends for one request. `claims` are what the JWT authorizer verified.

    Query: `query` as a dict, or `raw_query` exactly as received (its repeated names are joined with commas in
    queryStringParameters, as API Gateway does). `cookies` are the request's cookies, which API Gateway moves
    out of the headers.
    """
    if raw_query is not None:
        query = _query_parameters(raw_query)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if raw is not None and isinstance(body, str) and "content-type" not in all_headers:
        all_headers["content-type"] = "application/json"
    is_text = raw is None or _is_utf8(raw)
    now = time.time()
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "127.0.0.1",
        "domainPrefix": "local",
        "http": {
            "method": method.upper(),
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": all_headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route_key or f"{method.upper()} {path}",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": request_context["routeKey"],
        "rawPath": path,
        "rawQueryString": raw_query if raw_query is not None else urlencode(query or {}),
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if cookies:
        event["cookies"] = list(cookies)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if raw is not None:
        event["body"] = raw.decode() if is_text else base64.b64encode(raw).decode()
    return event


def _query_parameters(raw_query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: float = 10.0, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def run_handler(handler: Any, event: dict[str, Any], context: LambdaContext) -> Any:
    """Invoke a Lambda handler from any thread.

    Lambda runs handlers on a main thread, where Mangum's asyncio.get_event_loop() finds a loop; a server or
    test thread has none, so each invocation gets its own (which also keeps concurrent invocations apart).
    """
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return handler(event, context)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
