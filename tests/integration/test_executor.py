"""The executor, sweeper, dead-letter consumer and schedule target on embedded AWS: every execution ends, once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bloxserver import clock, executions
from bloxserver.dal import queue
from devstack.aws_calls import count_aws_calls
from devstack.events import LambdaContext
from devstack.template import load_template
from tests.executions_support import ALICE, messages_in
from tests.support import call


def accept(system, hook, body='{"name": "ada"}') -> str:
    reply = call(system.ingress, "POST", f"/webhooks/{hook['token']}", body=body)
    assert reply.status == 202, reply.body
    return reply.json["executionId"]


def logs_of(system, flow_id, execution_id):
    reply = call(system.executions, "GET", f"/api/v1/flows/{flow_id}/logs", claims=ALICE, query={"execution_id": execution_id})
    assert reply.status == 200
    return reply.json


def stats_of(system, flow_id):
    return call(system.executions, "GET", f"/api/v1/flows/{flow_id}/stats", claims=ALICE).json


class Crash(BaseException):
    """The executor's process dying mid-run (not an exception its code could handle)."""


def test_given_a_queued_execution_when_the_executor_runs_it_then_success_with_output_duration_and_logs(system, hook):
    execution_id = accept(system, hook)
    assert system.drain() == 1
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "success"
    assert json.loads(execution["outputPayload"]) == {"shout": "ADA"}
    assert execution["errorMessage"] is None
    assert execution["completedAt"] >= execution["startedAt"] and execution["durationMs"] >= 0
    logs = logs_of(system, hook["flowId"], execution_id)
    assert logs[0]["message"] == "execution finished: success"
    assert logs[-1]["message"].startswith("execution started")
    assert all(entry["metadata"]["executionId"] == execution_id for entry in logs)
    assert {entry["metadata"]["listener"] for entry in logs} >= {None, "upper", "done"}
    assert messages_in("ExecutionQueue") == 0


def test_given_a_redelivered_message_then_the_execution_runs_once(system, hook):
    execution_id = accept(system, hook)
    queue.send_execution({"userId": hook_owner(), "flowId": hook["flowId"], "executionId": execution_id})
    assert system.drain() == 2
    logs = logs_of(system, hook["flowId"], execution_id)
    assert [entry["message"] for entry in logs].count("execution finished: success") == 1
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsTotal"] == 1 and stats["executionsSuccess"] == 1


def fire(system, event):
    """EventBridge Scheduler invoking the ScheduleFunction with its target input."""
    return system.schedule(event, LambdaContext("ScheduleFunction"))


def schedule_firing(hook, scheduler_execution_id: str) -> dict:
    """The target input EventBridge Scheduler sends for the hook's flow at 09:00 on 2026-11-28."""
    return {
        "userId": hook_owner(),
        "flowId": hook["flowId"],
        "triggerId": hook["triggerId"],
        "scheduledTime": "2026-11-28T09:00:00Z",
        "executionId": scheduler_execution_id,
    }


def hook_owner() -> str:
    from bloxserver.auth import user_id_for

    return str(user_id_for(ALICE["sub"]))


def test_given_the_flow_is_stopped_before_its_queued_execution_starts_then_it_ends_error(system, hook):
    execution_id = accept(system, hook)
    system.stop_flow(hook["flowId"])
    system.drain()
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "error"
    assert execution["errorMessage"] == "Flow stopped before the execution started"
    assert logs_of(system, hook["flowId"], execution_id) == []


def test_given_a_failing_input_then_the_execution_ends_error_with_the_engines_message(system, hook):
    execution_id = accept(system, hook, body='{"no_name": 1}')
    system.drain()
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "error" and execution["outputPayload"] is None
    assert execution["errorMessage"].startswith("listener 'upper' failed")
    errors = call(
        system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/logs", claims=ALICE, query={"level": "error"}
    ).json
    assert [entry["message"] for entry in errors] == [execution["errorMessage"]]
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsError"] == 1 and stats["executionsSuccess"] == 0


