"""Any OpenAI-compatible chat-completions endpoint, over httpx. The base URL and key come from the environment
(or an SSM parameter), never from the flow: a flow must not be able to send the key somewhere else.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bloxserver import jsonvalues
from bloxserver.engine.llm import (
    TOOL_INPUT_SCHEMA,
    AssistantTurn,
    LlmCallFailed,
    LlmReply,
    LlmRequest,
    ToolCall,
    ToolResults,
    Turn,
    UserText,
    error_preview,
    token_count,
)
from bloxserver.engine.settings import EngineSettings

SSM_CACHE_SECONDS = 300
def api_key(settings: EngineSettings) -> str:
    if settings.openai_api_key:
        return settings.openai_api_key
    if settings.openai_api_key_ssm_parameter:
        from aws_lambda_powertools.utilities.parameters import get_parameter

        return get_parameter(settings.openai_api_key_ssm_parameter, decrypt=True, max_age=SSM_CACHE_SECONDS)
    return ""


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _messages(system: str, turns: tuple[Turn, ...]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for turn in turns:
        if isinstance(turn, UserText):
            messages.append({"role": "user", "content": turn.text})
        elif isinstance(turn, AssistantTurn):
            calls = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input)}}
                for c in turn.tool_calls
            ]
            messages.append({"role": "assistant", "content": turn.text or None, "tool_calls": calls})
        else:
            assert isinstance(turn, ToolResults)
            messages.extend(
                {
                    "role": "tool",
                    "tool_call_id": outcome.call_id,
                    "content": f"error: {_as_text(outcome.value)}" if outcome.is_error else _as_text(outcome.value),
                }
                for outcome in turn.outcomes
            )
    return messages


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw.get("function", {})
    arguments = function.get("arguments") or "{}"
    if not isinstance(arguments, str):  # the protocol sends a JSON text; some servers send the object itself
        arguments = json.dumps(arguments)
    try:
        tool_input = jsonvalues.parse(arguments)
    except ValueError:
        tool_input = arguments  # the tool gets the model's text as is
    return ToolCall(raw.get("id", ""), function.get("name", ""), tool_input)


class OpenAICompatibleProvider:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> OpenAICompatibleProvider:
        return cls(settings.openai_base_url, api_key(settings))

    def complete(self, request: LlmRequest) -> LlmReply:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request.system, request.turns),
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tools:
            functions = [
                {"name": tool.name, "description": tool.description, "parameters": TOOL_INPUT_SCHEMA}
                for tool in request.tools
            ]
            body["tools"] = [{"type": "function", "function": function} for function in functions]
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            response = httpx.post(
                f"{self.base_url}/chat/completions",
                json=body,
                headers=headers,
                timeout=request.timeout,
                trust_env=False,
            )
        except httpx.HTTPError as exc:
            detail = error_preview(str(exc), self.key)
            raise LlmCallFailed(f"openai-compatible call failed: {type(exc).__name__}: {detail}") from exc
        if response.status_code >= 400:
            preview = error_preview(response.text, self.key)
            raise LlmCallFailed(f"openai-compatible endpoint answered {response.status_code}: {preview}")
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
            usage = payload.get("usage") or {}
            return LlmReply(
                text=message.get("content") or "",
                tool_calls=tuple(_tool_call(raw) for raw in message.get("tool_calls") or ()),
                input_tokens=token_count(usage.get("prompt_tokens")),
                output_tokens=token_count(usage.get("completion_tokens")),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LlmCallFailed("openai-compatible endpoint sent an unexpected response") from exc
