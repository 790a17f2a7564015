"""The http handler and its SSRF guard, against a local server on 127.0.0.1 (allowed by the development setting)."""

from __future__ import annotations

import ipaddress
import json
import textwrap
import time
import tracemalloc
import zlib

import pytest
from engine_fakes import LocalServer, Reply, scripted, trickling_server

from bloxserver.engine import EngineSettings, run_flow, validate
from bloxserver.engine.httpguard import AddressGuard, AddressRefused

LOOPBACK_ONLY = EngineSettings(allowed_private_cidrs=("127.0.0.1/32",))
PRODUCTION = EngineSettings()


def http_flow(config: str, extra: str = "") -> str:
    return "organism: {name: http-test}\nlisteners:\n" + textwrap.indent(
        textwrap.dedent(f"""
            - name: call
              description: x
              handler: http
              config: {config}
              {extra}
        """),
        "  ",
    )


def run(yaml_text: str, payload: dict, settings: EngineSettings = LOOPBACK_ONLY):
    return run_flow(
        yaml_text, json.dumps(payload), execution_id="exec-http", deadline=time.monotonic() + 10, settings=settings
    )


def load_errors(yaml_text: str) -> list[tuple[str, str | None, str]]:
    return [(issue.code, issue.listener, issue.message) for issue in validate(yaml_text) if issue.severity == "error"]


def everything_logged(result) -> str:
    return json.dumps([result.error] + [[log.message, log.metadata] for log in result.logs])


def gzip(data: bytes) -> bytes:
    return zlib.compress(data, wbits=31)


