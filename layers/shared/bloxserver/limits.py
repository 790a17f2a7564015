"""The tier limits table: the one place that says what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass

from bloxserver.contract import Tier

MB = 1024 * 1024


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
    ),
    Tier.PAID: TierLimits(
        flows=10,
        executions_per_month=10_000,
        wasm_modules=0,
        project_memory_bytes=10 * MB,
        secrets=50,
        webhook_rate_ceiling=WebhookRate(per_second=10, burst=50),
    ),
    Tier.PRO: TierLimits(
        flows=None,
        executions_per_month=100_000,
        wasm_modules=10,
        project_memory_bytes=100 * MB,
        secrets=200,
        webhook_rate_ceiling=WebhookRate(per_second=50, burst=200),
    ),
    Tier.ENTERPRISE: TierLimits(
        flows=None,
        executions_per_month=1_000_000,
        wasm_modules=None,
        project_memory_bytes=1024 * MB,
        secrets=1000,
        webhook_rate_ceiling=WebhookRate(per_second=200, burst=1000),
    ),
}


def limits_for(tier: Tier) -> TierLimits:
    return TIER_LIMITS[tier]


def stored_tier(profile: dict | None) -> Tier:
    """The tier on a stored profile item; a missing or unknown one is free."""
    value = (profile or {}).get("tier")
    return Tier(value) if value in Tier._value2member_map_ else Tier.FREE


def webhook_rate(configured: WebhookRate | None, tier: Tier) -> WebhookRate:
    """The bucket a delivery is held to: the trigger's config.rate_limit (or the default), each number lowered to
    the owner's current tier ceiling (a tier can drop after the trigger was made)."""
    wanted = configured or DEFAULT_WEBHOOK_RATE
    ceiling = TIER_LIMITS[tier].webhook_rate_ceiling
    return WebhookRate(min(wanted.per_second, ceiling.per_second), min(wanted.burst, ceiling.burst))
