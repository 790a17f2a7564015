"""Amazon Bedrock through the Converse API (boto3 bedrock-runtime). Credentials are the function's IAM role."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bloxserver.engine.llm import (
    TOOL_INPUT_SCHEMA,
    AssistantTurn,
    LlmCallFailed,
    LlmReply,
    LlmRequest,
    ToolCall,
    ToolOutcome,
    ToolResults,
    Turn,
    UserText,
    error_preview,
    token_count,
)
from bloxserver.engine.settings import EngineSettings


@cache
def bedrock_client(region: str | None) -> Any:
    """One client per region and process: creating boto3 clients is slow, and they are thread-safe."""
    # The engine's worker-thread deadline is authoritative; these only stop a dead connection from lingering.
    config = Config(connect_timeout=5, read_timeout=130, retries={"mode": "standard", "max_attempts": 2})
    return boto3.client("bedrock-runtime", region_name=region, config=config)


def _tool_result_content(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [{"json": value}]
    return [{"text": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}]


def _message(turn: Turn) -> dict[str, Any]:
    if isinstance(turn, UserText):
        return {"role": "user", "content": [{"text": turn.text}]}
    if isinstance(turn, AssistantTurn):
        content: list[dict[str, Any]] = [{"text": turn.text}] if turn.text else []
        content += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input}} for c in turn.tool_calls]
        return {"role": "assistant", "content": content}
    assert isinstance(turn, ToolResults)
    return {"role": "user", "content": [_tool_result(outcome) for outcome in turn.outcomes]}


def _tool_result(outcome: ToolOutcome) -> dict[str, Any]:
    return {
        "toolResult": {
            "toolUseId": outcome.call_id,
            "content": _tool_result_content(outcome.value),
            "status": "error" if outcome.is_error else "success",
        }
    }


class BedrockProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> BedrockProvider:
        return cls(bedrock_client(settings.bedrock_region))

    def complete(self, request: LlmRequest) -> LlmReply:
        inference: dict[str, Any] = {"maxTokens": request.max_tokens}
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        arguments: dict[str, Any] = {
            "modelId": request.model,
            "system": [{"text": request.system}],
            "messages": [_message(turn) for turn in request.turns],
            "inferenceConfig": inference,
        }
        if request.tools:
            specs = [
                {"name": tool.name, "description": tool.description, "inputSchema": {"json": TOOL_INPUT_SCHEMA}}
                for tool in request.tools
            ]
            arguments["toolConfig"] = {"tools": [{"toolSpec": spec} for spec in specs]}
        try:
            response = self.client.converse(**arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', 'error')}: {error_preview(str(error.get('Message', '')))}"
            raise LlmCallFailed(f"bedrock call failed: {detail}") from exc
        except BotoCoreError as exc:
            raise LlmCallFailed(f"bedrock call failed: {exc}") from exc
        content = response["output"]["message"]["content"]
        usage = response.get("usage", {})
        return LlmReply(
            text="".join(block["text"] for block in content if "text" in block),
            tool_calls=tuple(
                ToolCall(block["toolUse"]["toolUseId"], block["toolUse"]["name"], block["toolUse"].get("input", {}))
                for block in content
                if "toolUse" in block
            ),
            input_tokens=token_count(usage.get("inputTokens")),
            output_tokens=token_count(usage.get("outputTokens")),
        )
