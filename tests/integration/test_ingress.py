"""Webhook ingress through the real handler on embedded AWS: acceptance, refusals, quotas, idempotent deliveries."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from bloxserver import clock, keys
from bloxserver.auth import user_id_for
from bloxserver.dal.table import client, table_name
from devstack.aws_calls import count_aws_calls
from tests.executions_support import ALICE, messages_in
from tests.support import call, claims_for


def post(system, token, body='{"name": "ada"}', headers=None):
    return call(system.ingress, "POST", f"/webhooks/{token}", body=body, headers=headers)


def set_month_count(claims, count):
    user_id = user_id_for(claims["sub"])
    client().put_item(
        TableName=table_name(),
        Item={
            "PK": {"S": keys.user_pk(user_id)},
            "SK": {"S": keys.usage_month_sk(clock.now_iso())},
            "count": {"N": str(count)},
        },
    )


def test_given_a_running_flow_when_its_webhook_is_called_then_202_and_a_queued_running_execution(system, hook):
    reply = post(system, hook["token"], body='{"name": "ada"}')
    assert reply.status == 202
    assert reply.json["status"] == "accepted"
    execution = system.execution(hook["flowId"], reply.json["executionId"])
    assert execution["status"] == "running"
    assert execution["triggerType"] == "webhook" and execution["triggerId"] == hook["triggerId"]
    assert execution["inputPayload"] == '{"name": "ada"}'
    assert execution["completedAt"] is None
    assert messages_in("ExecutionQueue") == 1


def test_given_a_non_json_body_then_the_raw_text_is_the_input(system, hook):
    reply = post(system, hook["token"], body="plain text, not JSON")
    assert reply.status == 202
    assert system.execution(hook["flowId"], reply.json["executionId"])["inputPayload"] == "plain text, not JSON"


@pytest.mark.parametrize("body", [None, "", "  \n"], ids=["no body", "empty", "white space"])
def test_given_no_body_then_the_input_is_null_as_in_a_manual_run(system, hook, body):
    reply = post(system, hook["token"], body=body)
    assert reply.status == 202
    assert system.execution(hook["flowId"], reply.json["executionId"])["inputPayload"] is None


def test_given_an_unknown_token_then_404_and_nothing_is_queued(system, hook):
    reply = post(system, "no-such-token")
    assert reply.status == 404 and reply.json["code"] == "not_found"
    assert messages_in("ExecutionQueue") == 0


def test_given_an_absurdly_long_token_then_404_not_500(system, hook):
    assert post(system, "t" * 5000).status == 404
    assert call(system.ingress, "GET", f"/webhooks/{'t' * 5000}/test").status == 404


def test_given_a_body_that_is_not_utf8_text_then_400_and_nothing_is_queued(system, hook):
    reply = post(system, hook["token"], body=b"\xff\xfe\x00binary")
    assert reply.status == 400 and "UTF-8" in reply.json["message"]
    assert messages_in("ExecutionQueue") == 0


def test_given_a_stopped_flow_then_409_and_nothing_is_recorded(system, hook):
    system.stop_flow(hook["flowId"])
    reply = post(system, hook["token"])
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    assert reply.json["details"] == {"status": "stopped"}
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 0 and messages_in("ExecutionQueue") == 0


def test_given_a_body_over_256_kb_then_413(system, hook):
    reply = post(system, hook["token"], body="x" * (256 * 1024 + 1))
    assert reply.status == 413 and reply.json["code"] == "payload_too_large"
    assert messages_in("ExecutionQueue") == 0


def test_given_a_body_of_exactly_256_kb_then_it_is_accepted(system, hook):
    assert post(system, hook["token"], body="x" * (256 * 1024)).status == 202


def test_given_an_exhausted_monthly_quota_then_429_with_retry_after_and_reset_time(system, hook):
    set_month_count(ALICE, 1000)
    reply = post(system, hook["token"])
    assert reply.status == 429 and reply.json["code"] == "quota_exceeded"
    assert int(reply.headers["retry-after"]) > 0
    details = reply.json["details"]
    assert details["limit"] == 1000 and details["tier"] == "free"
    # written as the API writes every timestamp (docs/api.md): no fraction of a second when it is zero
    assert details["resetAt"].endswith("-01T00:00:00Z") and details["resetAt"] in reply.json["message"]
    assert messages_in("ExecutionQueue") == 0


def test_given_accepted_webhooks_then_usage_shows_the_day_and_month_counts(system, hook):
    import users_handler

    for _ in range(3):
        assert post(system, hook["token"]).status == 202
    for period in ("day", "month"):
        usage = call(users_handler.handler, "GET", "/api/v1/me/usage", claims=ALICE, query={"period": period}).json
        assert usage["executionCount"] == 3 and usage["executionLimit"] == 1000


def test_given_50_parallel_calls_at_the_quota_edge_then_exactly_the_remaining_allowance_is_admitted(system, hook):
    set_month_count(ALICE, 1000 - 7)
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda _: post(system, hook["token"]).status, range(50)))
    assert statuses.count(202) == 7 and statuses.count(429) == 43
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 7 and len(listing["items"]) == 7
    assert messages_in("ExecutionQueue") == 7


def test_given_an_idempotency_key_when_the_delivery_is_retried_then_the_same_execution_is_returned(system, hook):
    first = post(system, hook["token"], headers={"Idempotency-Key": "delivery-1"})
    again = post(system, hook["token"], headers={"Idempotency-Key": "delivery-1"})
    other = post(system, hook["token"], headers={"Idempotency-Key": "delivery-2"})
    assert first.status == again.status == other.status == 202
    assert again.json["executionId"] == first.json["executionId"] != other.json["executionId"]
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 2 and messages_in("ExecutionQueue") == 2


def test_given_parallel_retries_with_one_idempotency_key_then_one_execution(system, hook):
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: post(system, hook["token"], headers={"Idempotency-Key": "k"}), range(20)))
    assert {reply.status for reply in replies} == {202}
    assert len({reply.json["executionId"] for reply in replies}) == 1
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 1 and messages_in("ExecutionQueue") == 1


def test_given_an_idempotency_key_that_is_too_long_then_400(system, hook):
    reply = post(system, hook["token"], headers={"Idempotency-Key": "k" * 256})
    assert reply.status == 400 and "Idempotency-Key" in reply.json["message"]


def test_given_a_webhook_delivery_then_it_takes_at_most_4_aws_round_trips(system, hook):
    with count_aws_calls() as calls:
        assert post(system, hook["token"]).status == 202
    assert sum(calls.values()) <= 4, calls
    assert calls["dynamodb.TransactWriteItems"] == 1 and calls["sqs.SendMessage"] == 1


def test_given_the_token_and_the_owners_tier_were_seen_then_a_webhook_takes_2_aws_round_trips(system, hook):
    assert post(system, hook["token"]).status == 202
    with count_aws_calls() as calls:
        assert post(system, hook["token"]).status == 202
    assert calls == {"dynamodb.TransactWriteItems": 1, "sqs.SendMessage": 1}


def test_given_a_token_in_use_when_its_trigger_is_deleted_then_the_next_delivery_is_404_and_writes_nothing(
    system, hook
):
    assert post(system, hook["token"]).status == 202
    deleted = call(system.triggers, "DELETE", f"/api/v1/flows/{hook['flowId']}/triggers/{hook['triggerId']}", claims=ALICE)
    assert deleted.status == 204
    reply = post(system, hook["token"])
    assert reply.status == 404 and reply.json["code"] == "not_found"
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 1 and messages_in("ExecutionQueue") == 1


def test_given_a_token_in_use_when_its_flow_is_deleted_then_the_next_delivery_is_404(system, hook):
    assert post(system, hook["token"]).status == 202
    system.stop_flow(hook["flowId"])
    assert call(system.flows, "DELETE", f"/api/v1/flows/{hook['flowId']}", claims=ALICE).status == 204
    reply = post(system, hook["token"])
    assert reply.status == 404 and reply.json["code"] == "not_found"


def test_given_a_token_in_use_when_it_is_regenerated_then_the_old_one_is_404_and_the_new_one_runs(system, hook):
    assert post(system, hook["token"]).status == 202
    regenerated = call(
        system.triggers, "POST", f"/api/v1/flows/{hook['flowId']}/triggers/{hook['triggerId']}/regenerate-token",
        claims=ALICE,
    )
    assert regenerated.status == 200
    assert post(system, hook["token"]).status == 404
    assert post(system, regenerated.json["webhookToken"]).status == 202
    assert post(system, hook["token"]).status == 404
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 2


def test_given_the_owners_tier_changes_then_the_next_webhook_uses_the_new_tier_within_4_round_trips(system):
    from bloxserver.dal.users import upsert_profile

    pat = claims_for("user_pat", tier="pro")

    def store_tier(tier):
        profile = {"clerkId": "user_pat", "email": "p@example.com", "tier": tier}
        upsert_profile(user_id_for("user_pat"), profile, clock.now_iso())

    store_tier("pro")
    flow_id = system.running_flow(claims=pat)
    token = system.webhook(flow_id, claims=pat)["webhookToken"]
    set_month_count(pat, 5000)
    assert post(system, token).status == 202  # pro: the tier is now known to this container
    store_tier("free")
    with count_aws_calls() as calls:
        reply = post(system, token)
    assert reply.status == 429 and reply.json["details"] == {**reply.json["details"], "tier": "free", "limit": 1000}
    assert sum(calls.values()) <= 4, calls
    store_tier("enterprise")
    with count_aws_calls() as calls:
        assert post(system, token).status == 202
    assert sum(calls.values()) <= 4, calls
    store_tier(None)  # no tier stored reads as free
    assert post(system, token).status == 429
    store_tier("pro")
    assert post(system, token).status == 202
    usage = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/executions", claims=pat).json
    assert usage["total"] == 3


def test_given_a_valid_token_when_testing_it_then_its_trigger_and_flow_are_reported_without_executing(system, hook):
    reply = call(system.ingress, "GET", f"/webhooks/{hook['token']}/test")
    assert reply.status == 200
    assert reply.json == {"valid": True, "triggerName": "Inbound", "flowName": "Shout", "flowStatus": "running"}
    system.stop_flow(hook["flowId"])
    assert call(system.ingress, "GET", f"/webhooks/{hook['token']}/test").json["flowStatus"] == "stopped"
    assert messages_in("ExecutionQueue") == 0


def test_given_an_unknown_token_when_testing_it_then_404(system, hook):
    assert call(system.ingress, "GET", "/webhooks/nope/test").status == 404


def test_given_a_deleted_trigger_then_its_token_is_404(system, hook):
    deleted = call(system.triggers, "DELETE", f"/api/v1/flows/{hook['flowId']}/triggers/{hook['triggerId']}", claims=ALICE)
    assert deleted.status == 204
    assert post(system, hook["token"]).status == 404


def test_given_a_pro_owner_then_the_pro_quota_applies_to_their_webhooks(system):
    pro = claims_for("user_pat", tier="pro")
    import users_handler

    # The stored tier is what a webhook sees (no token): Clerk's sync put it on the profile.
    from bloxserver.dal.users import upsert_profile

    upsert_profile(user_id_for("user_pat"), {"clerkId": "user_pat", "email": "p@example.com", "tier": "pro"}, clock.now_iso())
    flow_id = system.running_flow(claims=pro)
    token = system.webhook(flow_id, claims=pro)["webhookToken"]
    set_month_count(pro, 5000)
    assert post(system, token).status == 202
    assert call(users_handler.handler, "GET", "/api/v1/me/usage", claims=pro).json["executionLimit"] == 100_000
    assert uuid.UUID(post(system, token).json["executionId"]).version == 7


def test_given_the_queue_failed_a_keyed_delivery_when_it_is_retried_then_a_new_execution_is_queued(
    system, hook, monkeypatch
):
    # Given a delivery with an Idempotency-Key that was answered 503 because the queue was unreachable
    from bloxserver.dal import queue

    real_send = queue.send_execution

    def unreachable(_message):
        raise RuntimeError("SQS unreachable")

    monkeypatch.setattr(queue, "send_execution", unreachable)
    failed = post(system, hook["token"], headers={"Idempotency-Key": "retry-me"})
    assert failed.status == 503
    # When the sender retries it, as the 503 asks, once the queue is back
    monkeypatch.setattr(queue, "send_execution", real_send)
    retried = post(system, hook["token"], headers={"Idempotency-Key": "retry-me"})
    # Then the retry is queued as a new running execution, not answered with the one that ended as error
    assert retried.status == 202
    execution = system.execution(hook["flowId"], retried.json["executionId"])
    assert execution["status"] == "running"
    assert messages_in("ExecutionQueue") == 1
    # And a further replay of the key answers with the queued one
    again = post(system, hook["token"], headers={"Idempotency-Key": "retry-me"})
    assert again.status == 202 and again.json["executionId"] == retried.json["executionId"]
