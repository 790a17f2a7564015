"""One tenant never holds up another: the executor runs a batch's executions side by side, each owner's bounded by
its tier, and hands back what it did not start so that it is redelivered at once."""

from __future__ import annotations

import threading
import time

import boto3

from bloxserver.limits import run_limits_for
from devstack.queue_worker import sqs_event
from devstack.resources import queue_url
from tests.executions_support import Invoker, messages_in, slow_flow_yaml, slow_server
from tests.support import call, claims_for

WAIT_FOR_RESULT_SECONDS = 15  # an upper bound for a slow machine, not a timing requirement


def accept(system, flow_id, claims, token=None) -> str:
    token = token or system.webhook(flow_id, claims)["webhookToken"]
    reply = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "ada"}')
    assert reply.status == 202, reply.body
    return reply.json["executionId"]


def accept_many(system, flow_id, claims, count) -> list[str]:
    token = system.webhook(flow_id, claims)["webhookToken"]
    replies = [call(system.ingress, "POST", f"/webhooks/{token}", body="{}") for _ in range(count)]
    assert all(reply.status == 202 for reply in replies)
    return [reply.json["executionId"] for reply in replies]


def test_given_user_as_ten_slow_runs_queued_first_then_user_bs_run_ends_success_before_any_of_as(
    system, loopback_allowed
):
    user_a, user_b = claims_for("user_a", tier="paid"), claims_for("user_b")
    with slow_server() as slow:
        # Given user A's ten runs that each wait 20 s on a slow upstream, queued before user B's quick run
        a_flow = system.running_flow(user_a, slow_flow_yaml(slow.server.url), "Slow")
        a_runs = accept_many(system, a_flow, user_a, 10)
        b_flow = system.running_flow(user_b)
        b_run = accept(system, b_flow, user_b)
        # When the executor takes them as the event source mapping delivers them: batches side by side
        deliveries = [threading.Thread(target=system.deliver) for _ in range(2)]
        for delivery in deliveries:
            delivery.start()
            time.sleep(0.2)  # A's batch is received first
        give_up = time.monotonic() + WAIT_FOR_RESULT_SECONDS
        while system.execution(b_flow, b_run, user_b)["status"] == "running" and time.monotonic() < give_up:
            time.sleep(0.1)
        # Then B's run has ended, successfully, while every one of A's is still running
        assert system.execution(b_flow, b_run, user_b)["status"] == "success"
        assert {system.execution(a_flow, run, user_a)["status"] for run in a_runs} == {"running"}
        # and no more of A's run at once than its tier allows in one invocation
        allowed = run_limits_for("paid").concurrent_runs
        while slow.in_flight < allowed and time.monotonic() < give_up:
            time.sleep(0.1)
        time.sleep(0.5)
        assert slow.most_in_flight == allowed
        slow.release()
        for delivery in deliveries:
            delivery.join(60)
    assert {system.execution(a_flow, run, user_a)["status"] for run in a_runs} == {"success"}


def test_given_a_record_handed_back_unstarted_then_it_is_visible_again_at_once(system, hook):
    # Given a batch received by an invocation with too little time left to start its run
    accept(system, hook["flowId"], None, hook["token"])
    sqs, url = boto3.client("sqs"), queue_url("ExecutionQueue")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # When the executor hands it back
    answer = Invoker(system.executor, "ExecutorFunction", 20).invoke(sqs_event(received, arn))
    assert [item["itemIdentifier"] for item in answer["batchItemFailures"]] == [received[0]["MessageId"]]
    # Then the next receive gets it, not one after the queue's 90-minute visibility timeout
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [message["MessageId"] for message in again] == [received[0]["MessageId"]]
    assert messages_in("ExecutionQueue") == 1


def test_given_a_free_owners_batch_then_its_runs_go_one_at_a_time_and_each_ends(system, loopback_allowed):
    free = claims_for("user_free")
    with slow_server() as slow:
        slow.release()  # answers at once: only how many overlap matters here
        flow_id = system.running_flow(free, slow_flow_yaml(slow.server.url), "Slow")
        runs = accept_many(system, flow_id, free, 3)
        assert system.deliver() == 3
    assert slow.most_in_flight == run_limits_for("free").concurrent_runs == 1
    assert {system.execution(flow_id, run, free)["status"] for run in runs} == {"success"}
