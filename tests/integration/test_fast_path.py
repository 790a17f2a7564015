"""The fast path (docs/executions.md, "The fast path"): quick flows run at the door and their start's one transaction
records them ended. The same flows run both ways record the same execution, counters, usage and logs; a refused
start discards the run; anything else takes the queue path. Counts of AWS calls, never times."""

from __future__ import annotations

import json
import uuid

import pytest

from bloxserver import clock, keys
from bloxserver.auth import user_id_for
from bloxserver.dal.table import client, deserialize, table_name
from bloxserver.engine import REFERENCE_FLOW_INPUT, REFERENCE_FLOW_YAML
from bloxserver.settings import get_settings
from devstack.aws_calls import count_aws_calls
from devstack.events import LambdaContext
from tests.executions_support import messages_in, slow_flow_yaml
from tests.support import ALICE, SHOUT_YAML, call, claims_for

PRO = claims_for("user_fast_pat", tier="pro")  # two flows side by side need more than the free tier's one
TIMES = ("startedAt", "claimedAt", "completedAt", "durationMs")

# Fails on its input: upper() of a number.
FAILING_YAML = SHOUT_YAML


def set_budget(monkeypatch, milliseconds: int) -> None:
    monkeypatch.setenv("FAST_PATH_BUDGET_MS", str(milliseconds))
    get_settings.cache_clear()


def post(system, token, body='{"name": "ada"}', headers=None, query=None):
    return call(system.ingress, "POST", f"/webhooks/{token}", body=body, headers=headers, query=query)


def raw(pk: str, sk: str) -> dict | None:
    item = client().get_item(TableName=table_name(), Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True)
    return deserialize(item["Item"]) if "Item" in item else None


def anonymous(value, names: dict[str, str]):
    """`value` with ids replaced by their role, so two flows' records compare."""
    text = json.dumps(value, sort_keys=True, default=str)
    for real, placeholder in names.items():
        text = text.replace(real, placeholder)
    return json.loads(text)


def recorded(flow_id: str, execution_id: str, trigger_id: str) -> dict:
    """Everything one execution left: its item, its flow's day counters, its logs (times left out)."""
    names = {flow_id: "<flow>", execution_id: "<execution>", trigger_id: "<trigger>"}
    execution = raw(keys.flow_pk(flow_id), keys.execution_sk(execution_id))
    assert execution is not None
    day = raw(keys.flow_pk(flow_id), keys.flow_stats_day_sk(execution["startedAt"]))
    logs = client().query(
        TableName=table_name(),
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.flow_logs_pk(flow_id)}},
    )["Items"]
    log_items = []
    for item in map(deserialize, logs):
        records = []
        for record in json.loads(item.pop("records")):
            metadata = json.loads(record["metadataJson"])
            metadata.pop("durationMs", None)
            records.append({"level": record["level"], "message": record["message"], "metadata": metadata})
        log_items.append({**item, "records": records})
    return anonymous(
        {
            "execution": {name: value for name, value in execution.items() if name not in TIMES},
            "times": sorted(name for name in TIMES if name in execution),
            "day": {name: value for name, value in day.items() if name not in ("lastExecutedAt", "durationMsSum")},
            "logs": log_items,
        },
        names,
    )


def month_usage(claims) -> int:
    item = raw(keys.user_pk(user_id_for(claims["sub"])), keys.usage_month_sk(clock.now_iso()))
    return int(item["count"]) if item else 0


def both_ways(system, monkeypatch, organism_yaml: str, body: str) -> tuple[dict, dict]:
    """The same delivery to two running flows of the same YAML, by the queue path and by the fast path: what each
    recorded."""
    runs = {}
    for way, budget in (("queue", 0), ("door", 50)):
        set_budget(monkeypatch, budget)
        flow_id = system.running_flow(claims=PRO, organism_yaml=organism_yaml, name=way)
        trigger = system.webhook(flow_id, claims=PRO)
        used = month_usage(PRO)
        reply = post(system, trigger["webhookToken"], body=body)
        assert reply.status == 202, reply.body
        assert system.drain() == (1 if way == "queue" else 0)
        assert month_usage(PRO) == used + 1
        runs[way] = recorded(flow_id, reply.json["executionId"], trigger["id"])
    return runs["queue"], runs["door"]


