"""The local stack over real HTTP: routing as template.yaml declares it, the JWT authorizer, CORS, limits."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.gateway import MAX_PAYLOAD_BYTES
from devstack.routing import RouteTable
from devstack.server import LocalStack, start_local_stack
from devstack.template import HttpRoute, http_routes, load_template

ORGANISM_YAML = """
organism: {name: echo}
listeners:
  - name: done
    description: The result
    handler: output
"""


@pytest.fixture(scope="module")
def stack():
    with start_local_stack(port=0) as running:
        yield running


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def send(stack: LocalStack, method: str, path: str, headers: dict[str, str] | None = None,
         body: Any = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    payload = json.dumps(body).encode() if body is not None else None
    all_headers = {"content-type": "application/json", **(headers or {})} if payload else dict(headers or {})
    connection.request(method, path, body=payload, headers=all_headers)
    response = connection.getresponse()
    reply = Reply(response.status, response.headers, response.read())
    connection.close()
    return reply


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Routes: the table is template.yaml's, matched as API Gateway matches.


def _template_http_events() -> set[tuple[str, str, str, bool]]:
    events = set()
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                public = props.get("Auth", {}).get("Authorizer") == "NONE"
                events.add((logical_id, props["Method"].upper(), props["Path"], public))
    return events


def test_the_route_table_has_every_http_api_event_of_every_function():
    routes = {(route.function, route.method, route.path, route.authorizer is None) for route in http_routes()}

    assert routes == _template_http_events()


@pytest.mark.parametrize("route", [r for r in http_routes() if r.path != "/$default"], ids=lambda r: r.route_key)
def test_each_template_route_receives_its_own_requests(route: HttpRoute):
    concrete = "/".join("3f1c" if part.startswith("{") else part for part in route.path.split("/"))

    match = RouteTable(http_routes()).match(route.method, concrete)

    assert match is not None and match.route == route
    assert set(match.path_parameters) == {part.strip("{+}") for part in route.path.split("/") if part.startswith("{")}


def _route(method: str, path: str) -> HttpRoute:
    return HttpRoute(function=f"{method} {path}", method=method, path=path, authorizer=None)


ROUTES = RouteTable(
    [
        _route("GET", "/pets/dog/1"),
        _route("GET", "/pets/dog/{id}"),
        _route("GET", "/pets/{proxy+}"),
        _route("ANY", "/{proxy+}"),
        _route("ANY", "/$default"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "route_key", "parameters"),
    [
        ("GET", "/pets/dog/1", "GET /pets/dog/1", {}),
        ("GET", "/pets/dog/2", "GET /pets/dog/{id}", {"id": "2"}),
        ("GET", "/pets/cat/1", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
        ("POST", "/pets/dog/1", "ANY /{proxy+}", {"proxy": "pets/dog/1"}),
        ("GET", "/pets/dog/a%20b", "GET /pets/dog/{id}", {"id": "a b"}),
    ],
)
def test_routes_are_chosen_as_api_gateway_chooses_them(method, path, route_key, parameters):
    match = ROUTES.match(method, path)

    assert match is not None
    assert (match.route.route_key, match.path_parameters) == (route_key, parameters)


def test_a_request_no_route_matches_goes_to_the_default_route():
    table = RouteTable([_route("GET", "/pets/{id}"), _route("ANY", "/$default")])

    assert table.match("GET", "/pets").route.route_key == "$default"
    assert table.match("DELETE", "/pets/1").route.route_key == "$default"
    assert RouteTable([_route("GET", "/pets/{id}")]).match("GET", "/pets") is None


# Over HTTP.


def test_health_answers_without_a_token(stack):
    reply = send(stack, "GET", "/health")

    assert reply.status == 200
    assert reply.json["status"] == "healthy"


@pytest.mark.parametrize(("method", "path"), [("POST", "/webhooks/abc%2Ftest"), ("POST", "/webhooks/abc%2F")])
def test_an_encoded_slash_never_leads_to_a_redirect_or_a_405(stack, method, path):
    reply = send(stack, method, path)
    assert (reply.status, reply.json["code"]) == (404, "not_found")


def test_an_unknown_route_is_a_404_api_error(stack):
    reply = send(stack, "GET", "/api/v1/no-such-thing")

    assert reply.status == 404
    assert reply.json["code"] == "not_found" and reply.json["message"] == "No route for GET /api/v1/no-such-thing"


def test_a_protected_route_without_a_token_is_a_401_api_error(stack):
    reply = send(stack, "GET", "/api/v1/me")

    assert reply.status == 401
    assert reply.json == {"code": "unauthorized", "message": "Missing authentication token"}


def _forged_token(stack: LocalStack, **claims: Any) -> str:
    """Claims like a dev token's, signed by a key the issuer never published but claiming its key id."""
    genuine = jwt.decode(stack.token(), options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({**genuine, **claims}, other_key, algorithm="RS256", headers={"kid": stack.issuer.key_id})


def test_a_token_with_a_bad_signature_is_refused(stack):
    reply = send(stack, "GET", "/api/v1/me", bearer(_forged_token(stack)))

    assert reply.status == 401
    assert reply.json["code"] == "unauthorized"


def test_expired_tokens_and_tokens_for_another_audience_or_issuer_are_refused(stack):
    expired = stack.issuer.token(sub="user_late", email="late@example.com", lifetime_seconds=-60)
    genuine = jwt.decode(stack.token(), options={"verify_signature": False})
    signing_key = serialization.load_pem_private_key(stack.issuer.key_path.read_bytes(), password=None)

    assert send(stack, "GET", "/api/v1/me", bearer(expired)).json["message"] == "Token has expired"
    for wrong in ({"aud": "someone-else"}, {"iss": "https://clerk.example.com"}):
        signed_by_the_issuer = jwt.encode(
            {**genuine, **wrong}, signing_key, algorithm="RS256", headers={"kid": stack.issuer.key_id}
        )
        assert send(stack, "GET", "/api/v1/me", bearer(signed_by_the_issuer)).status == 401


def test_a_token_minted_for_another_port_is_refused_saying_whose_it_is_and_how_to_mint_one(stack):
    genuine = jwt.decode(stack.token(), options={"verify_signature": False})
    signing_key = serialization.load_pem_private_key(stack.issuer.key_path.read_bytes(), password=None)
    other_port = jwt.encode(
        {**genuine, "iss": "http://127.0.0.1:1"}, signing_key, algorithm="RS256", headers={"kid": stack.issuer.key_id}
    )
    message = send(stack, "GET", "/api/v1/me", bearer(other_port)).json["message"]
    assert "'http://127.0.0.1:1'" in message and repr(stack.url) in message and "--port" in message


def test_a_token_from_the_bloxserver_cli_is_accepted(stack):
    cli = Path(sys.executable).with_name("bloxserver")
    token = subprocess.run(
        [str(cli), "token", "--sub", "user_cli", "--email", "cli@example.com", "--tier", "pro",
         "--port", str(stack.port)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()

    reply = send(stack, "GET", "/api/v1/me", bearer(token))

    assert reply.status == 200
    assert (reply.json["clerkId"], reply.json["email"]) == ("user_cli", "cli@example.com")


def test_a_raw_token_without_bearer_is_accepted_too(stack):
    reply = send(stack, "GET", "/api/v1/me", {"Authorization": stack.token()})

    assert reply.status == 200


def test_the_issuer_publishes_the_signing_key_as_jwks(stack):
    reply = send(stack, "GET", "/.well-known/jwks.json")
    key = jwt.PyJWKSet.from_dict(reply.json).keys[0]

    token = stack.token(sub="user_jwks", email="jwks@example.com")
    assert jwt.get_unverified_header(token)["kid"] == key.key_id
    assert jwt.decode(token, key.key, algorithms=["RS256"], audience="bloxserver-dev")["sub"] == "user_jwks"


def test_a_preflight_from_a_local_origin_is_answered_by_the_gateway(stack):
    reply = send(stack, "OPTIONS", "/api/v1/flows", {
        "Origin": "http://localhost:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })

    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert reply.headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,OPTIONS"
    assert reply.headers["access-control-allow-headers"] == (
        "authorization,content-type,idempotency-key,if-match,if-none-match"
    )
    assert reply.headers["access-control-max-age"] == "600"


def test_origins_the_template_allows_are_allowed_and_others_are_not(stack):
    preflight = {"Access-Control-Request-Method": "GET"}

    allowed = send(stack, "OPTIONS", "/api/v1/flows", {**preflight, "Origin": "https://app.openblox.ai"})
    foreign = send(stack, "OPTIONS", "/api/v1/flows", {**preflight, "Origin": "https://evil.example"})

    assert allowed.headers["access-control-allow-origin"] == "https://app.openblox.ai"
    assert foreign.status == 204 and "access-control-allow-origin" not in foreign.headers


def test_responses_to_an_allowed_origin_carry_cors_headers_even_when_refused(stack):
    origin = {"Origin": "http://127.0.0.1:8080"}

    ok = send(stack, "GET", "/api/v1/flows", {**origin, **bearer(stack.token())})
    refused = send(stack, "GET", "/api/v1/flows", origin)

    for reply in (ok, refused):
        assert reply.headers["access-control-allow-origin"] == "http://127.0.0.1:8080"
        assert reply.headers["access-control-expose-headers"] == "retry-after,x-next-cursor"
    assert (ok.status, refused.status) == (200, 401)


def test_a_body_over_10_mb_is_refused_before_it_is_read(stack):
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    connection.putrequest("POST", "/webhooks/clerk")
    connection.putheader("content-length", str(MAX_PAYLOAD_BYTES + 1))
    connection.endheaders()

    response = connection.getresponse()

    assert response.status == 413
    assert json.loads(response.read())["code"] == "payload_too_large"
    connection.close()


@pytest.mark.parametrize("announced", ["abc", "-1", "1e3"])
def test_a_content_length_that_is_not_a_whole_number_is_a_400_api_error_not_a_dropped_or_hung_connection(
    stack, announced
):
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    connection.putrequest("POST", "/api/v1/flows")
    connection.putheader("content-length", announced)
    connection.endheaders()

    response = connection.getresponse()

    assert response.status == 400
    assert json.loads(response.read())["code"] == "bad_request"
    connection.close()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [("/health?q=" + "a" * 70_000, {}, 414), ("/health", {"x-big": "a" * 70_000}, 431)],
)
def test_what_the_http_layer_refuses_itself_is_an_api_error_too(stack, path, headers, status):
    reply = send(stack, "GET", path, headers=headers)
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json" and reply.json["code"] == "bad_request"


def raw_exchange(stack: LocalStack, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are (framing http.client would refuse to produce); the status and the JSON body."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"POST /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}", 400, "bad_request"),
        (b"POST /api/v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}", 400,
         "bad_request"),
        (b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"),
    ],
    ids=["body shorter than announced", "two lengths", "a method no route has"],
)
def test_framing_a_client_gets_wrong_is_an_api_error_and_never_reaches_a_function(stack, request_bytes, status, code):
    answered, body = raw_exchange(stack, request_bytes)
    assert (answered, body["code"]) == (status, code)


def test_parallel_creates_respect_the_flow_limit(stack):
    token = stack.token(sub="user_racer", email="racer@example.com", tier="free")
    create = {"name": "race", "organismYaml": ORGANISM_YAML}

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: send(stack, "POST", "/api/v1/flows", bearer(token), create).status,
                                 range(20)))

    assert sorted(statuses) == [201] + [403] * 19
    assert send(stack, "GET", "/api/v1/flows", bearer(token)).json["total"] == 1
