"""The provider-neutral LLM conversation an agent holds, and the provider interface Bedrock and OpenAI-compatible
endpoints implement. It imports no provider: providers.py picks one (and imports boto3/httpx) when an agent runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union

from bloxserver.engine.base import ListenerFailed
from bloxserver.engine.model import LlmChoice
from bloxserver.engine.settings import EngineSettings

DEFAULT_MAX_TOKENS = 1024
# Per call, as in the original design: 60 s, or 120 s for long answers.
LLM_CALL_TIMEOUT_SECONDS = 60.0
LONG_LLM_CALL_TIMEOUT_SECONDS = 120.0
LONG_ANSWER_TOKENS = 2000

# Tools are listeners taking any JSON object; their description tells the model what to send.
TOOL_INPUT_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}


class LlmCallFailed(ListenerFailed):
    pass


# How much of a provider's error text a failure quotes: enough to say what went wrong, never a whole HTML page.
ERROR_PREVIEW_CHARS = 300
HTML_ERROR_PAGE = "an HTML error page instead of the provider's answer (is it reachable from here?)"


def error_preview(text: str, secret: str = "") -> str:
    """What a failure may quote of a provider's error text: never the key (an endpoint may echo the one it refused,
    and flow owners read their runs' errors), and a page of markup only by name."""
    if text.lstrip().startswith("<"):
        return HTML_ERROR_PAGE
    if secret:
        text = text.replace(secret, "[key]")
    return text[:ERROR_PREVIEW_CHARS]


def token_count(reported: Any) -> int:
    """A usage figure as the provider reported it; 0 when it sent none, or something that is no count."""
    return reported if isinstance(reported, int) and not isinstance(reported, bool) and reported >= 0 else 0


@dataclass(frozen=True)
class ResolvedLlm:
    provider: str
    model: str
    temperature: float | None
    max_tokens: int

    @property
    def call_timeout(self) -> float:
        return LONG_LLM_CALL_TIMEOUT_SECONDS if self.max_tokens > LONG_ANSWER_TOKENS else LLM_CALL_TIMEOUT_SECONDS


def resolve_llm_choice(settings: EngineSettings, flow: LlmChoice, listener: LlmChoice) -> ResolvedLlm:
    """The listener's choice, else the flow's `llm:` section, else the environment's defaults."""
    provider = listener.provider or flow.provider or settings.llm_provider
    default_model = settings.bedrock_model_id if provider == "bedrock" else settings.openai_model
    temperature = listener.temperature if listener.temperature is not None else flow.temperature
    return ResolvedLlm(
        provider=provider,
        model=listener.model or flow.model or default_model,
        temperature=temperature,
        max_tokens=listener.max_tokens or flow.max_tokens or DEFAULT_MAX_TOKENS,
    )


@dataclass(frozen=True)
class ToolOffer:
    name: str
    description: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: Any


@dataclass(frozen=True)
class ToolOutcome:
    call_id: str
    name: str
    value: Any
    is_error: bool


@dataclass(frozen=True)
class UserText:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    text: str
    tool_calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class ToolResults:
    outcomes: tuple[ToolOutcome, ...]


Turn = Union[UserText, AssistantTurn, ToolResults]


@dataclass(frozen=True)
class LlmRequest:
    system: str
    turns: tuple[Turn, ...]
    tools: tuple[ToolOffer, ...]
    model: str
    max_tokens: int
    temperature: float | None
    timeout: float


@dataclass(frozen=True)
class LlmReply:
    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int


class LlmProvider(Protocol):
    def complete(self, request: LlmRequest) -> LlmReply: ...