def test_given_an_output_over_the_cap_then_the_execution_ends_error_and_its_log_says_why(system, hook):
    import executor_logic

    execution_id = accept(system, hook, body=json.dumps({"name": "x" * (executor_logic.MAX_OUTPUT_BYTES + 1)}))
    system.drain()
    execution = system.execution(hook["flowId"], execution_id)
    message = f"Output exceeds {executor_logic.MAX_OUTPUT_BYTES} bytes"
    assert (execution["status"], execution["errorMessage"], execution["outputPayload"]) == ("error", message, None)
    errors = call(
        system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/logs", claims=ALICE, query={"level": "error"}
    ).json
    assert [entry["message"] for entry in errors] == [message]


def test_given_a_message_that_fails_every_delivery_then_it_reaches_the_dlq_and_the_execution_ends_error(
    system, hook, monkeypatch
):
    import executor_logic

    execution_id = accept(system, hook)

    def broken(*_args, **_kwargs):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(executor_logic, "process", broken)
    deliveries = 0
    while system.deliver():
        deliveries += 1
    assert deliveries == executions.QUEUE_MAX_RECEIVES
    assert messages_in("ExecutionDeadLetterQueue") == 1
    assert system.execution(hook["flowId"], execution_id)["status"] == "running"
    system.deliver(handler=system.deadletter, queue="ExecutionDeadLetterQueue")
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "error"
    assert execution["errorMessage"] == "Execution failed: not processed after 3 delivery attempts"
    assert messages_in("ExecutionDeadLetterQueue") == 0


def test_given_a_dead_letter_whose_execution_a_live_run_holds_then_the_run_keeps_it(system, hook):
    import deadletter_logic

    # Given a dead-lettered message whose execution a run claimed a moment ago (a duplicate delivery, say)
    execution_id = accept(system, hook)
    claimed_at = _claim_now(hook["flowId"], execution_id)
    message = {"userId": hook_owner(), "flowId": hook["flowId"], "executionId": execution_id}
    # When the dead-letter consumer handles it
    assert deadletter_logic.end_dead_lettered(message, clock.utc_now()) is False
    # Then the execution stays the run's, still running under its claim
    stored = _stored_execution(hook["flowId"], execution_id)
    assert stored["status"] == "running" and stored["claimedAt"] == claimed_at


def test_given_a_dead_letter_whose_run_is_long_gone_then_it_ends_error(system, hook):
    import deadletter_logic

    # Given a dead-lettered message whose execution was claimed by a run that has since died
    execution_id = accept(system, hook)
    _claim_now(hook["flowId"], execution_id)
    message = {"userId": hook_owner(), "flowId": hook["flowId"], "executionId": execution_id}
    # When the dead-letter consumer handles it after any invocation holding that claim must have ended
    later = clock.utc_now() + deadletter_logic.LIVE_CLAIM + timedelta(seconds=1)
    assert deadletter_logic.end_dead_lettered(message, later) is True
    # Then the execution ends as error, once
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "error" and execution["errorMessage"] == deadletter_logic.DEAD_LETTER_MESSAGE
    assert deadletter_logic.end_dead_lettered(message, later) is False
    assert stats_of(system, hook["flowId"])["executionsError"] == 1


def test_given_an_executor_crash_after_claiming_then_the_sweeper_ends_it_as_timeout_after_its_deadline(
    system, hook, monkeypatch
):
    import sweeper_logic

    import bloxserver.engine

    execution_id = accept(system, hook)

    def crash(*_args, **_kwargs):
        raise Crash()

    monkeypatch.setattr(bloxserver.engine, "run_flow", crash)
    with pytest.raises(Crash):
        system.deliver()
    monkeypatch.undo()
    assert sweeper_logic.sweep(clock.utc_now()) == 0
    assert system.execution(hook["flowId"], execution_id)["status"] == "running"

    queue.send_execution({"userId": hook_owner(), "flowId": hook["flowId"], "executionId": execution_id})
    assert system.drain() == 1  # a redelivery finds the claim and does not run it again
    assert system.execution(hook["flowId"], execution_id)["status"] == "running"
    assert logs_of(system, hook["flowId"], execution_id) == []

    past_deadline = clock.utc_now() + timedelta(seconds=900 + executions.CLAIM_GRACE_SECONDS)
    assert sweeper_logic.sweep(past_deadline) == 1
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "timeout"
    assert execution["errorMessage"].startswith("Execution timed out: no result by its deadline")
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsTotal"] == 1 and stats["executionsError"] == 1
    assert sweeper_logic.sweep(past_deadline + timedelta(hours=1)) == 0


