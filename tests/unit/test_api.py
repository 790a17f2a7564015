"""The shared HTTP layer: every failure is an ApiError, bodies are capped, bugs leak nothing."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from bloxserver.api import create_app, lambda_handler
from bloxserver.errors import InvalidState
from tests.support import call


class Payload(BaseModel):
    name: str = Field(max_length=5)


@pytest.fixture(scope="module")
def handler():
    app = create_app("test")

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    @app.post("/echo")
    async def echo(body: Payload) -> dict:
        return body.model_dump()

    @app.post("/conflict")
    async def conflict() -> dict:
        raise InvalidState("Cannot do that now", {"status": "running"})

    return lambda_handler(app, max_body_bytes=1000)


def test_an_unexpected_exception_is_a_500_api_error_that_leaks_nothing(handler):
    reply = call(handler, "GET", "/boom")
    assert reply.status == 500
    assert reply.json == {"code": "internal_error", "message": "An unexpected error occurred"}
    assert "secret" not in reply.body


def test_a_domain_error_keeps_its_code_status_and_details(handler):
    reply = call(handler, "POST", "/conflict")
    assert reply.status == 409
    assert reply.json == {"code": "invalid_state", "message": "Cannot do that now", "details": {"status": "running"}}


def test_validation_errors_name_the_field(handler):
    reply = call(handler, "POST", "/echo", body={"name": "too long"})
    assert reply.status == 422 and list(reply.json["details"]) == ["body.name"]


def test_a_body_over_the_cap_is_413_before_parsing(handler):
    reply = call(handler, "POST", "/echo", body="x" * 1001)
    assert reply.status == 413 and reply.json["code"] == "payload_too_large"


def test_unknown_routes_methods_and_trailing_slashes_are_404_api_errors_as_api_gateway_answers_them(handler):
    # another method reaches a function only when a decoded %2F turned the path into another route's
    for method, path in [("GET", "/nothing"), ("DELETE", "/echo"), ("POST", "/echo/"), ("POST", "/echo%2F")]:
        reply = call(handler, method, path)
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (method, path)


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16", "utf-32-le"])
def test_a_json_body_in_another_unicode_encoding_is_422_not_read(handler, encoding):
    body = '{"name": "ada"}'.encode(encoding)
    reply = call(handler, "POST", "/echo", body=body, headers={"content-type": "application/json"})
    assert (reply.status, reply.json["code"]) == (422, "validation_error") and "UTF-8" in reply.json["details"]["body"]


def test_a_json_body_in_utf8_with_a_byte_order_mark_is_read(handler):
    body = '{"name": "ada"}'.encode("utf-8-sig")
    reply = call(handler, "POST", "/echo", body=body, headers={"content-type": "application/json"})
    assert (reply.status, reply.json) == (200, {"name": "ada"})
