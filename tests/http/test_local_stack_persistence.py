"""`make dev` keeps its data: a restarted stack on the same data folder has the users, flows, triggers (their webhook
URLs and schedules still fire), executions, logs and secrets it had; a reset one starts empty (docs/local-data.md).

A module of its own: a stack resets the process's embedded AWS, so it must not run beside another module's stack.
"""

from __future__ import annotations

import time
from datetime import timedelta

import boto3

from bloxserver import clock
from devstack.gateway import LocalFunction
from devstack.persistence import LocalData
from devstack.scheduler import LocalScheduler
from devstack.server import LocalStack, start_local_stack
from devstack.template import functions
from tests.http.test_executions_end_to_end import send
from tests.support import SHOUT_YAML

WAIT_SECONDS = 30  # an upper bound for a slow machine, not a timing requirement
UNENDED = ("running",)
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLWFsZXJ0cy10ZXN0cw=="
PRO = {"sub": "user_keeper", "email": "keeper@example.com", "tier": "pro"}


def executions_when_ended(stack: LocalStack, token: str, flow_id: str, count: int, trigger_type: str | None = None) -> list[dict]:
    """The flow's executions once `count` of them (of `trigger_type`, when given) have ended and none of them is
    still running."""
    give_up = time.monotonic() + WAIT_SECONDS
    while True:
        listing = send(stack, "GET", f"/api/v1/flows/{flow_id}/executions", token)[1]
        chosen = [item for item in listing["items"] if trigger_type in (None, item["triggerType"])]
        ended = [item for item in chosen if item["status"] not in UNENDED]
        if (len(ended) >= count and len(ended) == len(chosen)) or time.monotonic() > give_up:
            return listing["items"]
        time.sleep(0.2)


def test_given_a_stack_with_data_when_restarted_on_its_folder_then_flows_webhooks_schedules_executions_and_secrets_remain(
    tmp_path,
):
    folder = tmp_path / "devdata"
    # given a flow with a webhook and a schedule, a secret, and an execution, on a stack keeping its data
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        token = stack.token(**PRO)
        flow = send(stack, "POST", "/api/v1/flows", token, {"name": "Kept", "organismYaml": SHOUT_YAML})[1]
        base = f"/api/v1/flows/{flow['id']}"
        assert send(stack, "POST", f"{base}/start", token)[0] == 200
        hook = send(stack, "POST", f"{base}/triggers", token, {"type": "webhook", "name": "in", "config": {"type": "webhook"}})[1]
        every_minute = {"type": "schedule", "cron": "* * * * *", "timezone": "UTC"}
        assert send(stack, "POST", f"{base}/triggers", token, {"type": "schedule", "name": "tick", "config": every_minute})[0] == 201
        assert send(stack, "PUT", "/api/v1/secrets/ALERT_KEY", token, {"value": SIGNING_SECRET})[0] == 200
        first = send(stack, "POST", f"/webhooks/{hook['webhookToken']}", body={"name": "ada"})[1]["executionId"]
        runs = executions_when_ended(stack, token, flow["id"], 1, "webhook")
        assert [item["status"] for item in runs if item["triggerType"] == "webhook"] == ["success"]

    # when the stack starts again on the same folder
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        token = stack.token(**PRO)
        # then the flow, its triggers, its execution and that execution's logs are there
        status, kept = send(stack, "GET", base, token)
        assert status == 200 and (kept["name"], kept["status"]) == ("Kept", "running")
        assert {trigger["type"] for trigger in send(stack, "GET", f"{base}/triggers", token)[1]} == {"webhook", "schedule"}
        # (the stack's own scheduler may have fired the every-minute schedule meanwhile: those are schedule runs)
        kept_runs = send(stack, "GET", f"{base}/executions", token)[1]["items"]
        assert [item["id"] for item in kept_runs if item["triggerType"] == "webhook"] == [first]
        logs = send(stack, "GET", f"{base}/logs?execution_id={first}", token)[1]
        assert logs[0]["message"] == "execution finished: success"
        # and the secret still decrypts: alerts naming it are accepted
        alerts = {"on": ["timeout"], "url": "https://alerts.example.com/hook", "secret": "secret('ALERT_KEY')"}
        assert send(stack, "PATCH", base, token, {"alerts": alerts})[0] == 200

        # and the same webhook URL starts a run that the executor runs
        status, accepted = send(stack, "POST", f"/webhooks/{hook['webhookToken']}", body={"name": "grace"})
        assert status == 202
        # and the schedule fires (the stack's scheduler, with its clock moved past the next minute)
        schedule = LocalFunction(functions()["ScheduleFunction"])
        scheduler = LocalScheduler(
            stack.resource_refs["ScheduleGroup"], lambda _arn, event: schedule.invoke(event), boto3.client("scheduler")
        )
        scheduler.tick()
        scheduler.clock = lambda: clock.utc_now() + timedelta(minutes=1, seconds=1)
        assert len(scheduler.tick()) == 1

        executions_when_ended(stack, token, flow["id"], 2, "webhook")
        items = {item["id"]: item for item in executions_when_ended(stack, token, flow["id"], 1, "schedule")}
        assert items[accepted["executionId"]]["status"] == "success"
        scheduled = [item for item in items.values() if item["triggerType"] == "schedule"]
        # ran (the shout needs a name, which a schedule's input lacks), once or more if the stack's own scheduler
        # also reached a minute's turn
        assert scheduled and {item["status"] for item in scheduled} == {"error"}


