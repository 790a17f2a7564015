"""Agents: the model calls the agent's peers as tools through both providers, bounded by iterations and tokens.

Bedrock is driven through botocore's Stubber on the engine's own client; the OpenAI-compatible provider talks to
a local server speaking the chat-completions protocol.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.stub import Stubber
from engine_fakes import LocalServer, chat_completion, scripted, trickling_server

from bloxserver.engine import EngineSettings, run_flow
from bloxserver.engine.bedrock import bedrock_client
from bloxserver.engine import llm
from bloxserver.engine.llm import HTML_ERROR_PAGE, TOOL_INPUT_SCHEMA

REGION = "us-east-1"

SUPPORT_DESK = """\
organism: {name: support-desk, entry: triage}
llm: {model: test-model}
listeners:
  - name: triage
    agent: true
    description: Answers a ticket
    prompt: Use the tools, then answer in JSON.
    peers: [lookup, score]
    next: [answer]
    max_tokens: 500
  - name: lookup
    description: Finds a customer by email
    handler: transform
    config: {expression: "{customer: concat('cust-', email)}"}
  - name: score
    description: Scores urgency from a level
    handler: transform
    config: {expression: "{urgency: multiply(level, `10`)}"}
  - name: answer
    description: The reply
    handler: output
    config: {expression: "{reply: @}"}