@pytest.mark.parametrize(
    ("organism_yaml", "body", "status"),
    [
        (REFERENCE_FLOW_YAML, REFERENCE_FLOW_INPUT, "success"),
        (SHOUT_YAML, '{"name": "ada"}', "success"),
        (FAILING_YAML, '{"name": 5}', "error"),
        (SHOUT_YAML, json.dumps({"name": "x" * (128 * 1024 + 1)}), "error"),  # output over the cap
    ],
    ids=["reference flow", "shout", "an engine error", "output over 128 KB"],
)
def test_given_a_quick_flow_run_both_ways_then_the_fast_path_records_exactly_what_the_queue_path_does(
    system, monkeypatch, organism_yaml, body, status
):
    by_queue, at_the_door = both_ways(system, monkeypatch, organism_yaml, body)
    assert by_queue["execution"]["status"] == status
    assert at_the_door == by_queue


def test_given_a_warm_container_when_a_quick_flows_webhook_is_called_then_one_aws_call_and_nothing_queued(
    system, hook, fast_path
):
    assert post(system, hook["token"]).status == 202
    with count_aws_calls() as calls:
        reply = post(system, hook["token"], body='{"name": "bob"}')
    assert reply.status == 202
    assert calls == {"dynamodb.TransactWriteItems": 1}
    execution = system.execution(hook["flowId"], reply.json["executionId"])
    assert execution["status"] == "success" and json.loads(execution["outputPayload"]) == {"shout": "BOB"}
    assert messages_in("ExecutionQueue") == 0


def test_given_a_tokens_first_delivery_to_a_container_that_ran_its_flow_then_two_aws_calls(system, hook, fast_path):
    assert post(system, hook["token"]).status == 202
    second = system.webhook(hook["flowId"], name="Second")
    with count_aws_calls() as calls:
        assert post(system, second["webhookToken"]).status == 202
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}


def test_given_a_containers_first_delivery_for_a_flow_then_the_flow_is_read_once_with_the_owners_profile(
    system, hook, fast_path
):
    from bloxserver.limits import known_stored_tiers

    known_stored_tiers.forget(str(user_id_for(ALICE["sub"])))
    with count_aws_calls() as calls:
        assert post(system, hook["token"]).status == 202
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.BatchGetItem": 1, "dynamodb.TransactWriteItems": 1}


def test_given_a_flow_with_an_http_listener_then_its_execution_takes_the_queue_path(system, fast_path):
    flow_id = system.running_flow(organism_yaml=slow_flow_yaml("https://example.com"))
    trigger = system.webhook(flow_id)
    reply = post(system, trigger["webhookToken"])
    assert reply.status == 202
    assert system.execution(flow_id, reply.json["executionId"])["status"] == "running"
    assert messages_in("ExecutionQueue") == 1


def test_given_a_run_the_budget_cuts_then_it_takes_the_queue_path_and_the_executor_runs_it(
    system, hook, fast_path, monkeypatch
):
    from bloxserver import fast_path as door

    monkeypatch.setattr(door, "budget_seconds", lambda: 1e-9)  # every run at the door is cut at its first step
    reply = post(system, hook["token"])
    assert system.execution(hook["flowId"], reply.json["executionId"])["status"] == "running"
    assert system.drain() == 1
    assert system.execution(hook["flowId"], reply.json["executionId"])["status"] == "success"


def test_given_the_quota_is_used_up_then_the_run_is_discarded_and_429_writes_nothing(system, hook, fast_path):
    set_month = {
        "PK": {"S": keys.user_pk(user_id_for(ALICE["sub"]))},
        "SK": {"S": keys.usage_month_sk(clock.now_iso())},
        "count": {"N": "1000"},
    }
    client().put_item(TableName=table_name(), Item=set_month)
    reply = post(system, hook["token"])
    assert reply.status == 429 and reply.json["code"] == "quota_exceeded"
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 0
    logs = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/logs", claims=ALICE).json
    assert logs == []


def test_given_a_flow_stopped_since_the_container_ran_it_then_409_and_the_run_is_discarded(system, hook, fast_path):
    assert post(system, hook["token"]).status == 202
    system.stop_flow(hook["flowId"])
    assert post(system, hook["token"]).status == 409
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 1


def test_given_a_regenerated_token_then_the_old_one_is_404_and_writes_nothing(system, hook, fast_path):
    assert post(system, hook["token"]).status == 202
    path = f"/api/v1/flows/{hook['flowId']}/triggers/{hook['triggerId']}/regenerate-token"
    assert call(system.triggers, "POST", path, claims=ALICE).status == 200
    assert post(system, hook["token"]).status == 404
    listing = call(system.executions, "GET", f"/api/v1/flows/{hook['flowId']}/executions", claims=ALICE).json
    assert listing["total"] == 1


