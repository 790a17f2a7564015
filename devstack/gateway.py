"""API Gateway (HTTP API, payload format 2.0) in front of the template's functions, as a local HTTP server.

Per request, in API Gateway's order: CORS preflight answered here; the 10 MB payload cap; route selection
(devstack.routing); the JWT authorizer for protected routes; the function invoked with a v2 event and a Lambda
context; its response turned back into HTTP, with the configured CORS headers.

Answers the gateway produces itself (401, 404, 413, 500 on a failed invocation) carry an ApiError body
{"code", "message"}; API Gateway's own are {"message": "..."}, which the deployed API cannot change.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.api_docs import ApiDocs
from devstack.authorizer import JwtAuthorizer, Unauthorized, claims_as_api_gateway_passes_them
from devstack.events import LambdaContext, http_api_event, run_handler
from devstack.routing import RouteTable
from devstack.template import FunctionSpec

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API quota; larger requests get 413
REQUEST_READ_TIMEOUT_SECONDS = 30
JWKS_PATH = "/.well-known/jwks.json"
# Local only, for `bloxserver invoke`: a function's environment as the template gives it, pointed at embedded AWS.
FUNCTION_ENVIRONMENT_PATH = re.compile(r"/_local/functions/(\w+)/environment")


@dataclass
class Request:
    method: str
    target: str  # path and query as sent: "/api/v1/flows?limit=5"
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    content_length: int = 0  # as announced; a body over the cap is not read at all

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return ",".join(values) if values else None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def api_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps({"code": code, "message": message}).encode()
    return Response(status, [("content-type", "application/json"), *(headers or [])], body)


class LocalFunction:
    """A function of the template, imported on its first invocation (its cold start), as Lambda does."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._handler: Callable[[dict, Any], Any] | None = None
        self._import_lock = threading.Lock()

    def _load(self) -> Callable[[dict, Any], Any]:
        with self._import_lock:
            if self._handler is None:
                self._handler = getattr(self.spec.import_module(), self.spec.attribute)
            return self._handler

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._load()
        context = LambdaContext(self.spec.logical_id, self.spec.timeout_seconds, self.spec.memory_mb)
        return run_handler(handler, event, context)


class Cors:
    """The HttpApi CorsConfiguration, as API Gateway applies it: an origin is allowed when AllowOrigins lists it,
    holds "*", or holds a prefix ending in "*" that it starts with ("http://*", "https://*")."""

    def __init__(self, configuration: dict[str, Any]) -> None:
        self.allow_origins = [origin.rstrip("/") for origin in configuration.get("AllowOrigins", [])]
        self.allow_methods = ",".join(configuration.get("AllowMethods", []))
        self.allow_headers = ",".join(configuration.get("AllowHeaders", []))
        self.expose_headers = ",".join(configuration.get("ExposeHeaders", []))
        self.max_age = configuration.get("MaxAge")
        self.allow_credentials = bool(configuration.get("AllowCredentials"))

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        return any(
            origin == allowed or (allowed.endswith("*") and origin.startswith(allowed[:-1]))
            for allowed in self.allow_origins
        )

    def _allow_origin(self, origin: str) -> list[tuple[str, str]]:
        headers = [("access-control-allow-origin", "*" if "*" in self.allow_origins else origin)]
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def preflight_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None or not self.allows(origin):
            return []
        headers = self._allow_origin(origin)
        if self.allow_methods:
            headers.append(("access-control-allow-methods", self.allow_methods))
        if self.allow_headers:
            headers.append(("access-control-allow-headers", self.allow_headers))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        return headers

    def response_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None or not self.allows(origin):
            return []
        headers = self._allow_origin(origin)
        if self.expose_headers:
            headers.append(("access-control-expose-headers", self.expose_headers))
        return headers


