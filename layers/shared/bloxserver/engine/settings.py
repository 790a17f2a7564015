"""Engine settings: which LLM provider and model, where its keys live, and the outbound-network dev switch.

Read from the environment, never from the organism YAML: a flow author must not be able to choose where keys go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class EngineSettings:
    llm_provider: str = "bedrock"
    bedrock_model_id: str = "amazon.nova-lite-v1:0"
    bedrock_region: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    openai_api_key: str = field(default="", repr=False)
    openai_api_key_ssm_parameter: str = ""
    # Development only: lets the http handler reach loopback/private addresses (a local stack, tests).
    allow_private_network: bool = False
    # Development only: non-public networks the http handler may reach even when allow_private_network is off.
    allowed_private_cidrs: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> EngineSettings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            llm_provider=env.get("BLOX_LLM_PROVIDER", defaults.llm_provider).strip().lower(),
            bedrock_model_id=env.get("BLOX_BEDROCK_MODEL_ID", defaults.bedrock_model_id),
            bedrock_region=env.get("BLOX_BEDROCK_REGION") or env.get("AWS_REGION") or None,
            openai_base_url=env.get("BLOX_OPENAI_BASE_URL", defaults.openai_base_url).rstrip("/"),
            openai_model=env.get("BLOX_OPENAI_MODEL", defaults.openai_model),
            openai_api_key=env.get("BLOX_OPENAI_API_KEY", ""),
            openai_api_key_ssm_parameter=env.get("BLOX_OPENAI_API_KEY_SSM_PARAMETER", ""),
            allow_private_network=_flag(env.get("BLOX_ALLOW_PRIVATE_NETWORK")),
            allowed_private_cidrs=_csv(env.get("BLOX_ALLOWED_PRIVATE_CIDRS")),
        )


@cache
def get_engine_settings() -> EngineSettings:
    return EngineSettings.from_env()