def test_given_the_flow_was_edited_since_the_container_ran_it_then_the_new_yaml_runs_after_one_cancelled_transaction(
    system, hook, fast_path
):
    assert post(system, hook["token"]).status == 202
    system.stop_flow(hook["flowId"])
    edited = SHOUT_YAML.replace("{shout: upper(name)}", "{whisper: lower(name)}")
    assert call(system.flows, "PATCH", f"/api/v1/flows/{hook['flowId']}", body={"organismYaml": edited}, claims=ALICE).status == 200
    assert call(system.flows, "POST", f"/api/v1/flows/{hook['flowId']}/start", claims=ALICE).status == 200
    with count_aws_calls() as calls:
        reply = post(system, hook["token"], body='{"name": "ADA"}', headers={"Prefer": "wait=5"})
    assert reply.status == 200 and reply.json["output"] == {"whisper": "ada"}
    assert calls == {"dynamodb.TransactWriteItems": 2}


def test_given_a_quick_flow_when_run_manually_then_201_with_the_ended_execution_in_one_call(system, hook, fast_path):
    path = f"/api/v1/flows/{hook['flowId']}/executions/run"
    assert call(system.executions, "POST", path, body={"name": "ada"}, claims=ALICE).status == 201
    with count_aws_calls() as calls:
        reply = call(system.executions, "POST", path, body={"name": "bob"}, claims=ALICE)
    assert reply.status == 201
    assert reply.json["status"] == "success" and json.loads(reply.json["outputPayload"]) == {"shout": "BOB"}
    assert calls == {"dynamodb.TransactWriteItems": 1}
    assert reply.json == system.execution(hook["flowId"], reply.json["id"])


def test_given_a_quick_flow_when_its_schedule_fires_then_the_execution_is_recorded_ended(system, hook, fast_path):
    event = {
        "userId": str(user_id_for(ALICE["sub"])),
        "flowId": hook["flowId"],
        "triggerId": hook["triggerId"],
        "scheduledTime": "2026-11-28T09:00:00Z",
        "executionId": str(uuid.uuid4()),
    }
    answer = system.schedule(event, LambdaContext("ScheduleFunction"))
    assert answer["status"] == "accepted"
    execution = system.execution(hook["flowId"], answer["executionId"])
    # SHOUT's upper(name) fails on a firing's input ({"scheduledTime"}): ended all the same, as the executor ends it
    assert execution["status"] == "error" and execution["completedAt"] is not None
    assert execution["triggerType"] == "schedule"
    assert messages_in("ExecutionQueue") == 0


def test_given_a_wasm_listener_granted_no_capabilities_then_it_runs_at_the_door(system, modules, fast_path):
    from tests.integration.test_modules_api import module_flow, uploaded
    from tests.wasm_modules import ECHO

    owner = claims_for("user_fast_wasm", tier="pro")
    module = uploaded(modules, ECHO, claims=owner)
    flow_id = system.running_flow(claims=owner, organism_yaml=module_flow(module["id"]))
    token = system.webhook(flow_id, claims=owner)["webhookToken"]
    post(system, token)  # a container's first run loads the module (it may pass the budget: then it is queued)
    system.drain()
    reply = post(system, token, body='{"name": "bob"}', headers={"Prefer": "wait=5"})
    assert reply.status == 200 and reply.json["output"] == {"name": "bob"}
    assert messages_in("ExecutionQueue") == 0


def test_given_a_wasm_listener_granted_a_capability_then_its_execution_takes_the_queue_path(system, modules, fast_path):
    from tests.integration.test_modules_api import module_flow, uploaded
    from tests.wasm_modules import LOGGING

    owner = claims_for("user_fast_wasm_log", tier="pro")
    module = uploaded(modules, LOGGING, claims=owner)
    flow_id = system.running_flow(claims=owner, organism_yaml=module_flow(module["id"], "{capabilities: [log]}"))
    reply = post(system, system.webhook(flow_id, claims=owner)["webhookToken"])
    assert reply.status == 202
    assert system.execution(flow_id, reply.json["executionId"], claims=owner)["status"] == "running"
    assert messages_in("ExecutionQueue") == 1