class Gateway:
    def __init__(
        self,
        routes: RouteTable,
        functions: dict[str, LocalFunction],
        authorizers: dict[str, JwtAuthorizer],
        cors: Cors,
        jwks: dict[str, Any],
        function_environment: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.routes = routes
        self.functions = functions
        self.authorizers = authorizers
        self.cors = cors
        self.jwks = jwks
        self.function_environment = function_environment
        self.docs = ApiDocs()

    def handle(self, request: Request) -> Response:
        origin = request.header("origin")
        if request.method == "OPTIONS" and origin and request.header("access-control-request-method"):
            # The preflight never reaches a function or the authorizer.
            return Response(204, self.cors.preflight_headers(origin))
        response = self._route(request)
        # With a CorsConfiguration, API Gateway replaces whatever CORS headers the function set.
        headers = [(name, value) for name, value in response.headers if not name.lower().startswith("access-control-")]
        response.headers = headers + self.cors.response_headers(origin)
        return response

    def _route(self, request: Request) -> Response:
        split = urlsplit(request.target)
        path = split.path or "/"
        if request.method == "GET":
            local = self._local_page(path)
            if local is not None:
                return local
        if max(request.content_length, len(request.body)) > MAX_PAYLOAD_BYTES:
            return api_error(413, "payload_too_large", f"Request body exceeds {MAX_PAYLOAD_BYTES} bytes")
        match = self.routes.match(request.method, path)
        if match is None:
            return api_error(404, "not_found", "Not Found")
        claims = None
        if match.route.authorizer is not None:
            authorizer = self.authorizers[match.route.authorizer]
            identity = request.header(authorizer.identity_header)
            try:
                claims = authorizer.claims(identity)
            except Unauthorized as refusal:
                challenge = "Bearer" if identity is None else 'Bearer error="invalid_token"'
                return api_error(401, "unauthorized", str(refusal), [("www-authenticate", challenge)])
        event = http_api_event(
            request.method,
            path,
            route_key=match.route.route_key,
            path_parameters=match.path_parameters or None,
            raw_query=split.query,
            headers=_event_headers(request),
            body=request.body or None,
            claims=claims_as_api_gateway_passes_them(claims) if claims is not None else None,
            cookies=_cookies(request),
            source_ip=request.source_ip,
        )
        function = self.functions[match.route.function]
        try:
            return _http_response(function.invoke(event))
        except Exception:
            # API Gateway answers 500 when the function fails or returns a malformed response.
            print(f"{function.spec.logical_id} failed:\n{traceback.format_exc()}", file=sys.stderr)
            return api_error(500, "internal_error", "Internal Server Error")


    def _local_page(self, path: str) -> Response | None:
        """What only the local stack serves: the JWKS of its dev issuer, the API docs, functions' environments."""
        if path == JWKS_PATH:
            return Response(200, [("content-type", "application/json")], json.dumps(self.jwks).encode())
        page = self.docs.page(path)
        if page is not None:
            return Response(200, [("content-type", page.content_type)], page.body)
        environment = FUNCTION_ENVIRONMENT_PATH.fullmatch(path)
        if environment and self.function_environment and environment[1] in self.functions:
            body = json.dumps(self.function_environment(environment[1])).encode()
            return Response(200, [("content-type", "application/json")], body)
        return None


def _event_headers(request: Request) -> dict[str, str]:
    """Lower-cased names, repeated headers joined with commas, cookies moved out, X-Forwarded-* added."""
    headers: dict[str, str] = {}
    for name, value in request.headers:
        name = name.lower()
        if name == "cookie":
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    return headers


def _cookies(request: Request) -> list[str] | None:
    cookie_header = "; ".join(value for name, value in request.headers if name.lower() == "cookie")
    return [cookie.strip() for cookie in cookie_header.split(";") if cookie.strip()] or None


def _http_response(result: Any) -> Response:
    """Payload format 2.0: a dict with statusCode is a response; anything else is a 200 JSON body.
    (Format 2.0 has no multiValueHeaders; API Gateway ignores them, and so does this.)"""
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return Response(200, [("content-type", "application/json")], body.encode())
    headers = [
        (str(name).lower(), str(value))
        for name, value in (result.get("headers") or {}).items()
        if str(name).lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    headers += [("set-cookie", cookie) for cookie in result.get("cookies") or []]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return Response(int(result["statusCode"]), headers, raw)


class GatewayServer(ThreadingHTTPServer):
    """One thread per connection, so requests run concurrently, as separate Lambda instances would."""

    daemon_threads = True
    request_queue_size = 128  # the default listen backlog (5) resets bursts of parallel clients

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _RequestHandler)
        self.gateway: Gateway | None = None  # set once the stack is wired, before serve_forever


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GatewayServer
    timeout = REQUEST_READ_TIMEOUT_SECONDS  # on every read: a client that stops sending does not hold a thread

    def _serve(self) -> None:
        assert self.server.gateway is not None
        if self.headers.get("transfer-encoding"):
            self.close_connection = True
            self._send(api_error(400, "bad_request", "Chunked request bodies are not supported locally"))
            return
        announced = set(self.headers.get_all("content-length") or ["0"])
        if len(announced) > 1 or not all(value.isascii() and value.isdigit() for value in announced):
            self.close_connection = True  # where the body ends is unknown
            self._send(api_error(400, "bad_request", "Content-Length must be one non-negative whole number"))
            return
        length = int(announced.pop())
        readable = length <= MAX_PAYLOAD_BYTES
        if not readable:
            # The body stays unread, so this connection cannot carry another request.
            self.close_connection = True
        body = b""
        if readable and length:
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                body = b""
            if len(body) < length:
                self.close_connection = True
                self._send(api_error(400, "bad_request", "The body ended before its Content-Length"))
                return
        request = Request(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            content_length=length,
        )
        self._send(self.server.gateway.handle(request))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, an over-long URL or header, a method it has no
        handler for) as ApiError JSON instead of its HTML page."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line even when the request line was unreadable
        if code == 501:  # an unknown method: like any method no route has, no route (API Gateway answers 404)
            self._send(api_error(404, "not_found", f"No route for {self.command} {urlsplit(self.path).path}"))
            return
        self._send(api_error(code, "bad_request", message or self.responses.get(code, ("Bad request",))[0]))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)
