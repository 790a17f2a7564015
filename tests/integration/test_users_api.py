"""The caller's profile and usage, and Clerk's user sync, through the real handler on embedded AWS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import call, claims_for

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWNsZXJrLXdlYmhvb2tz"


def signed(payload: dict, *, msg_id: str = "msg_1", timestamp: int | None = None, secret: str = SECRET):
    body = json.dumps(payload)
    ts = str(timestamp if timestamp is not None else int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    headers = {"svix-id": msg_id, "svix-timestamp": ts, "svix-signature": f"v1,{signature}"}
    return body, headers


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def signed_bytes(body: bytes, *, msg_id: str = "msg_1", prefix: str = "svix") -> tuple[bytes, dict[str, str]]:
    ts = str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return body, {f"{prefix}-id": msg_id, f"{prefix}-timestamp": ts, f"{prefix}-signature": f"v1,{signature}"}


def clerk_user(event_type="user.created", tier=None, email="carol@example.com"):
    return {
        "type": event_type,
        "object": "event",
        "data": {
            "id": "user_carol",
            "first_name": "Carol",
            "last_name": "Jones",
            "image_url": "https://img.example.com/carol.png",
            "primary_email_address_id": "idn_2",
            "email_addresses": [
                {"id": "idn_1", "email_address": "old@example.com"},
                {"id": "idn_2", "email_address": email},
            ],
            "public_metadata": {"tier": tier} if tier else {},
        },
    }


def test_given_a_first_request_then_the_user_is_provisioned_from_the_claims_with_a_stable_id(users):
    me = call(users, "GET", "/api/v1/me", claims=claims_for("user_dave", email="dave@example.com"))
    assert me.status == 200
    assert me.json["clerkId"] == "user_dave" and me.json["email"] == "dave@example.com"
    assert me.json["tier"] == "free" and me.json["name"] == "User_Dave"
    again = call(users, "GET", "/api/v1/me", claims=claims_for("user_dave", email="dave@example.com"))
    assert again.json == me.json


def test_given_a_tier_claim_then_it_is_the_users_tier(users):
    assert call(users, "GET", "/api/v1/me", claims=claims_for("user_e", tier="pro")).json["tier"] == "pro"


def stored_tier_of(sub):
    from bloxserver.auth import user_id_for
    from bloxserver.dal.users import get_user

    return get_user(user_id_for(sub))["tier"]


def test_given_a_first_request_with_a_tier_claim_then_the_stored_tier_is_the_claimed_one(users, flows):
    # webhooks and schedules carry no token: they run with the stored tier, which must be the one /me reports
    call(users, "GET", "/api/v1/me", claims=claims_for("user_g", tier="pro"))
    call(flows, "POST", "/api/v1/flows", body={"name": "f"}, claims=claims_for("user_h", tier="paid"))
    assert (stored_tier_of("user_g"), stored_tier_of("user_h")) == ("pro", "paid")


def test_given_a_stored_tier_when_a_newer_token_claims_another_then_it_is_stored(users):
    body, headers = signed(clerk_user(tier="free") | {"data": clerk_user()["data"] | {"updated_at": 1_000_000}})
    call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    claims = claims_for("user_carol", tier="pro") | {"iat": "2000"}  # API Gateway hands claims over as strings
    assert call(users, "GET", "/api/v1/me/usage", claims=claims).json["executionLimit"] == 100_000
    assert stored_tier_of("user_carol") == "pro"


def test_given_a_tier_set_by_clerk_when_an_older_token_claims_another_then_the_stored_tier_stays(users):
    # Clerk's event is newer (updated_at in ms) than the token (iat in s): a stale claim must not undo a downgrade
    body, headers = signed(clerk_user(tier="free") | {"data": clerk_user()["data"] | {"updated_at": 5_000_000}})
    call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    stale = claims_for("user_carol", tier="pro") | {"iat": "4000"}
    assert call(users, "GET", "/api/v1/me", claims=stale).json["tier"] == "pro"  # the token's own claim still answers
    assert stored_tier_of("user_carol") == "free"


def test_usage_reports_flows_and_the_tier_execution_limit(users, flows):
    claims = claims_for("user_frank")
    call(flows, "POST", "/api/v1/flows", body={"name": "one"}, claims=claims)
    usage = call(users, "GET", "/api/v1/me/usage", claims=claims, query={"period": "day"}).json
    me = call(users, "GET", "/api/v1/me", claims=claims).json
    assert usage == {
        "userId": me["id"],
        "period": "day",
        "flowCount": 1,
        "executionCount": 0,
        "executionLimit": 1000,
        "tokenCount": 0,
        "tokenLimit": 200_000,
    }
    assert call(users, "GET", "/api/v1/me/usage", claims=claims).json["period"] == "month"
    bad = call(users, "GET", "/api/v1/me/usage", claims=claims, query={"period": "year"})
    assert bad.status == 422 and "query.period" in bad.json["details"]


def test_me_requires_claims(users):
    reply = call(users, "GET", "/api/v1/me")
    assert reply.status == 401 and reply.json["code"] == "unauthorized"


def test_given_a_signed_user_created_event_then_the_user_is_stored_with_tier_from_metadata(users):
    body, headers = signed(clerk_user(tier="paid"))
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert reply.status == 200
    me = call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json
    assert me["email"] == "carol@example.com" and me["name"] == "Carol Jones"
    assert me["avatarUrl"] == "https://img.example.com/carol.png" and me["tier"] == "paid"


def test_given_an_update_then_profile_changes_and_a_replayed_delivery_has_no_second_effect(users):
    call(users, "POST", "/webhooks/clerk", body=(s := signed(clerk_user()))[0], headers=s[1])
    body, headers = signed(clerk_user("user.updated", email="new@example.com"), msg_id="msg_2")
    assert call(users, "POST", "/webhooks/clerk", body=body, headers=headers).status == 200
    # The same delivery again after a later change: acknowledged, not re-applied.
    later, later_headers = signed(clerk_user("user.updated", email="latest@example.com"), msg_id="msg_3")
    call(users, "POST", "/webhooks/clerk", body=later, headers=later_headers)
    replay = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert replay.status == 200
    assert call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json["email"] == "latest@example.com"


def test_given_a_deleted_user_then_their_flows_are_gone(users, flows):
    body, headers = signed(clerk_user(tier="pro"))
    call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    carol = {"sub": "user_carol"}
    flow_id = call(flows, "POST", "/api/v1/flows", body={"name": "doomed"}, claims=carol).json["id"]
    body, headers = signed({"type": "user.deleted", "data": {"id": "user_carol", "deleted": True}}, msg_id="msg_del")
    assert call(users, "POST", "/webhooks/clerk", body=body, headers=headers).status == 200
    assert call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=carol).status == 404
    assert call(flows, "GET", "/api/v1/flows", claims=carol).json["total"] == 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body + " ", headers),
        lambda body, headers: (body, {**headers, "svix-signature": "v1,AAAA"}),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "svix-id"}),
        lambda body, headers: signed(json.loads(body), timestamp=int(time.time()) - 600),
        lambda body, headers: signed(json.loads(body), secret="whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="),
    ],
    ids=["body changed", "bad signature", "missing header", "too old", "wrong secret"],
)
def test_given_a_bad_signature_then_400_and_nothing_written(users, tamper):
    body, headers = tamper(*signed(clerk_user()))
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert reply.status == 400 and reply.json["code"] == "invalid_signature"
    from bloxserver.auth import user_id_for
    from bloxserver.dal.users import get_user

    assert get_user(user_id_for("user_carol")) is None


@pytest.mark.parametrize("signature", ["v1,abc", "garbage", "v1,", "v1,!!!!"])
def test_given_a_signature_that_is_not_even_base64_then_400_invalid_signature(users, signature):
    body, headers = signed(clerk_user())
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers={**headers, "svix-signature": signature})
    assert (reply.status, reply.json["code"]) == (400, "invalid_signature")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ([1], "event"),
        ({"type": "user.updated", "data": "str"}, "event"),
        ({"data": {"id": "user_carol"}}, "event"),
        (clerk_user() | {"data": clerk_user()["data"] | {"email_addresses": "notalist"}}, "data.email_addresses"),
        (clerk_user() | {"data": clerk_user()["data"] | {"public_metadata": "pro"}}, "data.public_metadata"),
        (clerk_user() | {"data": clerk_user()["data"] | {"updated_at": "yesterday"}}, "data.updated_at"),
        (clerk_user() | {"data": clerk_user()["data"] | {"updated_at": 1e300}}, "data.updated_at"),
        (clerk_user() | {"data": clerk_user()["data"] | {"first_name": ["a"]}}, "data.first_name"),
        (clerk_user() | {"data": clerk_user()["data"] | {"image_url": {"a": 1}}}, "data.image_url"),
        (
            clerk_user() | {"data": clerk_user()["data"] | {"email_addresses": [{"id": "idn_2", "email_address": 5}]}},
            "data.email_addresses[].email_address",
        ),
        (clerk_user() | {"data": clerk_user()["data"] | {"first_name": "x" * 450_000}}, "data.first_name"),
        (clerk_user() | {"data": clerk_user()["data"] | {"id": "user_" + "x" * 5000}}, "data.id"),
        (clerk_user() | {"type": "user." + "x" * 450_000}, "type"),
        (clerk_user(tier="godmode"), "data.public_metadata.tier"),
        (clerk_user() | {"data": clerk_user()["data"] | {"public_metadata": {"tier": 5}}}, "data.public_metadata.tier"),
        (clerk_user(tier="p" * 3000), "data.public_metadata.tier"),
    ],
)
def test_given_a_signed_but_malformed_event_then_400_naming_the_field_and_nothing_written(users, event, field):
    body, headers = signed(event)
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert (reply.status, reply.json["code"]) == (400, "bad_request") and field in reply.json["details"]
    from bloxserver.auth import user_id_for
    from bloxserver.dal.users import get_user

    assert get_user(user_id_for("user_carol")) is None


def test_given_an_event_signed_under_the_standard_webhooks_header_names_then_it_is_applied(users):
    body, headers = signed_bytes(json.dumps(clerk_user(tier="pro")).encode(), prefix="webhook")
    assert call(users, "POST", "/webhooks/clerk", body=body.decode(), headers=headers).status == 200
    assert call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json["tier"] == "pro"


def test_given_an_event_deeply_nested_where_nothing_is_read_then_it_is_applied(users):
    body, headers = signed(clerk_user() | {"data": clerk_user()["data"] | {"deep": nested(600)}})
    assert call(users, "POST", "/webhooks/clerk", body=body, headers=headers).status == 200


def test_given_an_event_nested_deeper_than_json_can_be_read_then_400(users):
    body = json.dumps(clerk_user()).replace('"data": {', '"data": {"deep": ' + "[" * 5000 + "]" * 5000 + ", ", 1)
    _, headers = signed_bytes(body.encode())
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert (reply.status, reply.json["code"]) == (400, "bad_request") and "event" in reply.json["details"]


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [("application/json", 422, "validation_error"), ("text/plain", 400, "bad_request")],
    ids=["refused at the door as on every route", "refused as a Clerk event"],
)
def test_given_an_event_in_utf16_then_refused_and_nothing_written(users, content_type, status, code):
    body, headers = signed_bytes(json.dumps(clerk_user()).encode("utf-16-be"))
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers={**headers, "content-type": content_type})
    assert (reply.status, reply.json["code"]) == (status, code)
    from bloxserver.auth import user_id_for
    from bloxserver.dal.users import get_user

    assert get_user(user_id_for("user_carol")) is None


def test_given_a_delivery_sent_again_while_it_is_being_applied_then_409_and_it_is_applied_once(users, monkeypatch):
    import users_logic

    body, headers = signed(clerk_user())
    real_apply = users_logic._apply_clerk_event
    answers = []

    def apply_while_resent(delivery):
        with ThreadPoolExecutor(max_workers=1) as other_invocation:
            resend = other_invocation.submit(call, users, "POST", "/webhooks/clerk", body=body, headers=headers)
            answers.append(resend.result())
        return real_apply(delivery)

    monkeypatch.setattr(users_logic, "_apply_clerk_event", apply_while_resent)
    assert call(users, "POST", "/webhooks/clerk", body=body, headers=headers).status == 200
    [resent] = answers
    assert (resent.status, resent.json["code"]) == (409, "conflict")


def test_given_a_known_user_when_an_update_names_an_unknown_tier_then_400_and_nothing_changes(users):
    call(users, "POST", "/webhooks/clerk", body=(s := signed(clerk_user(tier="pro")))[0], headers=s[1])
    body, headers = signed(clerk_user("user.updated", tier="godmode", email="new@example.com"), msg_id="msg_2")
    reply = call(users, "POST", "/webhooks/clerk", body=body, headers=headers)
    assert reply.status == 400 and "data.public_metadata.tier" in reply.json["details"]
    me = call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json
    assert (me["tier"], me["email"]) == ("pro", "carol@example.com")


def test_given_a_tier_in_another_case_then_it_is_that_tier(users):
    call(users, "POST", "/webhooks/clerk", body=(s := signed(clerk_user(tier=" Pro")))[0], headers=s[1])
    assert call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json["tier"] == "pro"


def test_given_an_update_without_email_addresses_then_the_stored_email_stays(users):
    call(users, "POST", "/webhooks/clerk", body=(s := signed(clerk_user()))[0], headers=s[1])
    without = clerk_user("user.updated")
    del without["data"]["email_addresses"], without["data"]["primary_email_address_id"]
    body, headers = signed(without | {"data": without["data"] | {"first_name": "Caroline"}}, msg_id="msg_2")
    assert call(users, "POST", "/webhooks/clerk", body=body, headers=headers).status == 200
    me = call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json
    assert (me["email"], me["name"]) == ("carol@example.com", "Caroline Jones")


def test_given_a_new_user_without_email_addresses_then_a_placeholder_email_is_stored(users):
    without = clerk_user()
    del without["data"]["email_addresses"]
    call(users, "POST", "/webhooks/clerk", body=(s := signed(without))[0], headers=s[1])
    assert call(users, "GET", "/api/v1/me", claims={"sub": "user_carol"}).json["email"] == "user_carol@unknown"