def test_given_a_bug_while_running_a_claimed_execution_then_it_ends_error_at_once_and_the_batch_goes_on(
    system, hook, monkeypatch
):
    import bloxserver.engine

    broken, fine = accept(system, hook), accept(system, hook)
    real_run_flow = bloxserver.engine.run_flow

    def run_flow(organism_yaml, input_payload, *, execution_id, **kwargs):
        if execution_id == broken:
            raise RuntimeError("a bug")
        return real_run_flow(organism_yaml, input_payload, execution_id=execution_id, **kwargs)

    monkeypatch.setattr(bloxserver.engine, "run_flow", run_flow)
    assert system.drain() == 2
    failed = system.execution(hook["flowId"], broken)
    assert (failed["status"], failed["errorMessage"]) == ("error", "Internal error while running the execution")
    assert system.execution(hook["flowId"], fine)["status"] == "success"


CALLING_OUT_YAML = """\
organism: {name: caller}
listeners:
  - name: call
    description: A request the guard refuses at once (it could have been a slow one)
    handler: http
    config: {url: "http://169.254.169.254/latest/meta-data/"}
"""


def test_given_a_quick_run_beside_one_that_waits_on_the_network_then_the_quick_ones_end_is_written_at_once(
    system, monkeypatch, loopback_allowed
):
    import threading
    import time

    from bloxserver.dal import executions as execution_store
    from tests.executions_support import slow_flow_yaml, slow_server
    from tests.support import claims_for

    pro = claims_for("user_pro", tier="pro")
    with slow_server() as slow:
        # given one batch: a quick execution, then one of a flow whose HTTP request waits on a slow upstream
        shout, waiting = system.running_flow(claims=pro), system.running_flow(pro, slow_flow_yaml(slow.server.url), "Slow")
        quick = accept(system, {"flowId": shout, "token": system.webhook(shout, pro)["webhookToken"]})
        slow_run = accept(system, {"flowId": waiting, "token": system.webhook(waiting, pro)["webhookToken"]})
        written: list[tuple[list[str], bool]] = []
        real_finish_many = execution_store.finish_many

        def finish_many(endings):
            written.append(([end.execution["id"] for end in endings], slow.released.is_set()))
            return real_finish_many(endings)

        monkeypatch.setattr(execution_store, "finish_many", finish_many)
        # when the executor runs the batch
        delivery = threading.Thread(target=system.deliver)
        delivery.start()
        give_up = time.monotonic() + 15
        while not written and time.monotonic() < give_up:
            time.sleep(0.05)
        slow.release()
        delivery.join(30)
    # then the quick one's end was written while the other still waited, not held back for the batch's end
    assert written == [([quick], False), ([slow_run], True)]
    assert system.execution(waiting, slow_run, pro)["status"] == "success"


def _lose_queued_messages():
    """What a send that never happened, or a vanished message, leaves: an empty execution queue."""
    import boto3

    from devstack.resources import queue_url

    sqs, url = boto3.client("sqs"), queue_url("ExecutionQueue")
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert messages_in("ExecutionQueue") == 0


def test_given_an_execution_whose_message_was_lost_then_the_sweeper_queues_it_again_and_it_runs(system, hook):
    import sweeper_logic

    # Given an accepted execution whose queue message is gone
    execution_id = accept(system, hook)
    _lose_queued_messages()
    # When the sweeper runs before and after the requeue delay
    soon = clock.utc_now() + timedelta(seconds=executions.REQUEUE_AFTER_SECONDS - 60)
    assert sweeper_logic.sweep(soon) == 0 and messages_in("ExecutionQueue") == 0
    after = clock.utc_now() + timedelta(seconds=executions.REQUEUE_AFTER_SECONDS + 1)
    assert sweeper_logic.sweep(after) == 0
    # Then it is queued once more, and runs once
    assert messages_in("ExecutionQueue") == 1
    assert sweeper_logic.sweep(after + timedelta(minutes=2)) == 0 and messages_in("ExecutionQueue") == 1
    system.drain()
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "success"
    assert stats_of(system, hook["flowId"])["executionsTotal"] == 1


