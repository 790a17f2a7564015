"""The `llm` handler: an agent converses with its model, which may call the agent's peers as tools.

Tool calls run through the engine (each is a listener invocation with its own timeout) and their results go back
to the model, never onward. The loop ends when the model answers without calling tools; that answer goes to the
agent's `next` listeners. Every LLM call and tool call counts toward max_iterations, and tokens toward the
execution's budget, so a runaway agent stops.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bloxserver import jsonvalues
from bloxserver.engine.base import HandlerResult, ListenerFailed, config_keys
from bloxserver.engine.llm import (
    AssistantTurn,
    LlmRequest,
    ToolOffer,
    ToolOutcome,
    ToolResults,
    Turn,
    UserText,
)
from bloxserver.engine.providers import provider_for

if TYPE_CHECKING:
    from bloxserver.engine.context import FlowContext
    from bloxserver.engine.model import ListenerSpec
    from bloxserver.engine.runtime import Invocation


def final_value(text: str) -> Any:
    """The agent's answer as the message it sends on: its JSON value when the answer is JSON, else the text."""
    try:
        return jsonvalues.parse(text)
    except ValueError:  # not JSON, or JSON no encoder could write back (NaN, too deep): the text
        return text


class Agent:
    def __init__(self, spec: ListenerSpec, context: FlowContext) -> None:
        config_keys(spec, set())
        self.spec = spec

    def run(self, message: Any, invocation: Invocation) -> HandlerResult:
        choice = invocation.llm_choice
        provider = provider_for(choice.provider, invocation.settings)
        listeners = invocation.run.organism.listeners
        tools = tuple(ToolOffer(peer, listeners[peer].spec.description or peer) for peer in self.spec.peers)
        user_text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
        turns: list[Turn] = [UserText(user_text)]
        while True:
            invocation.run.count_iteration(self.spec.name)
            tokens_left = invocation.check_token_quota()
            request = LlmRequest(
                system=self.spec.prompt,
                turns=tuple(turns),
                tools=tools,
                model=choice.model,
                # An answer may not take the owner past its monthly quota by more than the prompt's tokens.
                max_tokens=choice.max_tokens if tokens_left is None else min(choice.max_tokens, tokens_left),
                temperature=choice.temperature,
                timeout=max(0.001, min(choice.call_timeout, invocation.remaining())),
            )
            try:
                # httpx's timeout bounds each read: a slow trickle of an answer is cut off at the call's limit here
                reply = invocation.call_blocking(provider.complete, request, within=choice.call_timeout)
            except ListenerFailed as failed:  # the log shows which provider and model failed, as for a success
                invocation.log(
                    "error", f"llm call to {choice.provider} model {choice.model} failed: {failed}",
                    provider=choice.provider, model=choice.model,
                )
                raise
            invocation.log(
                "info",
                f"llm call to {choice.provider} model {choice.model}",
                provider=choice.provider,
                model=choice.model,
                inputTokens=reply.input_tokens,
                outputTokens=reply.output_tokens,
                toolCalls=[call.name for call in reply.tool_calls],
            )
            invocation.spend_tokens(reply.input_tokens + reply.output_tokens)
            if not reply.tool_calls:
                return HandlerResult(final_value(reply.text))
            turns.append(AssistantTurn(reply.text, reply.tool_calls))
            outcomes = []
            for call in reply.tool_calls:
                value, is_error = invocation.invoke_tool(call.name, call.input)
                outcomes.append(ToolOutcome(call.id, call.name, value, is_error))
            turns.append(ToolResults(tuple(outcomes)))