"""

TICKET = '{"email": "ada@example.com", "text": "My order is late"}'
ADA = {"email": "ada@example.com"}


def run(yaml_text: str, settings: EngineSettings, payload: str = TICKET):
    return run_flow(yaml_text, payload, execution_id="exec-agent", deadline=time.monotonic() + 10, settings=settings)


def bedrock_settings() -> EngineSettings:
    return EngineSettings(llm_provider="bedrock", bedrock_region=REGION)


def converse_response(content: list[dict], input_tokens: int = 20, output_tokens: int = 10) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if any("toolUse" in block for block in content) else "end_turn",
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": 5},
    }


def tool_spec(name: str, description: str) -> dict:
    return {"toolSpec": {"name": name, "description": description, "inputSchema": {"json": TOOL_INPUT_SCHEMA}}}


def tool_result(tool_use_id: str, value: dict) -> dict:
    return {"toolResult": {"toolUseId": tool_use_id, "content": [{"json": value}], "status": "success"}}


TOOL_CONFIG = {
    "tools": [
        tool_spec("lookup", "Finds a customer by email"),
        tool_spec("score", "Scores urgency from a level"),
    ]
}
TOOL_USES = [
    {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"email": "ada@example.com"}}},
    {"toolUse": {"toolUseId": "t2", "name": "score", "input": {"level": 4}}},
]


def test_a_bedrock_agent_calls_two_tools_and_sends_its_answer_on():
    first_call = {
        "modelId": "test-model",
        "system": [{"text": "Use the tools, then answer in JSON."}],
        "messages": [{"role": "user", "content": [{"text": TICKET}]}],
        "inferenceConfig": {"maxTokens": 500},
        "toolConfig": TOOL_CONFIG,
    }
    second_call = {
        **first_call,
        "messages": [
            *first_call["messages"],
            {"role": "assistant", "content": [{"text": "Looking up."}, *TOOL_USES]},
            {
                "role": "user",
                "content": [
                    tool_result("t1", {"customer": "cust-ada@example.com"}),
                    tool_result("t2", {"urgency": 40}),
                ],
            },
        ],
    }
    with Stubber(bedrock_client(REGION)) as stubber:
        stubber.add_response("converse", converse_response([{"text": "Looking up."}, *TOOL_USES]), first_call)
        stubber.add_response("converse", converse_response([{"text": '{"urgency": 40, "sorry": true}'}]), second_call)
        result = run(SUPPORT_DESK, bedrock_settings())
        stubber.assert_no_pending_responses()
    assert result.status == "success", result.error
    assert json.loads(result.output) == {"reply": {"urgency": 40, "sorry": True}}
    invoked = [log.metadata["listener"] for log in result.logs if log.message.endswith("invoked")]
    assert invoked == ["triage", "lookup", "score", "answer"]
    llm_logs = [log.metadata for log in result.logs if log.message.startswith("llm call")]
    assert [(m["provider"], m["inputTokens"], m["toolCalls"]) for m in llm_logs] == [
        ("bedrock", 20, ["lookup", "score"]),
        ("bedrock", 20, []),
    ]
    assert result.logs[-1].metadata["tokensUsed"] == 60


def test_a_bedrock_error_fails_the_agent_listener():
    with Stubber(bedrock_client(REGION)) as stubber:
        stubber.add_client_error("converse", "ThrottlingException", "slow down")
        result = run(SUPPORT_DESK, bedrock_settings())
    assert result.status == "error"
    assert result.error.startswith("listener 'triage' failed: bedrock call failed")


def test_a_bedrock_error_quotes_its_code_and_the_start_of_its_message():
    with Stubber(bedrock_client(REGION)) as stubber:
        stubber.add_client_error("converse", "ValidationException", "The model is not enabled. " + "x" * 5000)
        result = run(SUPPORT_DESK, bedrock_settings())
    assert result.error.startswith("listener 'triage' failed: bedrock call failed: ValidationException: The model")
    assert len(result.error) < 400


def test_an_html_page_instead_of_bedrocks_answer_is_named_not_quoted():
    page = "<!doctype html><html><title>500 Internal Server Error</title>" + "x" * 5000 + "</html>"
    with Stubber(bedrock_client(REGION)) as stubber:
        stubber.add_client_error("converse", "500", page, http_status_code=500)
        result = run(SUPPORT_DESK, bedrock_settings())
    assert result.error == f"listener 'triage' failed: bedrock call failed: 500: {HTML_ERROR_PAGE}"


def openai_settings(server: LocalServer) -> EngineSettings:
    return EngineSettings(llm_provider="openai", openai_base_url=server.url, openai_api_key="sk-test")


def test_an_openai_compatible_agent_calls_two_tools_and_sends_its_answer_on():
    replies = scripted(
        chat_completion(None, [("c1", "lookup", ADA), ("c2", "score", {"level": 2})]),
        chat_completion("Sorry for the delay."),
    )
    with LocalServer(replies) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.status == "success", result.error
    assert json.loads(result.output) == {"reply": "Sorry for the delay."}
    first, second = server.requests
    assert first.path == "/chat/completions"
    assert first.headers["Authorization"] == "Bearer sk-test"
    body = first.json()
    assert (body["model"], body["max_tokens"]) == ("test-model", 500)
    assert body["messages"] == [
        {"role": "system", "content": "Use the tools, then answer in JSON."},
        {"role": "user", "content": TICKET},
    ]
    assert [tool["function"]["name"] for tool in body["tools"]] == ["lookup", "score"]
    assert second.json()["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps(ADA)}},
                {"id": "c2", "type": "function", "function": {"name": "score", "arguments": '{"level": 2}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"customer": "cust-ada@example.com"}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"urgency": 20}'},
    ]


def test_a_failing_tool_goes_back_to_the_model_as_an_error():
    replies = scripted(chat_completion(None, [("c1", "score", {"level": "high"})]), chat_completion("Could not score."))
    with LocalServer(replies) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert json.loads(result.output) == {"reply": "Could not score."}
    tool_message = server.requests[1].json()["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"].startswith("error: listener 'score' failed")
    assert any(log.level == "warning" and log.metadata["tool"] == "score" for log in result.logs)


def test_a_tool_the_agent_does_not_have_is_refused_to_the_model():
    replies = scripted(chat_completion(None, [("c1", "answer", {})]), chat_completion("ok"))
    with LocalServer(replies) as server:
        run(SUPPORT_DESK, openai_settings(server))
    assert server.requests[1].json()["messages"][-1]["content"] == "error: 'answer' is not one of this agent's tools"


def test_the_token_budget_stops_a_runaway_agent():
    yaml_text = "max_tokens_per_thread: 1000\n" + SUPPORT_DESK
    looping = chat_completion(None, [("c", "score", {"level": 1})], prompt_tokens=300, completion_tokens=100)
    with LocalServer(lambda request: looping) as server:
        result = run(yaml_text, openai_settings(server))
    assert result.status == "error"
    assert result.error == "token budget of 1000 tokens per execution exceeded in listener 'triage'"
    assert len(server.requests) == 3


def test_max_iterations_bounds_an_agent_that_keeps_calling_tools():
    yaml_text = "max_iterations: 6\n" + SUPPORT_DESK
    looping = chat_completion(None, [("c", "score", {"level": 1})], prompt_tokens=1, completion_tokens=1)
    with LocalServer(lambda request: looping) as server:
        result = run(yaml_text, openai_settings(server))
    assert result.status == "error"
    assert result.error.startswith("max_iterations (6) exceeded at listener")


@pytest.mark.parametrize("usage", [None, {"prompt_tokens": None, "completion_tokens": "5"}], ids=["none", "not counts"])
def test_usage_an_endpoint_does_not_report_counts_no_tokens(usage):
    reply = chat_completion("All done.")
    reply.body["usage"] = usage
    with LocalServer(lambda request: reply) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert (result.status, result.logs[-1].metadata["tokensUsed"]) == ("success", 0)


@pytest.mark.parametrize("body", [{"choices": [{"message": ["not", "an", "object"]}]}, {"choices": "none"}, [1]])
def test_a_malformed_completion_fails_the_agent_listener_clearly(body):
    from engine_fakes import Reply

    with LocalServer(lambda request: Reply(body=body)) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.error == "listener 'triage' failed: openai-compatible endpoint sent an unexpected response"


def test_an_endpoint_echoing_the_key_it_refused_never_puts_the_key_in_the_error_or_logs():
    from engine_fakes import Reply

    refusal = {"error": {"message": "Incorrect API key provided: sk-test. You can find your key at ..."}}
    with LocalServer(lambda request: Reply(status=401, body=refusal)) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.error.startswith("listener 'triage' failed: openai-compatible endpoint answered 401: ")
    assert "Incorrect API key provided: [key]." in result.error
    [failed_call] = [log for log in result.logs if log.message.startswith("llm call to openai model test-model failed")]
    assert (failed_call.level, failed_call.metadata["provider"]) == ("error", "openai")
    assert all("sk-test" not in log.message and "sk-test" not in str(log.metadata) for log in result.logs)


def test_an_html_error_page_from_the_endpoint_is_named_not_quoted():
    from engine_fakes import Reply

    page = Reply(status=502, body="<html><body><h1>502 Bad Gateway</h1></body></html>")
    with LocalServer(lambda request: page) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.error == f"listener 'triage' failed: openai-compatible endpoint answered 502: {HTML_ERROR_PAGE}"


def test_an_answer_trickling_in_is_cut_off_at_the_calls_limit(monkeypatch):
    # a byte every 0.2 s never trips httpx's per-read timeout; the call's own limit (here 1 s) must
    monkeypatch.setattr(llm, "LLM_CALL_TIMEOUT_SECONDS", 1.0)
    with trickling_server(interval=0.2) as (url, _):
        settings = EngineSettings(llm_provider="openai", openai_base_url=url, openai_api_key="sk-test")
        result = run(SUPPORT_DESK, settings)
    assert result.error == "listener 'triage' failed: the call took longer than 1 s"


@pytest.mark.parametrize("answer", ["NaN", "[1e999]", "[" * 100_000 + "]" * 100_000])
def test_an_answer_that_is_not_json_an_encoder_could_write_travels_as_text(answer):
    with LocalServer(lambda request: chat_completion(answer)) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert (result.status, json.loads(result.output)) == ("success", {"reply": answer})


def test_tool_arguments_sent_as_an_object_are_taken_as_they_are():
    reply = chat_completion(None, [("c1", "lookup", ADA)])
    reply.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = ADA
    replies = scripted(reply, chat_completion("Done."))
    with LocalServer(replies) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.status == "success", result.error


def test_an_endpoint_error_fails_the_agent_listener():
    from engine_fakes import Reply

    with LocalServer(lambda request: Reply(status=401, body={"error": "bad key"})) as server:
        result = run(SUPPORT_DESK, openai_settings(server))
    assert result.status == "error"
    assert result.error.startswith("listener 'triage' failed: openai-compatible endpoint answered 401")


@pytest.mark.parametrize("next_key", ["", "next: [answer]"])
def test_an_agents_answer_goes_to_next_or_ends_the_run(next_key):
    yaml_text = f"""\