def test_given_two_sweeps_overlapping_on_one_due_execution_then_it_is_queued_once_and_both_sweeps_finish(
    system, hook, monkeypatch
):
    import sweeper_logic

    from bloxserver.dal import executions as execution_store

    # given an execution due for requeueing, and a second sweep that read its marker before the first moved it
    execution_id = accept(system, hook)
    _lose_queued_messages()
    after = clock.utc_now() + timedelta(seconds=executions.REQUEUE_AFTER_SECONDS + 1)
    shards = range(execution_store.RUNNING_MARKER_SHARDS)
    read_by_the_second = [m for shard in shards for m in execution_store.overdue_markers(shard, clock.iso(after), 100)]
    assert sweeper_logic.sweep(after) == 0 and messages_in("ExecutionQueue") == 1
    # when the second sweep works through what it read
    shard_of = execution_store.marker_shard(execution_id)
    monkeypatch.setattr(
        execution_store, "overdue_markers", lambda shard, *_: read_by_the_second if shard == shard_of else []
    )
    assert sweeper_logic.sweep(after) == 0
    # then no second message was sent, and the run happens once
    assert messages_in("ExecutionQueue") == 1
    monkeypatch.undo()
    system.drain()
    assert system.execution(hook["flowId"], execution_id)["status"] == "success"


def test_given_a_requeued_execution_whose_message_is_lost_again_then_it_ends_timeout_at_the_queued_deadline(
    system, hook
):
    import sweeper_logic

    execution_id = accept(system, hook)
    _lose_queued_messages()
    assert sweeper_logic.sweep(clock.utc_now() + timedelta(seconds=executions.REQUEUE_AFTER_SECONDS + 1)) == 0
    _lose_queued_messages()
    just_before = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS - 60)
    assert sweeper_logic.sweep(just_before) == 0 and messages_in("ExecutionQueue") == 0
    later = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS + 1)
    assert sweeper_logic.sweep(later) == 1
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "timeout" and "never picked up" in execution["errorMessage"]


def test_given_an_execution_never_picked_up_then_the_sweeper_ends_it_after_the_queued_deadline(system, hook):
    import sweeper_logic

    execution_id = accept(system, hook)
    just_before = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS - 60)
    assert sweeper_logic.sweep(just_before) == 0
    later = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS + 1)
    assert sweeper_logic.sweep(later) == 1
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "timeout" and "never picked up" in execution["errorMessage"]
    system.drain()  # the late message finds it ended and does not run it
    assert system.execution(hook["flowId"], execution_id)["status"] == "timeout"


def test_given_a_backlog_of_overdue_executions_then_each_sweep_works_on_every_shard(system, hook, monkeypatch):
    import sweeper_logic

    from bloxserver.dal import executions as execution_store

    ids = [accept(system, hook) for _ in range(10)]  # a free trigger's burst (docs/security.md)
    shards = {execution_store.marker_shard(execution_id) for execution_id in ids}
    requeued: list[str] = []
    monkeypatch.setattr(sweeper_logic, "requeue", lambda execution: requeued.append(execution["id"]) or True)
    monkeypatch.setattr(sweeper_logic, "MAX_PER_SHARD", 1)
    monkeypatch.setattr(sweeper_logic, "MARKERS_PER_QUERY", 5)  # a query never reads past the shard's budget
    sweeper_logic.sweep(clock.utc_now() + timedelta(seconds=executions.REQUEUE_AFTER_SECONDS + 1))
    assert {execution_store.marker_shard(i) for i in requeued} == shards and len(requeued) == len(shards)


def test_given_too_little_time_left_in_the_invocation_then_the_message_goes_back_unclaimed(system, hook):
    execution_id = accept(system, hook)
    assert system.deliver(timeout_seconds=20) == 1
    assert system.execution(hook["flowId"], execution_id)["status"] == "running"
    assert messages_in("ExecutionQueue") == 1
    system.drain()
    assert system.execution(hook["flowId"], execution_id)["status"] == "success"


def test_given_a_malformed_message_then_it_is_dropped_and_the_batch_continues(system, hook):
    import boto3

    from devstack.resources import queue_url

    boto3.client("sqs").send_message(QueueUrl=queue_url("ExecutionQueue"), MessageBody="not json")
    execution_id = accept(system, hook)
    system.drain()
    assert messages_in("ExecutionQueue") == 0 and messages_in("ExecutionDeadLetterQueue") == 0
    assert system.execution(hook["flowId"], execution_id)["status"] == "success"


