"""`make dev` serves the API's OpenAPI document at /openapi.json and Swagger UI at /docs, from installed files."""

from __future__ import annotations

import http.client
import json

import pytest

from devstack import openapi
from devstack.server import start_local_stack


@pytest.fixture(scope="module")
def stack():
    with start_local_stack(port=0) as running:
        yield running


def get(stack, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    reply = response.status, response.getheader("content-type"), response.read()
    connection.close()
    return reply


def test_the_stack_serves_the_document_the_code_describes(stack):
    status, content_type, body = get(stack, "/openapi.json")

    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == json.loads(openapi.render(openapi.build_document()))


def test_docs_is_swagger_ui_reading_that_document_with_its_assets_served_locally(stack):
    status, content_type, page = get(stack, "/docs")

    assert status == 200 and content_type.startswith("text/html")
    assert b'url: "/openapi.json"' in page
    assert b"http" not in page, "the page loads something from another host (a CDN)"
    for asset in ("/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"):
        asset_status, _, content = get(stack, asset)
        assert asset_status == 200 and len(content) > 1000, asset


def test_anything_else_under_docs_is_no_route(stack):
    status, _, body = get(stack, "/docs/../template.yaml")

    assert status == 404 and json.loads(body)["code"] == "not_found"