organism: {{name: poet}}
llm: {{provider: openai, model: m}}
listeners:
  - name: poet
    agent: true
    description: Writes a line
    prompt: Write one line.
    {next_key}
  - name: answer
    description: The line, wrapped
    handler: output
    config: {{expression: "{{line: @}}"}}
"""
    with LocalServer(scripted(chat_completion("Roses are red."))) as server:
        result = run(yaml_text, EngineSettings(openai_base_url=server.url), payload="a poem please")
    assert server.requests[0].json()["messages"][1] == {"role": "user", "content": "a poem please"}
    expected = {"line": "Roses are red."} if next_key else "Roses are red."
    assert json.loads(result.output) == expected


def test_the_openai_key_can_come_from_an_ssm_parameter(aws):
    import boto3

    boto3.client("ssm").put_parameter(Name="/blox/test/openai-key", Value="sk-from-ssm", Type="SecureString")
    replies = scripted(chat_completion("done"))
    with LocalServer(replies) as server:
        settings = EngineSettings(
            llm_provider="openai", openai_base_url=server.url, openai_api_key_ssm_parameter="/blox/test/openai-key"
        )
        result = run(SUPPORT_DESK, settings)
    assert result.status == "success", result.error
    assert server.requests[0].headers["Authorization"] == "Bearer sk-from-ssm"