def test_given_an_execution_then_the_executor_uses_a_bounded_number_of_round_trips(system, hook):
    accept(system, hook)
    with count_aws_calls() as calls:
        system.deliver()
    dynamodb = {name: n for name, n in calls.items() if name.startswith("dynamodb.")}
    # read execution+flow, claim, logs (4 records: one item), finish
    assert dynamodb == {
        "dynamodb.BatchGetItem": 1,
        "dynamodb.TransactWriteItems": 2,
        "dynamodb.BatchWriteItem": 1,
    }


def test_given_a_batch_of_ten_then_its_bookkeeping_is_batched_and_every_count_is_exact(system, hook):
    ids = [accept(system, hook) for _ in range(10)]
    with count_aws_calls() as calls:
        assert system.deliver() == 10
    dynamodb = {name: n for name, n in calls.items() if name.startswith("dynamodb.")}
    # one read, one claim transaction, 40 log records packed in one item per execution, one end transaction
    assert dynamodb == {
        "dynamodb.BatchGetItem": 1,
        "dynamodb.TransactWriteItems": 2,
        "dynamodb.BatchWriteItem": 1,
    }
    assert all(system.execution(hook["flowId"], execution_id)["status"] == "success" for execution_id in ids)
    assert all(len(logs_of(system, hook["flowId"], execution_id)) == 4 for execution_id in ids)
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsTotal"] == 10 and stats["executionsSuccess"] == 10 and stats["executionsError"] == 0
    assert messages_in("ExecutionQueue") == 0


def _stored_execution(flow_id, execution_id):
    from bloxserver.dal import executions as execution_store

    return execution_store.get_execution(flow_id, execution_id)


def _claim_now(flow_id, execution_id):
    """Claim the execution as a run would, now, with a marker the sweeper never reaches; returns claimedAt."""
    from bloxserver.dal import executions as execution_store

    claimed_at, marker_deadline = clock.now_iso(), "9999-01-01T00:00:00.000000Z"
    stored = _stored_execution(flow_id, execution_id)
    assert execution_store.claim(stored, claimed_at, f"{marker_deadline}#{execution_id}", marker_deadline)
    return claimed_at


def test_given_a_batch_with_one_execution_claimed_elsewhere_then_only_the_others_run(system, hook):
    from bloxserver.dal import executions as execution_store

    ids = [accept(system, hook) for _ in range(3)]
    taken = _stored_execution(hook["flowId"], ids[1])
    assert execution_store.claim(taken, clock.now_iso(), f"9999-01-01T00:00:00.000000Z#{ids[1]}", "9999-01-01")
    assert system.deliver() == 3
    assert messages_in("ExecutionQueue") == 0  # the lost claim is settled, not retried
    assert [system.execution(hook["flowId"], i)["status"] for i in ids] == ["success", "running", "success"]
    assert logs_of(system, hook["flowId"], ids[1]) == []
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsTotal"] == 3 and stats["executionsSuccess"] == 2


def test_given_the_sweeper_ends_one_execution_of_a_batch_mid_run_then_the_others_are_still_recorded(
    system, hook, monkeypatch
):
    import bloxserver.engine

    ids = [accept(system, hook) for _ in range(3)]
    real_run_flow = bloxserver.engine.run_flow

    def run_flow(*args, **kwargs):
        result = real_run_flow(*args, **kwargs)
        if kwargs["execution_id"] == ids[1]:  # the sweeper gets there first
            executions.end_execution(_stored_execution(hook["flowId"], ids[1]), "timeout", {"errorMessage": "swept"})
        return result

    monkeypatch.setattr(bloxserver.engine, "run_flow", run_flow)
    assert system.deliver() == 3
    assert messages_in("ExecutionQueue") == 0
    assert [system.execution(hook["flowId"], i)["status"] for i in ids] == ["success", "timeout", "success"]
    assert system.execution(hook["flowId"], ids[1])["errorMessage"] == "swept"
    stats = stats_of(system, hook["flowId"])
    assert stats["executionsTotal"] == 3 and stats["executionsSuccess"] == 2 and stats["executionsError"] == 1


