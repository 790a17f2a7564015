"""Secrets: PUT stores a value encrypted (KMS), GET lists names and hints only, DELETE removes; values never come back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from bloxserver.limits import TIER_LIMITS
from bloxserver.contract import Tier
from tests.support import ALICE, BOB, call, claims_for

SECRETS = "/api/v1/secrets"


@pytest.fixture
def secrets(aws):
    import secrets_handler

    return secrets_handler.handler


def test_a_put_secret_answers_its_name_and_hint_and_a_list_shows_no_value(secrets):
    reply = call(secrets, "PUT", f"{SECRETS}/API_KEY", body={"value": "sk-live-abcdef123456"}, claims=ALICE)

    assert reply.status == 200
    assert reply.json["name"] == "API_KEY"
    assert reply.json["hint"] == "3456"
    assert reply.json["createdAt"] == reply.json["updatedAt"]
    assert "value" not in reply.json
    listed = call(secrets, "GET", SECRETS, claims=ALICE)
    assert listed.status == 200
    assert listed.json == [reply.json]
    assert "sk-live-abcdef123456" not in listed.body


def test_the_value_is_stored_encrypted_not_as_text(secrets):
    call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "plain-text-never-stored"}, claims=ALICE)

    items = boto3.client("dynamodb").scan(TableName="bloxserver-app")["Items"]
    assert not any("plain-text-never-stored" in repr(item) for item in items)
    [secret] = [item for item in items if item["SK"]["S"] == "SECRET#TOKEN"]
    assert set(secret["ciphertext"]) == {"B"}


def test_putting_again_replaces_the_value_and_keeps_created_at(secrets):
    first = call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "first-value-1111"}, claims=ALICE).json
    second = call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "second-value-2222"}, claims=ALICE).json

    assert second["hint"] == "2222"
    assert second["createdAt"] == first["createdAt"]
    assert second["updatedAt"] >= first["updatedAt"]
    assert len(call(secrets, "GET", SECRETS, claims=ALICE).json) == 1


def test_a_short_value_shows_no_hint(secrets):
    assert call(secrets, "PUT", f"{SECRETS}/PIN", body={"value": "1234"}, claims=ALICE).json["hint"] == ""


def test_delete_removes_the_secret_and_then_it_is_not_found(secrets):
    call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "value-to-delete"}, claims=ALICE)

    assert call(secrets, "DELETE", f"{SECRETS}/TOKEN", claims=ALICE).status == 204
    assert call(secrets, "GET", SECRETS, claims=ALICE).json == []
    gone = call(secrets, "DELETE", f"{SECRETS}/TOKEN", claims=ALICE)
    assert (gone.status, gone.json["code"]) == (404, "not_found")


def test_another_users_secrets_are_invisible_and_cannot_be_deleted(secrets):
    call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "alice-only-value"}, claims=ALICE)

    assert call(secrets, "GET", SECRETS, claims=BOB).json == []
    assert call(secrets, "DELETE", f"{SECRETS}/TOKEN", claims=BOB).status == 404
    assert len(call(secrets, "GET", SECRETS, claims=ALICE).json) == 1


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("bad-name", {"value": "a-good-value"}, "path.name"),
        ("x" * 65, {"value": "a-good-value"}, "path.name"),
        ("TOKEN", {"value": ""}, "body.value"),
        ("TOKEN", {"value": "two\nlines"}, "body.value"),
        ("TOKEN", {"value": "é" * 2049}, "body.value"),
        ("TOKEN", {}, "body.value"),
    ],
)
def test_bad_names_and_values_are_refused_naming_the_field_and_write_nothing(secrets, name, body, field):
    reply = call(secrets, "PUT", f"{SECRETS}/{name}", body=body, claims=ALICE)

    assert reply.status == 422
    assert reply.json["code"] == "validation_error"
    assert field in reply.json["details"]
    assert call(secrets, "GET", SECRETS, claims=ALICE).json == []


def test_requests_without_a_token_are_unauthorized(secrets):
    assert call(secrets, "GET", SECRETS).status == 401
    assert call(secrets, "PUT", f"{SECRETS}/TOKEN", body={"value": "a-good-value"}).status == 401


def test_parallel_puts_of_new_names_stop_exactly_at_the_tier_limit(secrets):
    free = claims_for("user_free_secrets", tier="free")
    limit = TIER_LIMITS[Tier.FREE].secrets

    def put(index: int) -> int:
        return call(secrets, "PUT", f"{SECRETS}/S{index}", body={"value": f"value-{index}"}, claims=free).status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, range(limit + 6)))

    assert statuses.count(200) == limit
    assert statuses.count(403) == 6
    assert len(call(secrets, "GET", SECRETS, claims=free).json) == limit
    refused = call(secrets, "PUT", f"{SECRETS}/ONE_MORE", body={"value": "value-x"}, claims=free)
    assert refused.json["code"] == "limit_reached" and refused.json["details"] == {"limit": limit, "tier": "free"}
    # replacing an existing one is not a new secret, and a deletion makes room
    assert call(secrets, "PUT", f"{SECRETS}/S0", body={"value": "value-again"}, claims=free).status == 200
    call(secrets, "DELETE", f"{SECRETS}/S1", claims=free)
    assert call(secrets, "PUT", f"{SECRETS}/ONE_MORE", body={"value": "value-x"}, claims=free).status == 200
