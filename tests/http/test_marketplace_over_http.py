"""The marketplace on the local stack over real HTTP: browse and get are public routes (no authorizer in
template.yaml, so the gateway lets a request without a token through), everything else needs a token, and twenty
users using one template at once count twenty downloads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.server import start_local_stack
from tests.http.test_local_stack import bearer, send

TEMPLATE = {
    "type": "flow",
    "name": "Echo template",
    "description": "Answers with what it gets",
    "category": "developer-tools",
    "tags": ["echo"],
    "content": {
        "type": "flow",
        "organismYaml": "organism: {name: echo}\nlisteners:\n  - name: done\n    description: The result\n"
                        "    handler: output\n",
        "canvasState": {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}},
    },
}


@pytest.fixture(scope="module")
def stack():
    with start_local_stack(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def listing(stack):
    reply = send(stack, "POST", "/api/v1/marketplace", bearer(stack.token(sub="user_publisher", tier="pro")), TEMPLATE)
    assert reply.status == 201, reply.body
    return reply.json


def test_given_no_token_then_browse_and_get_answer(stack, listing):
    browsed = send(stack, "GET", "/api/v1/marketplace?q=ECHO&type=flow")
    got = send(stack, "GET", f"/api/v1/marketplace/{listing['id']}")

    assert browsed.status == 200 and [item["id"] for item in browsed.json["items"]] == [listing["id"]]
    assert got.status == 200 and got.json["name"] == "Echo template"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/marketplace"), ("POST", "/api/v1/marketplace/{id}/use"), ("POST", "/api/v1/marketplace/{id}/install"),
     ("POST", "/api/v1/marketplace/{id}/rating"), ("PATCH", "/api/v1/marketplace/{id}"),
     ("DELETE", "/api/v1/marketplace/{id}"), ("GET", "/api/v1/me/tools"), ("DELETE", "/api/v1/me/tools/{id}")],
)
def test_given_no_token_then_the_other_routes_are_401(stack, listing, method, path):
    reply = send(stack, method, path.replace("{id}", listing["id"]), body={})

    assert reply.status == 401 and reply.json["code"] == "unauthorized"


def test_given_20_users_using_one_template_at_once_then_it_counts_20_downloads(stack, listing):
    tokens = [stack.token(sub=f"user_crowd_{index}", tier="paid") for index in range(20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(
            lambda token: send(stack, "POST", f"/api/v1/marketplace/{listing['id']}/use", bearer(token)).status, tokens
        ))

    assert statuses == [201] * 20
    assert send(stack, "GET", f"/api/v1/marketplace/{listing['id']}").json["downloads"] == 20
