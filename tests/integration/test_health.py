"""Health: liveness plus a readiness check; unknown routes answer an ApiError."""

from __future__ import annotations

import pytest

from tests.support import call


@pytest.fixture
def health(aws):
    import health_handler

    return health_handler.handler


def test_given_the_table_exists_then_healthy(health):
    reply = call(health, "GET", "/health")
    assert reply.status == 200
    assert reply.json["status"] == "healthy"
    assert reply.json["checks"] == {"table": "ok", "idempotencyTable": "ok"}


@pytest.mark.parametrize(
    "variable, check", [("TABLE_NAME", "table"), ("IDEMPOTENCY_TABLE_NAME", "idempotencyTable")]
)
def test_given_a_table_is_missing_then_503_api_error_naming_the_check(health, monkeypatch, variable, check):
    monkeypatch.setenv(variable, "no-such-table")
    from bloxserver.settings import get_settings

    get_settings.cache_clear()
    reply = call(health, "GET", "/health")
    get_settings.cache_clear()
    assert reply.status == 503
    assert reply.json["code"] == "service_unavailable"
    assert reply.json["details"]["checks"][check].startswith("error")


def test_unknown_routes_are_404_api_errors(health):
    reply = call(health, "DELETE", "/nothing/here")
    assert reply.status == 404 and reply.json["code"] == "not_found"
