"""The tier limits table: the one place that says what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from typing import Any
from uuid import UUID

from bloxserver.contract import Tier
from bloxserver.errors import LimitReached
from bloxserver.memory import ContainerMemory

MB = 1024 * 1024
# The largest WASM module accepted, on every tier: the presigned POST's policy says so and validation checks it
# again (an S3 emulator may not enforce POST policies). Tools built with AssemblyScript or Rust weigh tens to
# hundreds of KB.
MAX_WASM_MODULE_BYTES = 10 * MB


@dataclass(frozen=True)
class WebhookRate:
    """A webhook trigger's token bucket: `burst` deliveries at once, refilled at `per_second`."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class TierLimits:
    flows: int | None  # None: unlimited
    executions_per_month: int
    wasm_modules: int | None  # None: unlimited
    project_memory_bytes: int  # 0: project memory not available
    secrets: int  # stored secrets per user
    webhook_rate_ceiling: WebhookRate  # the most a trigger's config.rate_limit may ask for, each number
    installs_tools: bool  # may install marketplace tools (docs/marketplace.md)


# A webhook trigger without config.rate_limit gets this, lowered to its owner's tier ceiling (docs/security.md).
DEFAULT_WEBHOOK_RATE = WebhookRate(per_second=10, burst=20)

TIER_LIMITS: dict[Tier, TierLimits] = {
    Tier.FREE: TierLimits(
        flows=1,
        executions_per_month=1_000,
        wasm_modules=0,
        project_memory_bytes=0,
        secrets=10,
        webhook_rate_ceiling=WebhookRate(per_second=1, burst=10),
        installs_tools=False,
    ),
    Tier.PAID: TierLimits(
        flows=10,
        executions_per_month=10_000,
        wasm_modules=0,
        project_memory_bytes=10 * MB,
        secrets=50,
        webhook_rate_ceiling=WebhookRate(per_second=10, burst=50),
        installs_tools=True,
    ),
    Tier.PRO: TierLimits(
        flows=None,
        executions_per_month=100_000,
        wasm_modules=10,
        project_memory_bytes=100 * MB,
        secrets=200,
        webhook_rate_ceiling=WebhookRate(per_second=50, burst=200),
        installs_tools=True,
    ),
    Tier.ENTERPRISE: TierLimits(
        flows=None,
        executions_per_month=1_000_000,
        wasm_modules=None,
        project_memory_bytes=1024 * MB,
        secrets=1000,
        webhook_rate_ceiling=WebhookRate(per_second=200, burst=1000),
        installs_tools=True,
    ),
}


def limits_for(tier: Tier) -> TierLimits:
    return TIER_LIMITS[tier]


def stored_tier(profile: dict | None) -> Tier:
    """The tier on a stored profile item; a missing or unknown one is free."""
    value = (profile or {}).get("tier")
    return Tier(value) if value in Tier._value2member_map_ else Tier.FREE


def limits_by_tier(limit_of: Callable[[TierLimits], int | None]) -> dict[str, int | None]:
    """One limit of every tier, by tier name (what the DAL's limit conditions are generated from)."""
    return {tier.value: limit_of(limits) for tier, limits in TIER_LIMITS.items()}


def limit_reached(
    noun: str, plural: str, limit_of: Callable[[TierLimits], int | None], tier_claim: Tier | None, stored: str | None
) -> LimitReached:
    """The 403 for a create refused at the limit: the token's tier when it claims one, else the tier the refusing
    condition saw stored."""
    tier = tier_claim or Tier(stored if stored in Tier._value2member_map_ else Tier.FREE.value)
    limit = limit_of(TIER_LIMITS[tier])
    return LimitReached(
        f"{noun} limit reached ({limit}). Upgrade to create more {plural}.",
        {"limit": limit, "tier": tier.value},
    )


def effective_tier(tier_claim: Tier | None, profile: dict | None) -> Tier:
    """A token's `tier` claim wins (it is as fresh as the token); otherwise the stored tier."""
    return tier_claim or stored_tier(profile)