def gzip_of_gzip_of_zeros(size: int) -> bytes:
    """A decompression bomb: gzip(gzip(`size` zero bytes)), a few hundred bytes, compressed a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    mebibyte = bytes(1 << 20)
    inner = b"".join(compressor.compress(mebibyte) for _ in range(size >> 20)) + compressor.flush()
    return gzip(inner)


def test_a_get_renders_url_and_headers_from_the_message_and_returns_the_parsed_response():
    with LocalServer(scripted(Reply(body={"id": 7, "ok": True}))) as server:
        yaml_text = http_flow(
            f'{{url: "{server.url}/orders/{{{{ order.id }}}}?verbose=1", headers: {{X-Customer: "{{{{ order.customer }}}}"}}}}'
        )
        result = run(yaml_text, {"order": {"id": 7, "customer": "ada@example.com"}})
    assert result.status == "success", result.error
    [request] = server.requests
    assert (request.method, request.path) == ("GET", "/orders/7?verbose=1")
    assert request.headers["X-Customer"] == "ada@example.com"
    output = json.loads(result.output)
    assert (output["status"], output["body"]) == (200, {"id": 7, "ok": True})
    assert output["headers"]["content-type"] == "application/json"


def test_a_post_sends_the_message_as_json_by_default():
    with LocalServer(scripted(Reply(status=201, body="created"))) as server:
        result = run(http_flow(f'{{method: POST, url: "{server.url}/items"}}'), {"name": "widget"})
    output = json.loads(result.output)
    assert (output["status"], output["body"]) == (201, "created")
    [request] = server.requests
    assert request.json() == {"name": "widget"}
    assert request.headers["Content-Type"] == "application/json"


def test_body_expression_and_text_body_templates_shape_what_is_sent():
    with LocalServer(scripted(Reply(body="a"), Reply(body="b"))) as server:
        run(http_flow(f'{{method: PUT, url: "{server.url}/a", body_expression: "{{sku: name}}"}}'), {"name": "w"})
        run(http_flow(f'{{method: POST, url: "{server.url}/b", body: "name={{{{ name }}}}"}}'), {"name": "w"})
    assert server.requests[0].json() == {"sku": "w"}
    assert server.requests[1].body == b"name=w"


def test_a_body_expression_doubling_its_message_is_refused_before_it_is_serialised():
    # each [@, @] shares its parts: 2^28 copies in JSON, a few lists in memory
    doubling = " | ".join(["[@, @]"] * 28)
    with LocalServer(scripted()) as server:
        result = run(http_flow(f'{{method: POST, url: "{server.url}/", body_expression: "{doubling}"}}'), {"a": 1})
    assert result.error == "listener 'call' failed: the request body has more than 1048576 bytes"
    assert server.requests == []


def test_a_delete_sends_whichever_body_is_configured_and_none_by_default():
    with LocalServer(lambda request: Reply(body="gone")) as server:
        for config in ('body_expression: "{sku: name}"', 'body: "name={{ name }}"', ""):
            result = run(http_flow(f'{{method: DELETE, url: "{server.url}/items/1", {config}}}'), {"name": "w"})
            assert result.status == "success", result.error
    assert [(request.method, request.body) for request in server.requests] == [
        ("DELETE", b'{"sku": "w"}'),
        ("DELETE", b"name=w"),
        ("DELETE", b""),
    ]
    assert server.requests[0].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("timeout_seconds: .nan", "config.timeout_seconds must be a finite positive number"),
        ("timeout_seconds: .inf", "config.timeout_seconds must be a finite positive number"),
        ("max_response_bytes: true", "config.max_response_bytes must be an integer from 1 to"),
        ("max_response_bytes: 1.5", "config.max_response_bytes must be an integer from 1 to"),
    ],
)
def test_http_limits_must_be_finite_positive_numbers(setting, message):
    [(code, listener, text)] = load_errors(http_flow(f'{{url: "https://api.example.com/items", {setting}}}'))
    assert (code, listener) == ("invalid_config", "call") and message in text


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("body", ['body: "name={{ name }}"', 'body_expression: "{sku: name}"'])
def test_a_get_or_head_with_a_body_is_refused_at_load(method, body):
    errors = load_errors(http_flow(f'{{method: {method}, url: "https://api.example.com/items", {body}}}'))
    assert errors == [
        (
            "invalid_config",
            "call",
            f"listener 'call': a {method} request has no body: remove config.body or config.body_expression",
        )
    ]


def test_an_error_status_fails_the_listener_unless_allowed():
    with LocalServer(lambda request: Reply(status=503, body="down")) as server:
        failed = run(http_flow(f'{{url: "{server.url}/x?token=secret"}}'), {})
        allowed = run(http_flow(f'{{url: "{server.url}/x", allow_error_status: true}}'), {})
    assert failed.status == "error"
    assert failed.error == f"listener 'call' failed: GET {server.url}/x answered HTTP 503"
    assert json.loads(allowed.output)["status"] == 503


def test_the_http_call_is_logged_without_its_query_string_or_userinfo():
    with LocalServer(scripted(Reply(body="ok"))) as server:
        with_secrets = server.url.replace("//", "//user:secret@") + "/x?token=secret#secret"
        result = run(http_flow(f'{{url: "{with_secrets}"}}'), {})
    [logged] = [log for log in result.logs if log.message.startswith("http ")]
    assert logged.metadata | {"executionId": "exec-http", "listener": "call"} == logged.metadata
    assert logged.metadata["url"] == f"{server.url}/x"
    assert "secret" not in everything_logged(result)


@pytest.mark.parametrize(
    "url",
    [
        "{{ url }}",
        "{{ scheme }}://api.example.com/items",
        "https://{{ host }}/items",
        "https://{{ tenant }}.example.com/items",
        "https://api.example.com{{ path }}",
        "https://api.example.com:{{ port }}/items",
        "https://user@{{ host }}/items",
        "https://secret('HOST')/items",
        "{{ secret('BASE_URL') }}/items",
    ],
)
def test_a_placeholder_or_secret_in_the_scheme_host_or_port_is_refused_at_load(url):
    [(code, listener, message)] = load_errors(http_flow(f'{{url: "{url}"}}'))
    assert (code, listener) == ("invalid_config", "call")
    assert "cannot be in the URL's scheme, host or port" in message


@pytest.mark.parametrize(
    ("template", "message", "sent"),
    [
        ("/users/{{ name }}", {"name": "a/b c"}, "/users/a%2Fb%20c"),
        ("/users/{{ name }}/orders", {"name": "../../admin"}, "/users/..%2F..%2Fadmin/orders"),
        ("/users/{{ name }}/orders", {"name": ".."}, "/users/%2E%2E/orders"),
        ("/search?q={{ q }}&page=1", {"q": "x&admin=1#frag"}, "/search?q=x%26admin%3D1%23frag&page=1"),
        ("/a?next={{ url }}", {"url": "https://evil.example/?a=b"}, "/a?next=https%3A%2F%2Fevil.example%2F%3Fa%3Db"),
        ("/items/{{ id }}?v={{ v }}", {"id": 7, "v": "100%"}, "/items/7?v=100%25"),
    ],
)
def test_a_placeholders_value_is_percent_encoded_where_it_lands(template, message, sent):
    with LocalServer(scripted(Reply(body="ok"))) as server:
        result = run(http_flow(f'{{url: "{server.url}{template}"}}'), message)
    assert result.status == "success", result.error
    [request] = server.requests
    assert request.path == sent


def test_a_response_over_the_size_cap_fails_the_listener():
    with LocalServer(scripted(Reply(body=b"x" * 5000))) as server:
        result = run(http_flow(f'{{url: "{server.url}/big", max_response_bytes: 1000}}'), {})
    assert result.status == "error"
    assert "larger than 1000 bytes" in result.error


def test_a_compressed_response_is_capped_while_it_is_decoded_not_after():
    bomb = gzip_of_gzip_of_zeros(128 << 20)
    with LocalServer(scripted(Reply(body=bomb, headers={"Content-Encoding": "gzip, gzip"}))) as server:
        tracemalloc.start()
        try:
            result = run(http_flow(f'{{url: "{server.url}/bomb"}}'), {})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(bomb) < 1000
    assert result.error == f"listener 'call' failed: response from {server.url}/bomb is larger than 1048576 bytes"
    assert peak < 16 << 20  # about the 1 MiB cap, not the 128 MiB inside


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip),
        ("x-gzip", gzip),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("identity", lambda data: data),
        ("GZIP, Deflate", lambda data: zlib.compress(gzip(data))),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw deflate", "identity", "gzip then deflate"],
)
def test_a_content_encoded_response_is_decoded(encoding, encode):
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    with LocalServer(scripted(Reply(body=encode(b'{"ok": true}'), headers=headers))) as server:
        result = run(http_flow(f'{{url: "{server.url}/"}}'), {})
    assert json.loads(result.output)["body"] == {"ok": True}


def test_a_response_without_a_body_needs_no_decoding():
    with LocalServer(scripted(Reply(status=204, headers={"Content-Encoding": "gzip"}))) as server:
        result = run(http_flow(f'{{url: "{server.url}/"}}'), {})
    assert json.loads(result.output)["body"] == ""


@pytest.mark.parametrize(
    ("encoding", "body", "problem"),
    [
        ("br", b"\x0b\x01\x80ok\x03", "has content encoding 'br', which cannot be decoded"),
        ("gzip", b"ok", "is not valid gzip data"),
        ("gzip", gzip(b"ok")[:-4], "is not valid gzip data"),
        ("deflate", b"ok", "is not valid deflate data"),
    ],
    ids=["unsupported", "not gzip", "truncated gzip", "not deflate"],
)
def test_a_body_that_cannot_be_decoded_fails_the_listener(encoding, body, problem):
    with LocalServer(scripted(Reply(body=body, headers={"Content-Encoding": encoding}))) as server:
        result = run(http_flow(f'{{url: "{server.url}/x"}}'), {})
    assert result.error == f"listener 'call' failed: response from {server.url}/x {problem}"


def test_responses_are_requested_in_the_encodings_the_handler_decodes_unless_the_flow_sets_its_own():
    with LocalServer(lambda request: Reply(body="ok")) as server:
        run(http_flow(f'{{url: "{server.url}/"}}'), {})
        run(http_flow(f'{{url: "{server.url}/", headers: {{accept-encoding: identity}}}}'), {})
    sent = [
        [value for name, value in request.headers.items() if name.lower() == "accept-encoding"]
        for request in server.requests
    ]
    assert sent == [["gzip, deflate"], ["identity"]]


@pytest.mark.parametrize(
    "text", ["[" * 5000 + "]" * 5000, '{"ratio": NaN}'], ids=["nested 5000 levels deep", "not standard JSON"]
)
def test_a_json_response_the_engine_cannot_accept_as_json_is_returned_as_text(text):
    with LocalServer(scripted(Reply(body=text, headers={"Content-Type": "application/json"}))) as server:
        result = run(http_flow(f'{{url: "{server.url}/"}}'), {})
    assert result.status == "success", result.error
    assert json.loads(result.output)["body"] == text


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_timeout_seconds_bounds_the_whole_response_not_each_read(headers_too):
    # a byte every 0.2 s never trips a per-read timeout of 1 s; the listener's own timeout (30 s) is far off
    with trickling_server(interval=0.2, headers_too=headers_too) as (url, hung_up):
        result = run(http_flow(f'{{url: "{url}/slow", timeout_seconds: 1}}'), {})
        assert hung_up.wait(2)  # the worker thread stopped reading too
    assert result.error == f"listener 'call' failed: GET {url}/slow timed out after 1 s"


def test_timeout_seconds_bounds_the_redirects_together():
    def respond(request):
        hop = int(request.path.strip("/"))
        return Reply(status=302, headers={"Location": f"/{hop + 1}"}, delay_seconds=0.4) if hop < 3 else Reply()

    with LocalServer(respond) as server:
        result = run(http_flow(f'{{url: "{server.url}/0", timeout_seconds: 1}}'), {})
    assert result.error == f"listener 'call' failed: GET {server.url}/0 timed out after 1 s"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "only http and https URLs can be requested, got scheme 'ftp'"),
        ("file:///etc/passwd", "only http and https URLs can be requested, got scheme 'file'"),
        ("api.example.com/orders", "only http and https URLs can be requested, got scheme ''"),
        ("http://[::1/orders", "invalid URL"),
        ("https://x.com:abc/", "invalid URL 'https://x.com:abc/': the port must be a number from 0 to 65535"),
        ("https://x.com:99999/", "invalid URL 'https://x.com:99999/': the port must be a number from 0 to 65535"),
        ("https://", "invalid URL 'https://': it names no host"),
        ("https://:80/", "invalid URL 'https://:80/': it names no host"),
        ("https://u:p@/", "invalid URL 'https:///': it names no host"),
        ("https://x.com/a\\u0001b", "invalid URL 'https://x.com/a\\x01b': it holds a character that is not printable (encode it as %XX)"),
    ],
)
def test_a_literal_url_that_cannot_be_requested_is_refused_at_load(url, problem):
    errors = load_errors(http_flow(f'{{url: "{url}"}}'))
    assert errors == [("invalid_config", "call", f"listener 'call': config.url: {problem}")]


@pytest.mark.parametrize(
    ("headers", "name"), [('{X-Name: "Zoë"}', "X-Name"), ('{X-Greeting: "Grüße {{ name }}"}', "X-Greeting")]
)
def test_a_header_with_literal_non_ascii_text_is_refused_at_load(headers, name):
    errors = load_errors(http_flow(f'{{url: "https://api.example.com/", headers: {headers}}}'))
    assert errors == [("invalid_config", "call", f"listener 'call': header {name!r} must be ASCII text")]


@pytest.mark.parametrize("name", ["X-Näme", "X Name", "X-Token: SECRET", ""])
def test_a_header_name_that_is_not_an_http_token_is_refused_at_load(name):
    # The HTTP library's own refusal quotes the name, at run time.
    errors = load_errors(http_flow(f'{{url: "https://api.example.com/", headers: {{"{name}": "v"}}}}'))
    allowed = "letters, digits and !#$%&'*+-.^_`|~"
    assert errors == [("invalid_config", "call", f"listener 'call': header name {name!r} may hold only {allowed}")]


@pytest.mark.parametrize(
    "name",
    ["Zoë", "SECRET\r\nX-Injected: 1", "SECRET\n", "SECRET ", " SECRET"],
    ids=["non-ASCII", "CRLF", "LF", "trailing space", "leading space"],
)
def test_a_header_rendered_as_anything_but_one_line_of_ascii_fails_the_listener_naming_only_the_header(name):
    with LocalServer(scripted()) as server:
        yaml_text = http_flow(f'{{url: "{server.url}/", headers: {{X-Name: "{{{{ name }}}}", X-Id: "7"}}}}')
        result = run(yaml_text, {"name": name})
    assert result.error == "listener 'call' failed: header 'X-Name' must be one line of ASCII text"
    assert "SECRET" not in everything_logged(result)
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://100.100.100.200/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0:9/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[::7f00:1]:9/",
        "http://[::ffff:0:7f00:1]:9/",
        "http://[2002:7f00:1::]:9/",
        "http://[fec0::1]/",
    ],
)
def test_the_guard_refuses_non_public_addresses_in_production(url):
    result = run(http_flow(f'{{url: "{url}"}}'), {}, settings=PRODUCTION)
    assert result.status == "error"
    assert "refusing to connect" in result.error and "non-public address" in result.error


def test_the_guard_checks_every_redirect_hop():
    def respond(request):
        if request.path == "/start":
            return Reply(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        return Reply(body="should not be reached")

    with LocalServer(respond) as server:
        result = run(http_flow(f'{{url: "{server.url}/start"}}'), {})
    assert result.status == "error"
    assert "169.254.169.254" in result.error
    assert [request.path for request in server.requests] == ["/start"]


def test_a_redirect_is_followed_without_reading_its_body():
    def respond(request):
        if request.path == "/old":
            return Reply(status=302, body=b"not gzip", headers={"Location": "/new", "Content-Encoding": "gzip"})
        return Reply(body="moved")

    with LocalServer(respond) as server:
        result = run(http_flow(f'{{url: "{server.url}/old"}}'), {})
    assert json.loads(result.output)["body"] == "moved"


def test_more_than_five_redirects_fail_the_listener():
    with LocalServer(lambda request: Reply(status=302, headers={"Location": "/again"})) as server:
        result = run(http_flow(f'{{url: "{server.url}/again"}}'), {})
    assert result.error == f"listener 'call' failed: GET {server.url}/again failed: more than 5 redirects"
    assert len(server.requests) == 6


def test_allowed_redirects_are_followed():
    def respond(request):
        if request.path == "/old":
            return Reply(status=301, headers={"Location": "/new"})
        return Reply(body={"moved": True})

    with LocalServer(respond) as server:
        result = run(http_flow(f'{{url: "{server.url}/old"}}'), {})
    assert json.loads(result.output)["body"] == {"moved": True}


def test_the_development_switch_allows_any_address():
    with LocalServer(scripted(Reply(body="ok"))) as server:
        result = run(http_flow(f'{{url: "{server.url}/"}}'), {}, settings=EngineSettings(allow_private_network=True))
    assert result.status == "success"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("fec0::1", False),
        ("64:ff9b:1::5db8:d822", False),
    ],
)
def test_the_guard_allows_public_addresses_only(address, allowed):
    assert AddressGuard(allow_private_network=False).is_allowed(ipaddress.ip_address(address)) is allowed


def test_ipv6_addresses_wrapping_an_ipv4_address_are_judged_by_that_address():
    # Each form of 169.254.169.254 (the metadata service), then of the public 93.184.216.34.
    forms = {
        "NAT64": ("64:ff9b::a9fe:a9fe", "64:ff9b::5db8:d822"),
        "IPv4-mapped": ("::ffff:a9fe:a9fe", "::ffff:5db8:d822"),
        "IPv4-compatible": ("::a9fe:a9fe", "::5db8:d822"),
        "IPv4-translated": ("::ffff:0:a9fe:a9fe", "::ffff:0:5db8:d822"),
        "6to4": ("2002:a9fe:a9fe::1", "2002:5db8:d822::1"),
        # Teredo: server 65.54.227.120, client (bits inverted) as above.
        "Teredo": ("2001:0:4136:e378:8000:63bf:5601:5601", "2001:0:4136:e378:8000:63bf:a247:27dd"),
    }
    guard = AddressGuard(allow_private_network=False)
    allowed = {
        kind: tuple(guard.is_allowed(ipaddress.ip_address(address)) for address in pair) for kind, pair in forms.items()
    }
    assert allowed == dict.fromkeys(forms, (False, True))
    assert not guard.is_allowed(ipaddress.ip_address("2001:0:a00:1:8000:63bf:a247:27dd"))  # Teredo server 10.0.0.1


def test_the_development_allow_list_applies_to_wrapped_ipv4_addresses_too():
    guard = AddressGuard(allow_private_network=False, allowed_private_cidrs=("127.0.0.1/32",))
    for address in ("::ffff:7f00:1", "::7f00:1", "::ffff:0:7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        assert guard.is_allowed(ipaddress.ip_address(address)), address
    assert not guard.is_allowed(ipaddress.ip_address("::7f00:2"))
    assert AddressGuard(allow_private_network=False, allowed_private_cidrs=("::1/128",)).is_allowed(
        ipaddress.ip_address("::1")
    )


def test_allowed_cidrs_open_only_the_listed_networks():
    guard = AddressGuard(allow_private_network=False, allowed_private_cidrs=("127.0.0.1/32",))
    assert guard.is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert not guard.is_allowed(ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(AddressRefused):
        guard.resolve("10.0.0.1", 80)
