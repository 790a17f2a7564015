"""LLM cost controls: each tier's ceilings on models, tokens, iterations and time, refused at validation and applied
again at run time, and every user's LLM tokens counted per day and month against a monthly quota."""

from __future__ import annotations

import json
import time

import pytest

from bloxserver.auth import user_id_for
from bloxserver.dal import users as user_store
from bloxserver.limits import run_limits_for
from tests.support import call, claims_for
from tests.unit.engine.engine_fakes import LocalServer, chat_completion

FREE = claims_for("user_free")
PRO = claims_for("user_pro", tier="pro")

GREEDY_YAML = """\
organism: {name: greedy}
max_iterations: 10000
max_tokens_per_thread: 999999999999
llm: {max_tokens: 1000000}
listeners:
  - name: ask
    description: An agent
    agent: true
    prompt: Answer.
"""

AGENT_YAML = """\
organism: {name: agent}
listeners:
  - name: ask
    description: An agent
    agent: true
    prompt: Answer.
"""


def create(flows, claims, organism_yaml) -> str:
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "F", "organismYaml": organism_yaml}, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json["id"]


def errors_of(issues) -> list[str]:
    return sorted(issue["message"] for issue in issues if issue["severity"] == "error")


def test_given_a_free_flow_over_its_tiers_ceilings_then_start_and_validate_refuse_it_naming_key_and_ceiling(flows):
    flow_id = create(flows, FREE, GREEDY_YAML)
    expected = [
        "flow.max_iterations must be at most 100 on the free tier, got 10000",
        "flow.max_tokens_per_thread must be at most 20000 on the free tier, got 999999999999",
        "llm.max_tokens must be at most 1024 on the free tier, got 1000000",
    ]
    started = call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=FREE)
    assert started.status == 422 and started.json["code"] == "invalid_flow"
    assert errors_of(started.json["details"]["issues"]) == expected
    assert {issue["code"] for issue in started.json["details"]["issues"] if issue["severity"] == "error"} == {
        "invalid_config"
    }
    validated = call(flows, "POST", f"/api/v1/flows/{flow_id}/validate", claims=FREE)
    assert validated.status == 200 and errors_of(validated.json) == expected


def test_given_the_same_flow_on_the_enterprise_tier_then_it_is_within_its_ceilings(flows):
    enterprise = claims_for("user_big", tier="enterprise")
    flow_id = create(flows, enterprise, GREEDY_YAML.replace("999999999999", "2000000").replace("1000000}", "8192}"))
    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=enterprise).status == 200


@pytest.mark.parametrize(
    ("claims", "model", "allowed"),
    [
        (FREE, "amazon.nova-lite-v1:0", True),  # the deployment's default model: every tier
        (FREE, "amazon.nova-pro-v1:0", False),
        (claims_for("user_paid", tier="paid"), "amazon.nova-pro-v1:0", False),
        (PRO, "amazon.nova-pro-v1:0", True),
        (PRO, "anthropic.claude-3-opus-20240229-v1:0", False),
    ],
)
def test_given_an_agents_model_then_only_its_providers_default_and_its_tiers_models_are_allowed(
    flows, claims, model, allowed
):
    flow_id = create(flows, claims, AGENT_YAML.replace("prompt: Answer.", f"prompt: Answer.\n    model: {model}"))
    validated = call(flows, "POST", f"/api/v1/flows/{flow_id}/validate", claims=claims)
    errors = errors_of(validated.json)
    if allowed:
        assert errors == []
    else:
        [message] = errors
        assert message.startswith(f"listener 'ask'.model '{model}' is not available on the ")
        assert "bedrock models allowed: amazon.nova-lite-v1:0" in message