@dataclass(frozen=True)
class RunLimits:
    """What one owner's runs may use (docs/security.md, "LLM cost controls" and "Tenancy"): the flow settings'
    ceilings (validation refuses a flow over them; the executor applies them again at run time, a tier can drop
    after a start), the LLM models it may call, its monthly LLM tokens, and how many of its runs one executor
    invocation runs at once."""

    concurrent_runs: int  # per owner and executor invocation (a batch holds up to 10 executions)
    max_iterations: int
    timeout_seconds: int  # the flow's and each listener's
    max_tokens: int  # per LLM call
    max_tokens_per_thread: int  # per execution
    llm_tokens_per_month: int
    # Models an agent may name, per provider, besides the deployment's default model of that provider (always
    # allowed). Bedrock's list is also what the executor's IAM policy names (template parameter
    # BedrockAllowedModelIds; tests/infra checks it holds every one).
    models: dict[str, tuple[str, ...]]


_SMALL_BEDROCK = ("amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "anthropic.claude-3-haiku-20240307-v1:0")
_LARGE_BEDROCK = ("amazon.nova-pro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0")
_SMALL_OPENAI = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano")
_LARGE_OPENAI = ("gpt-4o", "gpt-4.1")

RUN_LIMITS: dict[Tier, RunLimits] = {
    Tier.FREE: RunLimits(
        concurrent_runs=1, max_iterations=100, timeout_seconds=60, max_tokens=1024, max_tokens_per_thread=20_000,
        llm_tokens_per_month=200_000, models={"bedrock": (), "openai": ()},
    ),
    Tier.PAID: RunLimits(
        concurrent_runs=2, max_iterations=500, timeout_seconds=300, max_tokens=4096, max_tokens_per_thread=100_000,
        llm_tokens_per_month=2_000_000, models={"bedrock": _SMALL_BEDROCK, "openai": _SMALL_OPENAI},
    ),
    Tier.PRO: RunLimits(
        concurrent_runs=4, max_iterations=2_000, timeout_seconds=900, max_tokens=8192, max_tokens_per_thread=500_000,
        llm_tokens_per_month=20_000_000,
        models={"bedrock": _SMALL_BEDROCK + _LARGE_BEDROCK, "openai": _SMALL_OPENAI + _LARGE_OPENAI},
    ),
    Tier.ENTERPRISE: RunLimits(
        concurrent_runs=8, max_iterations=10_000, timeout_seconds=900, max_tokens=8192,
        max_tokens_per_thread=2_000_000, llm_tokens_per_month=200_000_000,
        models={"bedrock": _SMALL_BEDROCK + _LARGE_BEDROCK, "openai": _SMALL_OPENAI + _LARGE_OPENAI},
    ),
}


def run_limits_for(tier: Tier | str) -> RunLimits:
    return RUN_LIMITS[Tier(tier)]


def bedrock_models_of_every_tier() -> tuple[str, ...]:
    """Every Bedrock model some tier may name (the executor's IAM policy must allow each)."""
    return tuple(dict.fromkeys(model for limits in RUN_LIMITS.values() for model in limits.models["bedrock"]))
def webhook_rate(configured: WebhookRate | None, tier: Tier) -> WebhookRate:
    """The bucket a delivery is held to: the trigger's config.rate_limit (or the default), each number lowered to
    the owner's current tier ceiling (a tier can drop after the trigger was made)."""
    wanted = configured or DEFAULT_WEBHOOK_RATE
    ceiling = TIER_LIMITS[tier].webhook_rate_ceiling
    return WebhookRate(min(wanted.per_second, ceiling.per_second), min(wanted.burst, ceiling.burst))


# Owners' stored tiers as this container last saw them, so a limited write need not read the profile: only a guess,
# made a condition of the write's transaction (stored_tier_condition); when the tier changed the transaction is
# cancelled, returns the profile, and is written again with its tier. A tier change therefore applies at once, and a
# write never takes more round trips than reading the profile first would.
known_stored_tiers: ContainerMemory[Tier] = ContainerMemory()


def remember_stored_tier(user_id: UUID | str, profile: dict[str, Any] | None) -> Tier:
    return known_stored_tiers.remember(str(user_id), stored_tier(profile))


def stored_tier_condition(tier: Tier) -> tuple[str, dict[str, Any]]:
    """The condition on the profile item under which stored_tier reads `tier` (a missing profile reads as free, and
    so does a missing or unknown tier)."""
    if tier is Tier.FREE:
        others = [t.value for t in Tier if t is not Tier.FREE]
        names = [f":t{index}" for index in range(len(others))]
        return (
            f"attribute_not_exists(#tier) OR NOT (#tier IN ({', '.join(names)}))",
            dict(zip(names, others)),
        )
    return "#tier = :tier", {":tier": tier.value}
