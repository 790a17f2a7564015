"""The LLM providers by name. Each provider module depends on the interface in llm.py, never the other way round,
and is imported only when an agent runs (boto3 and httpx stay out of cold starts that need neither).
"""

from __future__ import annotations

from bloxserver.engine.llm import LlmCallFailed, LlmProvider
from bloxserver.engine.settings import EngineSettings


def provider_for(name: str, settings: EngineSettings) -> LlmProvider:
    if name == "bedrock":
        from bloxserver.engine.bedrock import BedrockProvider

        return BedrockProvider.from_settings(settings)
    if name == "openai":
        from bloxserver.engine.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider.from_settings(settings)
    raise LlmCallFailed(f"unknown LLM provider {name!r}")
