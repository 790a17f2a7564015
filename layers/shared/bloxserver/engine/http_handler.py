"""The `http` handler: one outbound request built from config templates and the message, through the SSRF guard.

Templates take `{{ expression }}` placeholders and `secret('NAME')` references. In the URL, every substituted value
is percent-encoded for the place it lands (a path segment, the query, userinfo), and none may land in the scheme,
host or port: a message can never change where the request goes, nor the URL's path and query structure.

httpx (and the guard) are imported on first use: flows without http listeners never pay for them at cold start.
"""

from __future__ import annotations

import json
import re
import string
import time
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from bloxserver import jsonvalues
from bloxserver.engine.base import (
    HandlerResult,
    InvalidConfig,
    ListenerFailed,
    check_entry_count,
    compile_config_template,
    config_keys,
    evaluate,
    is_positive_number,
    optional_expression,
)
from bloxserver.engine.expressions import MAX_MESSAGE_BYTES, ExpressionError, Template

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
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
# The content codings _decode_body can undo; httpx would also ask for br or zstd when their packages are installed.
DEADLINE_GRACE_SECONDS = 0.25
ACCEPT_ENCODING = "gzip, deflate"
# RFC 9110 token characters: anything else in a header name is refused by the HTTP library with the name quoted.
HEADER_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
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


# Stands for substituted part `n` while the URL's literal structure is parsed (private-use characters: no URL
# syntax, and never in a URL a person writes).
_MARK = "\ue000{}\ue001"
_FIXED_START = re.compile(r"https?://", re.IGNORECASE)


class UrlTemplate:
    """The URL template, with where each substituted value lands: userinfo, path, query or fragment."""

    def __init__(self, source: Any) -> None:
        self.template = compile_config_template("url", source, secrets=True)
        self.places: dict[int, str] = {}
        parts = self.template.parts
        skeleton = "".join(part if isinstance(part, str) else _MARK.format(index) for index, part in enumerate(parts))
        if not self.template.is_literal:
            self._place_values(skeleton)
        try:
            _check_url(re.sub("\ue000\\d+\ue001", "x", skeleton))  # the literal parts: scheme, host, port
        except ValueError as exc:
            raise InvalidConfig(f"config.url: {exc}") from exc

    def _place_values(self, skeleton: str) -> None:
        try:
            split = urlsplit(skeleton)
        except ValueError as exc:
            raise InvalidConfig("config.url: invalid URL") from exc
        userinfo, _, host_and_port = split.netloc.rpartition("@")
        if not _FIXED_START.match(skeleton) or "\ue000" in host_and_port:
            raise InvalidConfig(
                "config.url: a placeholder or secret cannot be in the URL's scheme, host or port: start the URL with "
                "a fixed http:// or https:// address (values from the message go in the path or query)"
            )
        components = (("userinfo", userinfo), ("path", split.path), ("query", split.query), ("fragment", split.fragment))
        for index, part in enumerate(self.template.parts):
            for place, text in components:
                if not isinstance(part, str) and _MARK.format(index) in text:
                    self.places[index] = place

    @property
    def secret_names(self) -> frozenset[str]:
        return self.template.secret_names

    def render(self, message: Any, secrets: dict[str, str]) -> str:
        return self.template.render(message, secrets, self._encoded)

    def _encoded(self, index: int, text: str) -> str:
        # Nothing is kept: "/", "?", "#", "&", "=", "@" and "%" all become %XX. A path value of only dots is
        # encoded too, or "." and ".." would be dot segments that climb the path.
        if self.places[index] == "path" and text and not text.strip("."):
            return "%2E" * len(text)
        return quote(text, safe="")