def test_given_kept_data_when_reset_then_the_stack_starts_empty_and_keeps_what_follows(tmp_path):
    folder = tmp_path / "devdata"
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        token = stack.token(**PRO)
        assert send(stack, "POST", "/api/v1/flows", token, {"name": "Old", "organismYaml": SHOUT_YAML})[0] == 201

    LocalData(folder).reset()  # what `make dev-reset` (python -m devstack --reset) does before starting
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        token = stack.token(**PRO)
        assert stack.replayed == 0
        assert send(stack, "GET", "/api/v1/flows", token)[1]["total"] == 0
        assert send(stack, "POST", "/api/v1/flows", token, {"name": "New", "organismYaml": SHOUT_YAML})[0] == 201

    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        listing = send(stack, "GET", "/api/v1/flows", stack.token(**PRO))[1]
        assert [item["name"] for item in listing["items"]] == ["New"]


def test_given_no_data_folder_then_the_stack_keeps_nothing(tmp_path):
    with start_local_stack(port=0, key_path=tmp_path / "key.pem") as stack:
        token = stack.token(**PRO)
        assert send(stack, "POST", "/api/v1/flows", token, {"name": "Gone", "organismYaml": SHOUT_YAML})[0] == 201
    with start_local_stack(port=0, key_path=tmp_path / "key.pem") as stack:
        assert send(stack, "GET", "/api/v1/flows", stack.token(**PRO))[1]["total"] == 0


def test_given_a_stack_stopped_without_compacting_its_recording_then_the_whole_recording_is_replayed_and_then_compacted(
    tmp_path, monkeypatch
):
    folder = tmp_path / "devdata"
    # given runs recorded by a stack that never got to compact (killed: its stop did not run)
    monkeypatch.setattr(LocalData, "compact", lambda *_: None)
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        token = stack.token(**PRO)
        flow = send(stack, "POST", "/api/v1/flows", token, {"name": "Busy", "organismYaml": SHOUT_YAML})[1]
        for name in ("first", "second", "third"):
            assert send(stack, "PATCH", f"/api/v1/flows/{flow['id']}", token, {"description": name})[0] == 200
    monkeypatch.undo()
    recorded = LocalData(folder).recording.read_text().count("\n")

    # when it starts again and stops cleanly
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        assert stack.replayed == recorded
        assert send(stack, "GET", f"/api/v1/flows/{flow['id']}", stack.token(**PRO))[1]["description"] == "third"

    # then the recording holds the data, not its history, and still gives the same flow back
    assert LocalData(folder).recording.read_text().count("\n") < recorded
    with start_local_stack(port=0, key_path=tmp_path / "key.pem", data_folder=folder) as stack:
        assert send(stack, "GET", f"/api/v1/flows/{flow['id']}", stack.token(**PRO))[1]["description"] == "third"


def test_a_reset_removes_only_the_files_it_keeps(tmp_path):
    folder = tmp_path / "devdata"
    data = LocalData(folder)
    folder.mkdir()
    data.recording.write_text("{}\n")
    data.key_material.write_text("{}")
    (folder / "notes.txt").write_text("mine")

    data.reset()

    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]
