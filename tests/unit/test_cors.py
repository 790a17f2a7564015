"""The local gateway's CORS: the template's CorsConfiguration, with its AllowOrigins matched as API Gateway matches
them (an origin listed, "*", or a prefix ending in "*" such as "http://*")."""

from __future__ import annotations

from devstack.gateway import Cors
from devstack.resources import CORS_ORIGINS_VARIABLE, local_cors_origins
from devstack.template import http_api, parameter_defaults


def test_a_listed_origin_is_allowed_and_another_is_not():
    cors = Cors({"AllowOrigins": ["https://app.openblox.ai"]})

    assert cors.allows("https://app.openblox.ai")
    assert not cors.allows("https://app.openblox.ai.evil.example") and not cors.allows("http://localhost:3001")


def test_a_prefix_with_a_star_allows_every_origin_it_begins():
    cors = Cors({"AllowOrigins": ["http://*"]})

    assert cors.allows("http://localhost:5173") and cors.allows("http://127.0.0.1:8080")
    assert not cors.allows("https://evil.example")


def test_a_star_allows_any_origin_and_answers_with_a_star():
    cors = Cors({"AllowOrigins": ["*"]})

    assert cors.allows("https://anyone.example")
    assert ("access-control-allow-origin", "*") in cors.response_headers("https://anyone.example")


def test_the_template_takes_its_origins_from_the_parameter_the_local_stack_sets(monkeypatch):
    monkeypatch.delenv(CORS_ORIGINS_VARIABLE, raising=False)
    assert http_api()["CorsConfiguration"]["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert local_cors_origins() == [*parameter_defaults()["CorsAllowedOrigins"], "http://*"]

    monkeypatch.setenv(CORS_ORIGINS_VARIABLE, "http://localhost:3001, https://staging.example")

    assert local_cors_origins() == ["http://localhost:3001", "https://staging.example"]
