"""Webhook triggers' config.verify (Standard Webhooks, GitHub's HMAC, a header's value) and config.rate_limit: a
delivery that does not verify is 401 invalid_signature and one past the bucket is 429 rate_limited; neither records
nor counts anything."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from svix.webhooks import Webhook

from bloxserver import clock, keys
from bloxserver.auth import user_id_for
from bloxserver.dal.table import get_item, key
from devstack.aws_calls import count_aws_calls
from tests.executions_support import ALICE, messages_in
from tests.support import call, claims_for

WHSEC = "whsec_" + base64.b64encode(b"a-trigger-signing-key-of-32-bytes").decode()
GITHUB_KEY = "github-hook-key-123"
BODY = '{"action": "opened"}'


@pytest.fixture
def secrets_api(aws):
    import secrets_handler

    return secrets_handler.handler


def put_secret(secrets_api, name, value, claims=ALICE):
    assert call(secrets_api, "PUT", f"/api/v1/secrets/{name}", body={"value": value}, claims=claims).status == 200


def webhook(system, flow_id, config, claims=ALICE):
    return call(
        system.triggers,
        "POST",
        f"/api/v1/flows/{flow_id}/triggers",
        body={"type": "webhook", "name": "Verified", "config": {"type": "webhook", **config}},
        claims=claims,
    )


def deliver(system, token, body=BODY, headers=None):
    return call(system.ingress, "POST", f"/webhooks/{token}", body=body, headers=headers)


def month_count(claims=ALICE) -> int:
    counter = get_item(key(keys.user_pk(user_id_for(claims["sub"])), keys.usage_month_sk(clock.now_iso())))
    return (counter or {}).get("count", 0)


def executions_of(system, flow_id, claims=ALICE) -> int:
    return call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=claims).json["total"]


def svix_headers(secret: str, body: str, msg_id: str = "msg_1") -> dict[str, str]:
    now = datetime.now(timezone.utc)
    signature = Webhook(secret).sign(msg_id, now, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}


def github_signature(secret: str, body: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def assert_refused_and_nothing_recorded(system, flow_id, reply, status=401, code="invalid_signature"):
    assert (reply.status, reply.json["code"]) == (status, code), reply.body
    assert executions_of(system, flow_id) == 0
    assert month_count() == 0
    assert messages_in("ExecutionQueue") == 0


def test_standard_webhooks_signed_deliveries_pass_and_others_are_401(system):
    flow_id = system.running_flow()
    trigger = webhook(system, flow_id, {"verify": {"scheme": "standard-webhooks", "secret": WHSEC}}).json
    token = trigger["webhookToken"]

    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token))
    forged = svix_headers("whsec_" + base64.b64encode(b"someone-elses-key").decode(), BODY)
    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token, headers=forged))
    tampered = svix_headers(WHSEC, BODY)
    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token, body='{"x": 1}', headers=tampered))

    accepted = deliver(system, token, headers=svix_headers(WHSEC, BODY))
    assert accepted.status == 202
    assert executions_of(system, flow_id) == 1 and month_count() == 1


def test_github_hmac_with_a_stored_secret(system, secrets_api):
    put_secret(secrets_api, "GH_HOOK", GITHUB_KEY)
    flow_id = system.running_flow()
    verify = {"scheme": "hmac-sha256", "header": "X-Hub-Signature-256", "secret": "secret('GH_HOOK')"}
    created = webhook(system, flow_id, {"verify": verify})
    assert created.status == 201 and created.json["config"]["verify"] == verify
    token = created.json["webhookToken"]

    missing = deliver(system, token)
    assert_refused_and_nothing_recorded(system, flow_id, missing)
    assert "X-Hub-Signature-256" in missing.json["message"]
    wrong = {"X-Hub-Signature-256": github_signature("not-the-key", BODY)}
    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token, headers=wrong))

    signed = {"X-Hub-Signature-256": github_signature(GITHUB_KEY, BODY)}
    assert deliver(system, token, headers=signed).status == 202


def test_a_header_holding_a_stored_secret(system, secrets_api):
    put_secret(secrets_api, "INBOUND_KEY", "inbound-api-key-xyz")
    flow_id = system.running_flow()
    verify = {"scheme": "header", "header": "X-Api-Key", "value": "secret('INBOUND_KEY')"}
    token = webhook(system, flow_id, {"verify": verify}).json["webhookToken"]

    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token, headers={"X-Api-Key": "guess"}))
    assert deliver(system, token, headers={"x-api-key": "inbound-api-key-xyz"}).status == 202


def test_a_verified_delivery_reads_its_secret_once_per_container_while_cached(system, secrets_api):
    put_secret(secrets_api, "INBOUND_KEY", "inbound-api-key-xyz")
    flow_id = system.running_flow()
    verify = {"scheme": "header", "header": "X-Api-Key", "value": "secret('INBOUND_KEY')"}
    token = webhook(system, flow_id, {"verify": verify}).json["webhookToken"]
    assert deliver(system, token, headers={"X-Api-Key": "inbound-api-key-xyz"}).status == 202

    with count_aws_calls() as calls:
        assert deliver(system, token, headers={"X-Api-Key": "inbound-api-key-xyz"}).status == 202
    assert calls == {"dynamodb.TransactWriteItems": 1, "sqs.SendMessage": 1}


@pytest.mark.parametrize(
    ("verify", "field"),
    [
        ({"scheme": "hmac-sha256", "secret": "secret('NOT_STORED')"}, "body.config.verify.secret"),
        ({"scheme": "header", "header": "X-Key", "value": "secret('NOT_STORED')"}, "body.config.verify.value"),
        ({"scheme": "standard-webhooks", "secret": "whsec_***not base64***"}, "body.config.verify.secret"),
        ({"scheme": "header", "header": "X Key", "value": "v"}, "body.config.verify.header"),
        ({"scheme": "header", "value": "v"}, "body.config.verify.header"),
        ({"scheme": "rot13", "secret": "x"}, "body.config.verify"),
    ],
)
def test_an_unusable_verify_config_is_422_naming_the_field(system, verify, field):
    flow_id = system.running_flow()
    reply = webhook(system, flow_id, {"verify": verify})
    assert (reply.status, reply.json["code"]) == (422, "validation_error"), reply.body
    assert field in reply.json["details"], reply.json
    assert call(system.triggers, "GET", f"/api/v1/flows/{flow_id}/triggers", claims=ALICE).json == []


def test_another_users_secret_cannot_be_referenced(system, secrets_api):
    bob = claims_for("user_bob")
    put_secret(secrets_api, "BOBS_KEY", "bobs-key-value", claims=bob)
    flow_id = system.running_flow()
    reply = webhook(system, flow_id, {"verify": {"scheme": "hmac-sha256", "secret": "secret('BOBS_KEY')"}})
    assert reply.status == 422


def test_a_secret_deleted_after_the_trigger_was_made_fails_deliveries_closed(system, secrets_api):
    put_secret(secrets_api, "GH_HOOK", GITHUB_KEY)
    flow_id = system.running_flow()
    token = webhook(system, flow_id, {"verify": {"scheme": "hmac-sha256", "secret": "secret('GH_HOOK')"}}).json[
        "webhookToken"
    ]
    assert call(secrets_api, "DELETE", "/api/v1/secrets/GH_HOOK", claims=ALICE).status == 204
    from bloxserver import secrets

    secrets._cache.clear()  # another container, or this one after CACHE_SECONDS
    signed = {"X-Hub-Signature-256": github_signature(GITHUB_KEY, BODY)}
    assert_refused_and_nothing_recorded(system, flow_id, deliver(system, token, headers=signed))


def test_past_the_burst_deliveries_are_429_with_retry_after_and_not_counted(system):
    flow_id = system.running_flow()
    token = webhook(system, flow_id, {"rate_limit": {"per_second": 0.5, "burst": 3}}).json["webhookToken"]

    replies = [deliver(system, token) for _ in range(5)]

    assert [reply.status for reply in replies] == [202, 202, 202, 429, 429]
    refused = replies[3]
    assert refused.json["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert executions_of(system, flow_id) == 3 and month_count() == 3


def test_the_bucket_refills_at_its_rate(system):
    flow_id = system.running_flow()
    token = webhook(system, flow_id, {"rate_limit": {"per_second": 1, "burst": 1}}).json["webhookToken"]
    assert deliver(system, token).status == 202
    assert deliver(system, token).status == 429
    time.sleep(1.05)
    assert deliver(system, token).status == 202


def test_parallel_deliveries_pass_exactly_the_burst(system):
    flow_id = system.running_flow()
    token = webhook(system, flow_id, {"rate_limit": {"per_second": 0.01, "burst": 5}}).json["webhookToken"]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: deliver(system, token).status, range(20)))

    assert statuses.count(202) == 5 and statuses.count(429) == 15
    assert executions_of(system, flow_id) == 5 and month_count() == 5


def test_a_trigger_without_rate_limit_gets_the_default_within_the_tier_ceiling(system):
    flow_id = system.running_flow()  # Alice has no tier claim: free, ceiling 1 per second, bursts of 10
    token = system.webhook(flow_id)["webhookToken"]
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: deliver(system, token).status, range(20)))
    refilled = int(time.monotonic() - began) + 1  # 1 per second came back while they ran
    assert 10 <= statuses.count(202) <= 10 + refilled
    assert statuses.count(429) == 20 - statuses.count(202)


@pytest.mark.parametrize(
    ("rate", "field"),
    [({"per_second": 2, "burst": 5}, "per_second"), ({"per_second": 1, "burst": 11}, "burst")],
)
def test_a_rate_limit_over_the_tier_ceiling_is_422_naming_it(system, rate, field):
    flow_id = system.running_flow()
    reply = webhook(system, flow_id, {"rate_limit": rate})
    assert reply.status == 422
    assert reply.json["details"] == {f"body.config.rate_limit.{field}": reply.json["details"][f"body.config.rate_limit.{field}"]}
    assert "free tier" in reply.json["message"]


def test_a_rate_too_small_to_mean_anything_is_422_naming_it(system):
    flow_id = system.running_flow()

    reply = webhook(system, flow_id, {"rate_limit": {"per_second": 5e-324, "burst": 1}})  # found by the fuzzer

    assert reply.status == 422 and "body.config.rate_limit.per_second" in reply.json["details"]


def test_a_pro_user_may_ask_for_more(system):
    pro = claims_for("user_pro", tier="pro")
    flow_id = system.running_flow(claims=pro)
    reply = webhook(system, flow_id, {"rate_limit": {"per_second": 50, "burst": 200}}, claims=pro)
    assert reply.status == 201
    assert reply.json["config"] == {"type": "webhook", "rate_limit": {"per_second": 50.0, "burst": 200}}
