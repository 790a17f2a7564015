"""The `http` handler: one outbound request built from config templates and the message, through the SSRF guard.

httpx (and the guard) are imported on first use: flows without http listeners never pay for them at cold start.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bloxserver.engine.expressions import ExpressionError, Template, compile_template
from bloxserver.engine.handlers import (
    HandlerResult,
    InvalidConfig,
    ListenerFailed,
    config_keys,
    evaluate,
    is_positive_number,
    optional_expression,
)

if TYPE_CHECKING:
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation
    from bloxserver.engine.settings import EngineSettings

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
BODYLESS_METHODS = ("GET", "HEAD")
# Without config.body or config.body_expression, these send the message as JSON.
BODY_METHODS = ("POST", "PUT", "PATCH")
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
CONFIG_KEYS = {
    "method",
    "url",
    "headers",
    "body",
    "body_expression",
    "timeout_seconds",
    "max_response_bytes",
    "allow_error_status",
}


def _template(key: str, source: Any) -> Template:
    try:
        return compile_template(source)
    except ExpressionError as exc:
        raise InvalidConfig(f"config {key}: {exc}") from exc


class HttpRequest:
    def __init__(self, spec: ListenerSpec) -> None:
        config = config_keys(spec, CONFIG_KEYS, {"url"})
        self.method = str(config.get("method", "GET")).upper()
        if self.method not in METHODS:
            raise InvalidConfig(f"config.method must be one of {', '.join(METHODS)}")
        self.url = _template("url", config["url"])
        if all(isinstance(part, str) for part in self.url.parts):  # no placeholders: it can be checked now
            try:
                _check_url(config["url"])
            except ValueError as exc:
                raise InvalidConfig(f"config.url: {exc}") from exc
        headers = config.get("headers", {})
        if not isinstance(headers, dict):
            raise InvalidConfig("config.headers must be a mapping of header name: template")
        self.headers = tuple((str(name), _template(f"headers.{name}", value)) for name, value in headers.items())
        for name, template in self.headers:
            # Header text is sent as ASCII; a placeholder's value is checked when it is rendered.
            if not (name.isascii() and all(part.isascii() for part in template.parts if isinstance(part, str))):
                raise InvalidConfig(f"header {name!r} must be ASCII text")
        if "body" in config and "body_expression" in config:
            raise InvalidConfig("use config.body (a text template) or config.body_expression (JSON), not both")
        if self.method in BODYLESS_METHODS and ("body" in config or "body_expression" in config):
            raise InvalidConfig(f"a {self.method} request has no body: remove config.body or config.body_expression")
        self.body = _template("body", config["body"]) if "body" in config else None
        self.body_expression = optional_expression(config, "body_expression")
        self.timeout_seconds = config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if not is_positive_number(self.timeout_seconds):
            raise InvalidConfig("config.timeout_seconds must be a finite positive number")
        self.max_response_bytes = config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
        if not is_positive_number(self.max_response_bytes, integer=True) or self.max_response_bytes > MAX_RESPONSE_BYTES:
            raise InvalidConfig(f"config.max_response_bytes must be an integer from 1 to {MAX_RESPONSE_BYTES}")
        self.allow_error_status = config.get("allow_error_status", False)
        if not isinstance(self.allow_error_status, bool):
            raise InvalidConfig("config.allow_error_status must be true or false")

    def _render(self, template: Template, message: Any) -> str:
        try:
            return template.render(message)
        except ExpressionError as exc:
            raise ListenerFailed(str(exc)) from exc

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        url = self._render(self.url, message)
        try:
            shown_url = _check_url(url)
        except ValueError as exc:
            raise ListenerFailed(str(exc)) from exc
        headers: dict[str, str] = {}
        for name, template in self.headers:
            value = self._render(template, message)
            # Checked here, not by the HTTP library, whose refusal would quote the value (often a secret).
            if not value.isascii() or not value.isprintable():
                raise ListenerFailed(f"header {name!r} must be one line of ASCII text")
            headers[name] = value
        content: bytes | None = None
        if self.body is not None:
            content = self._render(self.body, message).encode()
        elif self.body_expression is not None or self.method in BODY_METHODS:
            body = message if self.body_expression is None else evaluate(self.body_expression, message)
            content = json.dumps(body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        timeout = max(0.001, min(self.timeout_seconds, invocation.remaining()))
        status, response_headers, raw = invocation.call_blocking(
            _send, self.method, url, shown_url, headers, content, timeout, self.max_response_bytes, invocation.settings
        )
        invocation.log(
            "info",
            f"http {self.method} {shown_url} -> {status}",
            method=self.method,
            url=shown_url,
            status=status,
            responseBytes=len(raw),
        )
        if status >= 400 and not self.allow_error_status:
            raise ListenerFailed(f"{self.method} {shown_url} answered HTTP {status}")
        return HandlerResult({"status": status, "headers": response_headers, "body": _decoded(raw, response_headers)})


def _check_url(url: str) -> str:
    """The http(s) URL as logs and errors show it: without its query string, fragment and userinfo, which may carry
    secrets. Any other URL is a ValueError whose message does not quote it.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        # urlsplit's message may quote the URL's userinfo.
        raise ValueError("invalid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs can be requested, got scheme {parts.scheme!r}")
    # netloc keeps the port as written: parts.port would raise on an invalid one, which httpx reports better.
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _decoded(raw: bytes, headers: dict[str, str]) -> Any:
    text = raw.decode("utf-8", "replace")
    if "json" in headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _send(
    method: str,
    url: str,
    shown_url: str,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
    max_response_bytes: int,
    settings: EngineSettings,
) -> tuple[int, dict[str, str], bytes]:
    import httpx

    from bloxserver.engine.httpguard import AddressGuard, AddressRefused, GuardedTransport

    guard = AddressGuard(settings.allow_private_network, settings.allowed_private_cidrs)
    try:
        with httpx.Client(
            transport=GuardedTransport(guard),
            timeout=timeout,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,
        ) as client:
            with client.stream(method, url, headers=headers, content=content) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_response_bytes:
                        too_large = f"response from {shown_url} is larger than {max_response_bytes} bytes"
                        raise ListenerFailed(too_large)
                return response.status_code, {k.lower(): v for k, v in response.headers.items()}, bytes(body)
    except AddressRefused as exc:
        raise ListenerFailed(str(exc)) from exc
    except httpx.InvalidURL as exc:
        raise ListenerFailed(f"invalid URL {shown_url!r}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ListenerFailed(f"{method} {shown_url} failed: {type(exc).__name__}: {exc}") from exc