def test_given_a_batch_mixing_a_stopped_flow_and_a_running_one_then_each_ends_as_its_flow_says(system, hook):
    from tests.support import BOB

    stopped_id = accept(system, hook)
    bob_flow = system.running_flow(claims=BOB)
    bob_hook = {"flowId": bob_flow, "token": system.webhook(bob_flow, claims=BOB)["webhookToken"]}
    running_id = accept(system, bob_hook)
    system.stop_flow(hook["flowId"])
    assert system.deliver() == 2
    stopped = system.execution(hook["flowId"], stopped_id)
    assert stopped["status"] == "error" and stopped["errorMessage"] == "Flow stopped before the execution started"
    assert system.execution(bob_flow, running_id, claims=BOB)["status"] == "success"
    assert stats_of(system, hook["flowId"])["executionsError"] == 1


def _stop(system, flow_id):
    system.stop_flow(flow_id)


def _delete(system, flow_id):
    assert call(system.flows, "DELETE", f"/api/v1/flows/{flow_id}", claims=ALICE).status == 204


def _stop_edit_and_start(system, flow_id):
    system.stop_flow(flow_id)
    edited = {"organismYaml": CALLING_OUT_YAML}
    assert call(system.flows, "PATCH", f"/api/v1/flows/{flow_id}", body=edited, claims=ALICE).status == 200
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=ALICE).status == 200


@pytest.mark.parametrize("change", [_stop, _delete, _stop_edit_and_start])
def test_given_the_flow_changes_during_a_batchs_first_run_then_its_waiting_runs_do_not_start(
    system, hook, monkeypatch, change
):
    import bloxserver.engine
    import executor_logic

    # given a batch of three executions of one flow, and a stop, delete or edit while the first one runs
    ids = [accept(system, hook) for _ in range(3)]
    monkeypatch.setattr(executor_logic, "FLOW_REREAD_AFTER_SECONDS", 0.0)  # the first run took longer than that
    real_run_flow = bloxserver.engine.run_flow
    ran: list[str] = []

    def run_flow(organism_yaml, input_payload, *, execution_id, **kwargs):
        ran.append(execution_id)
        if execution_id == ids[0]:
            change(system, hook["flowId"])
        return real_run_flow(organism_yaml, input_payload, execution_id=execution_id, **kwargs)

    monkeypatch.setattr(bloxserver.engine, "run_flow", run_flow)
    # when the executor runs the batch
    assert system.deliver() == 3
    # then only the first one ran; the others ended as runs of a stopped flow, none with the old YAML
    assert ran == ids[:1]
    if change is not _delete:
        first, *waiting = (system.execution(hook["flowId"], execution_id) for execution_id in ids)
        assert first["status"] == "success"
        assert [(e["status"], e["errorMessage"]) for e in waiting] == [
            ("error", "Flow stopped before the execution started")
        ] * 2


def test_given_the_flow_cannot_be_read_again_then_the_batch_runs_on_its_first_read(system, hook, monkeypatch):
    import executor_logic

    from bloxserver.dal import flows as flow_store

    ids = [accept(system, hook) for _ in range(2)]
    monkeypatch.setattr(executor_logic, "FLOW_REREAD_AFTER_SECONDS", 0.0)

    def unreachable(*_):
        raise ConnectionError("DynamoDB unreachable")

    monkeypatch.setattr(flow_store, "get_flow", unreachable)
    assert system.deliver() == 2
    assert [system.execution(hook["flowId"], i)["status"] for i in ids] == ["success", "success"]


def test_given_the_time_left_runs_out_mid_batch_then_the_unrun_claims_are_released_and_run_on_redelivery(
    system, hook
):
    import executor_logic

    import sweeper_logic

    ids = [accept(system, hook) for _ in range(2)]
    messages = [{"userId": hook_owner(), "flowId": hook["flowId"], "executionId": i} for i in ids]
    times = iter([900.0, 900.0, 20.0])  # claim, first run, second run
    assert executor_logic.process(messages, lambda: next(times)) == {1}
    assert system.execution(hook["flowId"], ids[0])["status"] == "success"
    released = _stored_execution(hook["flowId"], ids[1])
    assert released["status"] == "running" and "claimedAt" not in released
    # its queued marker is back: the sweeper leaves it alone until the queued deadline
    past_claim = clock.utc_now() + timedelta(seconds=900 + executions.CLAIM_GRACE_SECONDS + 1)
    assert sweeper_logic.sweep(past_claim) == 0
    assert executor_logic.process(messages[1:], lambda: 900.0) == set()
    assert system.execution(hook["flowId"], ids[1])["status"] == "success"
    assert stats_of(system, hook["flowId"])["executionsSuccess"] == 2