class HttpRequest:
    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config = config_keys(spec, CONFIG_KEYS, {"url"})
        self.method = str(config.get("method", "GET")).upper()
        if self.method not in METHODS:
            raise InvalidConfig(f"config.method must be one of {', '.join(METHODS)}")
        self.url = UrlTemplate(config["url"])
        headers = config.get("headers", {})
        if not isinstance(headers, dict):
            raise InvalidConfig("config.headers must be a mapping of header name: template")
        check_entry_count("headers", headers)
        self.headers = tuple((str(name), compile_config_template(f"headers.{name}", value, secrets=True)) for name, value in headers.items())
        for name, template in self.headers:
            if not name or not HEADER_NAME_CHARACTERS.issuperset(name):
                allowed = "letters, digits and !#$%&'*+-.^_`|~"
                raise InvalidConfig(f"header name {name!r} may hold only {allowed}")
            # Header text is sent as ASCII; a placeholder's value is checked when it is rendered.
            if not all(part.isascii() for part in template.parts if isinstance(part, str)):
                raise InvalidConfig(f"header {name!r} must be ASCII text")
        if "body" in config and "body_expression" in config:
            raise InvalidConfig("use config.body (a text template) or config.body_expression (JSON), not both")
        if self.method in BODYLESS_METHODS and ("body" in config or "body_expression" in config):
            raise InvalidConfig(f"a {self.method} request has no body: remove config.body or config.body_expression")
        self.body = compile_config_template("body", config["body"], secrets=True) if "body" in config else None
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
        self.secret_names = self.url.secret_names.union(
            *(template.secret_names for _, template in self.headers),
            self.body.secret_names if self.body is not None else (),
        )
        missing = sorted(self.secret_names - context.secret_names) if context.secret_names is not None else []
        if missing:
            names = ", ".join(map(repr, missing))
            raise InvalidConfig(f"no secret named {names} exists: add it with PUT /api/v1/secrets/{missing[0]}")

    def _render(self, template: Template | UrlTemplate, message: Any, invocation: Invocation) -> str:
        try:
            return template.render(message, invocation.secrets)
        except ExpressionError as exc:
            raise ListenerFailed(str(exc)) from exc

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        url = self._render(self.url, message, invocation)
        try:
            shown_url = _check_url(url)
        except ValueError as exc:
            raise ListenerFailed(str(exc)) from exc
        headers: dict[str, str] = {}
        for name, template in self.headers:
            value = self._render(template, message, invocation)
            # Checked here, not by the HTTP library, whose refusal would quote the value (often a secret). Printable
            # ASCII leaves spaces as the only whitespace, which may not start or end a value.
            if not value.isascii() or not value.isprintable() or value.strip(" ") != value:
                raise ListenerFailed(f"header {name!r} must be one line of ASCII text")
            headers[name] = value
        content: bytes | None = None
        if self.body is not None:
            content = self._render(self.body, message, invocation).encode()
        elif self.body_expression is not None or self.method in BODY_METHODS:
            body = message if self.body_expression is None else evaluate(self.body_expression, message)
            problem = jsonvalues.size_problem(body, MAX_MESSAGE_BYTES)  # shared parts: small in memory, not as JSON
            if problem is not None:
                raise ListenerFailed(f"the request body has {problem}")
            content = json.dumps(body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        # When the listener's, flow's or executor's deadline comes first, it reports the run as timed out: the
        # request itself gives up a moment later (its worker thread then ends too).
        timeout = max(0.001, min(self.timeout_seconds, invocation.remaining() + DEADLINE_GRACE_SECONDS))
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
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    if not url.isprintable():
        raise ValueError(f"invalid URL {shown!r}: it holds a character that is not printable (encode it as %XX)")
    if not parts.hostname:
        raise ValueError(f"invalid URL {shown!r}: it names no host")
    try:
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError:
        raise ValueError(f"invalid URL {shown!r}: the port must be a number from 0 to 65535") from None
    return shown


def _decoded(raw: bytes, headers: dict[str, str]) -> Any:
    text = raw.decode("utf-8", "replace")
    if "json" in headers.get("content-type", ""):
        try:
            return jsonvalues.parse(text)
        except ValueError:
            return text
    return text


class _TimedOut(Exception):
    """The request's time (config.timeout_seconds, or less when the listener has less left) ran out."""


class _BadResponse(Exception):
    """What is wrong with the response; the message follows "response from <url>"."""


# zlib window bits for each content coding _inflate undoes, in the order tried: deflate comes in its zlib wrapper
# (RFC 9110) or, from some servers, raw.
_WBITS = {
    "gzip": (16 + zlib.MAX_WBITS,),
    "x-gzip": (16 + zlib.MAX_WBITS,),
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}


def _read_body(response: Any, max_bytes: int) -> bytes:
    """The body as sent (still content-encoded), refused beyond max_bytes (the transport ends every read by the
    request's deadline).

    httpx's own decoding expands a whole chunk at once: a kilobyte of nested gzip can become gigabytes.
    """
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise _BadResponse(f"is larger than {max_bytes} bytes")
    return bytes(body)


def _decode_body(body: bytes, codings: list[str], deadline: float, max_bytes: int) -> bytes:
    """Undoes the content codings (the last applied first); no layer may expand beyond max_bytes."""
    if not body:  # a HEAD, 204 or 304 response says how its body would be encoded
        return body
    for coding in map(str.lower, reversed(codings)):
        if coding in ("", "identity"):
            continue
        if coding not in _WBITS:
            raise _BadResponse(f"has content encoding {coding!r}, which cannot be decoded")
        if time.monotonic() > deadline:  # a long list of codings must not outlast the request's time
            raise _TimedOut
        body = _inflate(body, coding, max_bytes)
    return body


def _inflate(data: bytes, coding: str, max_bytes: int) -> bytes:
    for wbits in _WBITS[coding]:
        decompressor = zlib.decompressobj(wbits)
        try:
            # max_length stops zlib just past the cap: a bomb never expands further.
            decoded = decompressor.decompress(data, max_bytes + 1)
        except zlib.error:
            continue  # deflate: not zlib-wrapped, try raw
        if len(decoded) > max_bytes:
            raise _BadResponse(f"is larger than {max_bytes} bytes")
        if decompressor.eof:
            return decoded
        break  # the data ended before the compressed stream did
    raise _BadResponse(f"is not valid {coding} data")


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
    """The response's status, headers and decoded body, all within `timeout` seconds."""
    import httpx

    from bloxserver.engine.httpguard import AddressGuard, AddressRefused, GuardedTransport

    deadline = time.monotonic() + timeout
    guard = AddressGuard(settings.allow_private_network, settings.allowed_private_cidrs)
    try:
        # Client headers are defaults: an Accept-Encoding the flow sets replaces this one. No per-wait timeout of
        # httpx's own (5 s by default): the transport ends each wait by the request's deadline.
        with httpx.Client(
            transport=GuardedTransport(guard, deadline),
            headers={"Accept-Encoding": ACCEPT_ENCODING},
            timeout=None,
            trust_env=False,
        ) as client:
            request = client.build_request(method, url, headers=headers, content=content)
            # Redirects are followed here: httpx would read (and decode) each redirect's whole body, with no cap.
            # Every network wait of every hop ends by the deadline (GuardedTransport).
            for _ in range(MAX_REDIRECTS + 1):
                response = client.send(request, stream=True)
                try:
                    if response.next_request is None:
                        raw = _read_body(response, max_response_bytes)
                        codings = response.headers.get_list("content-encoding", split_commas=True)
                        body = _decode_body(raw, codings, deadline, max_response_bytes)
                        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, body
                finally:
                    response.close()
                request = response.next_request
            raise ListenerFailed(f"{method} {shown_url} failed: more than {MAX_REDIRECTS} redirects")
    except (_TimedOut, httpx.TimeoutException):
        raise ListenerFailed(f"{method} {shown_url} timed out after {round(timeout, 3):g} s") from None
    except _BadResponse as exc:
        raise ListenerFailed(f"response from {shown_url} {exc}") from None
    except AddressRefused as exc:
        raise ListenerFailed(str(exc)) from exc
    except httpx.InvalidURL as exc:
        raise ListenerFailed(f"invalid URL {shown_url!r}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ListenerFailed(f"{method} {shown_url} failed: {type(exc).__name__}: {exc}") from exc