def test_given_a_tier_that_dropped_after_the_start_then_the_run_ends_error_naming_the_ceiling(system):
    # Given a pro user's running flow that allows 1000 iterations, and then its stored tier drops to free
    flow_id = system.running_flow(PRO, "max_iterations: 1000\n" + AGENT_YAML.replace("agent: true", "handler: output").replace("    prompt: Answer.\n", ""))
    token = system.webhook(flow_id, PRO)["webhookToken"]
    assert user_store.record_tier(user_id_for(PRO["sub"]), "free", int(time.time()) + 60)
    # When a run of it is executed
    execution_id = call(system.ingress, "POST", f"/webhooks/{token}", body="{}").json["executionId"]
    system.drain()
    # Then it ends error, naming the free tier's ceiling
    execution = system.execution(flow_id, execution_id, PRO)
    assert execution["status"] == "error"
    assert "flow.max_iterations must be at most 100 on the free tier, got 1000" in execution["errorMessage"]


@pytest.fixture
def fake_openai(monkeypatch):
    """The deployment's LLM provider: an OpenAI-compatible endpoint on 127.0.0.1 answering every call with 10
    prompt and 5 completion tokens."""
    from bloxserver.engine import get_engine_settings

    with LocalServer(lambda _recorded: chat_completion("done", prompt_tokens=10, completion_tokens=5)) as server:
        monkeypatch.setenv("BLOX_LLM_PROVIDER", "openai")
        monkeypatch.setenv("BLOX_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("BLOX_OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("BLOX_ALLOWED_PRIVATE_CIDRS", "127.0.0.1/32")
        get_engine_settings.cache_clear()
        yield server
    get_engine_settings.cache_clear()


def run_once(system, flow_id, token, claims) -> dict:
    execution_id = call(system.ingress, "POST", f"/webhooks/{token}", body='{"name": "ada"}').json["executionId"]
    system.drain()
    return system.execution(flow_id, execution_id, claims)


def usage(system, period: str) -> dict:
    import users_handler

    reply = call(users_handler.handler, "GET", "/api/v1/me/usage", claims=FREE, query={"period": period})
    assert reply.status == 200
    return reply.json


def test_given_agent_runs_then_their_tokens_count_per_day_and_month_and_the_quota_ends_a_run_that_would_pass_it(
    system, fake_openai
):
    flow_id = system.running_flow(FREE, AGENT_YAML)
    token = system.webhook(flow_id, FREE)["webhookToken"]
    # Given one agent run (one LLM call: 15 tokens)
    first = run_once(system, flow_id, token, FREE)
    assert first["status"] == "success" and json.loads(first["outputPayload"]) == "done"
    # Then its tokens are counted for the day and the month, against the tier's monthly quota
    limit = run_limits_for("free").llm_tokens_per_month
    for period in ("day", "month"):
        assert (usage(system, period)["tokenCount"], usage(system, period)["tokenLimit"]) == (15, limit)
    # Given the month's tokens used up but 5
    _add_month_tokens(limit - 15 - 5)
    # When two more runs go (the first passes the quota with its call, the second finds none left)
    second, third = run_once(system, flow_id, token, FREE), run_once(system, flow_id, token, FREE)
    # Then both end error naming the quota, and the tokens spent are counted
    quota = f"monthly LLM token quota ({limit} tokens, free tier) reached in listener 'ask'"
    assert (second["status"], second["errorMessage"]) == ("error", quota)
    assert (third["status"], third["errorMessage"]) == ("error", quota)
    assert usage(system, "month")["tokenCount"] == limit + 10
    assert len(fake_openai.requests) == 2  # the third never called the provider
    # and the second's answer was capped at what was left of the quota
    assert fake_openai.requests[1].json()["max_tokens"] == 5


def test_given_a_run_without_llm_calls_then_no_tokens_are_counted(system):
    flow_id = system.running_flow(FREE)
    token = system.webhook(flow_id, FREE)["webhookToken"]
    assert run_once(system, flow_id, token, FREE)["status"] == "success"
    assert usage(system, "month")["tokenCount"] == 0


def _add_month_tokens(tokens: int) -> None:
    from bloxserver import clock, keys
    from bloxserver.dal.table import client, key, table_name

    client().update_item(
        TableName=table_name(),
        Key=key(keys.user_pk(user_id_for(FREE["sub"])), keys.usage_month_sk(clock.now_iso())),
        UpdateExpression="ADD tokens :tokens",
        ExpressionAttributeValues={":tokens": {"N": str(tokens)}},
    )