def test_given_a_claim_that_cannot_be_released_then_its_execution_is_not_marked_as_run(system, hook, monkeypatch):
    import executor_logic

    from bloxserver.dal import executions as execution_store

    ids = [accept(system, hook) for _ in range(2)]
    messages = [{"userId": hook_owner(), "flowId": hook["flowId"], "executionId": i} for i in ids]
    times = iter([900.0, 900.0, 20.0])  # claim, first run, second run

    def unreachable(*_):
        raise ConnectionError("DynamoDB unreachable")

    monkeypatch.setattr(execution_store, "release_claim", unreachable)
    assert executor_logic.process(messages, lambda: next(times)) == {1}
    unrun = _stored_execution(hook["flowId"], ids[1])
    # still running under its claim (the sweeper ends it at the claim's deadline), not ended as if it had run
    assert unrun["status"] == "running" and "errorMessage" not in unrun
    assert system.execution(hook["flowId"], ids[0])["status"] == "success"


def test_given_more_log_records_than_the_cap_then_the_log_keeps_its_start_a_truncation_note_and_how_it_ended():
    from datetime import UTC, datetime

    import executor_logic

    from bloxserver.engine import EngineLog

    records = [EngineLog(datetime.now(UTC), "info", f"step {i}", {"executionId": "e", "listener": "l"}) for i in range(248)]
    records.append(EngineLog(datetime.now(UTC), "error", "max_iterations (247) exceeded", {"executionId": "e", "listener": "l"}))
    records.append(EngineLog(datetime.now(UTC), "info", "execution finished: error", {"executionId": "e", "listener": None}))

    items = executor_logic.log_items(records)

    assert len(items) == executor_logic.MAX_LOG_RECORDS
    assert [item["message"] for item in items[-4:]] == [
        "step 196",
        "log truncated: 51 of 250 records not stored",
        "max_iterations (247) exceeded",
        "execution finished: error",
    ]
    assert items[-2]["level"] == "error"


def test_given_a_schedule_firing_then_one_schedule_execution_even_when_the_scheduler_retries(system, hook):
    event = schedule_firing(hook, "a1b2c3d4-scheduler-execution")
    first = fire(system, event)
    again = fire(system, event)
    assert first["status"] == "accepted" and again == first
    execution = system.execution(hook["flowId"], first["executionId"])
    assert execution["triggerType"] == "schedule" and execution["triggerId"] == hook["triggerId"]
    assert json.loads(execution["inputPayload"]) == {"scheduledTime": "2026-11-28T09:00:00Z"}
    assert messages_in("ExecutionQueue") == 1


def test_given_a_schedule_firing_for_a_stopped_or_deleted_flow_then_nothing_is_recorded(system, hook):
    event = schedule_firing(hook, "x")
    system.stop_flow(hook["flowId"])
    assert fire(system, event)["status"] == "skipped"
    assert call(system.flows, "DELETE", f"/api/v1/flows/{hook['flowId']}", claims=ALICE).status == 204
    assert fire(system, {**event, "executionId": "y"})["status"] == "skipped"
    assert fire(system, {"flowId": "not-a-uuid"})["status"] == "skipped"
    assert messages_in("ExecutionQueue") == 0


def test_given_a_deleted_flow_then_its_executions_and_logs_are_gone_and_the_sweeper_drops_their_markers(system, hook):
    import sweeper_logic

    finished = accept(system, hook)
    system.drain()
    accept(system, hook)  # still queued when the flow goes
    assert call(system.flows, "DELETE", f"/api/v1/flows/{hook['flowId']}", claims=ALICE).status == 204
    from bloxserver import keys
    from bloxserver.dal.table import partition_keys

    assert partition_keys(keys.flow_pk(hook["flowId"])) == []
    assert partition_keys(keys.flow_logs_pk(hook["flowId"])) == []
    later = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS + 1)
    assert sweeper_logic.sweep(later) == 0
    assert all(partition_keys(keys.running_marker_pk(shard)) == [] for shard in range(4))
    assert finished


def test_the_lifecycle_timings_match_the_template():
    resources = load_template()["Resources"]
    queue_props = resources["ExecutionQueue"]["Properties"]
    assert resources["ExecutorFunction"]["Properties"]["Timeout"] == executions.EXECUTOR_TIMEOUT_SECONDS
    assert queue_props["VisibilityTimeout"] == executions.QUEUE_VISIBILITY_TIMEOUT_SECONDS
    assert queue_props["RedrivePolicy"]["maxReceiveCount"] == executions.QUEUE_MAX_RECEIVES


LOGGING_SHOUT_YAML = "log_payloads: true\n" + __import__("tests.support", fromlist=["SHOUT_YAML"]).SHOUT_YAML


def test_given_a_logged_payload_too_big_for_an_item_then_its_logs_and_the_batchs_other_logs_are_still_stored(system):
    # Given a flow that logs its payloads, fed a large non-ASCII input (escaped 6 bytes a character in the metadata
    # JSON, past DynamoDB's 400 KB item size), queued in one batch with an ordinary execution
    flow_id = system.running_flow(organism_yaml=LOGGING_SHOUT_YAML)
    hook = {"flowId": flow_id, "token": system.webhook(flow_id)["webhookToken"]}
    big_id = accept(system, hook, body=json.dumps({"name": "é" * 120_000}, ensure_ascii=False))
    small_id = accept(system, hook)
    # When the executor runs the batch
    assert system.deliver() == 2
    # Then both executions ended, and every log record of both is stored, the oversized metadata cut down
    assert system.execution(flow_id, small_id)["status"] == "success"
    assert system.execution(flow_id, big_id)["status"] == "error"  # its output is over the cap
    small_logs = logs_of(system, flow_id, small_id)
    assert small_logs[0]["message"] == "execution finished: success"
    big_logs = logs_of(system, flow_id, big_id)
    assert [entry["message"] for entry in big_logs[:2]] == ["Output exceeds 131072 bytes", "execution finished: success"]
    assert big_logs[-1]["message"].startswith("execution started")
    assert all(entry["metadata"]["executionId"] == big_id for entry in big_logs)
    assert any(entry["metadata"].get("metadataTruncated") for entry in big_logs)


def test_given_an_engine_error_message_too_big_for_the_item_then_the_execution_still_ends_error(
    system, hook, monkeypatch
):
    import bloxserver.engine
    from bloxserver.engine import EngineResult

    # Given a large input and an engine error quoting it (e.g. "invalid URL '<url rendered from the input>'")
    big = "x" * 250_000
    execution_id = accept(system, hook, body=json.dumps({"name": big}))
    monkeypatch.setattr(
        bloxserver.engine, "run_flow", lambda *_a, **_k: EngineResult("error", None, f"invalid URL 'http://h/{big}'", [])
    )
    # When the executor runs it
    assert system.deliver() == 1
    # Then it ends error (not left running for the sweeper), its message cut to fit, and the message is settled
    execution = system.execution(hook["flowId"], execution_id)
    assert execution["status"] == "error"
    assert execution["errorMessage"].startswith("invalid URL 'http://h/xxx")
    assert len(execution["errorMessage"]) < len(big)
    assert messages_in("ExecutionQueue") == 0
    assert stats_of(system, hook["flowId"])["executionsError"] == 1


def test_given_an_executor_claims_an_execution_while_the_sweeper_ends_it_then_the_claimed_run_is_not_timed_out(
    system, hook, monkeypatch
):
    import sweeper_logic

    from bloxserver.dal import executions as execution_store

    # Given an unclaimed execution past its queued deadline, claimed by a late delivery right after the sweeper read it
    execution_id = accept(system, hook)
    real_get = execution_store.get_execution
    claimed_at = clock.now_iso()

    def read_then_claimed(flow_id, eid):
        seen = real_get(flow_id, eid)
        marker = f"9999-01-01T00:00:00.000000Z#{eid}"
        assert execution_store.claim(seen, claimed_at, marker, "9999-01-01T00:00:00.000000Z")
        return seen

    monkeypatch.setattr(execution_store, "get_execution", read_then_claimed)
    later = clock.utc_now() + timedelta(seconds=executions.QUEUED_DEADLINE_SECONDS + 1)
    # When the sweeper ends what it read as never picked up
    ended = sweeper_logic.sweep(later)
    monkeypatch.undo()
    # Then the claimed run is left to its executor: still running under its claim
    assert ended == 0
    stored = _stored_execution(hook["flowId"], execution_id)
    assert stored["status"] == "running" and stored["claimedAt"] == claimed_at
