"""The tier limits table: the one place that says what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bloxserver.contract import Tier
from bloxserver.errors import LimitReached

MB = 1024 * 1024
# The largest WASM module accepted, on every tier: the presigned POST's policy says so and validation checks it
# again (an S3 emulator may not enforce POST policies). Tools built with AssemblyScript or Rust weigh tens to
# hundreds of KB.
MAX_WASM_MODULE_BYTES = 10 * MB


@dataclass(frozen=True)
class TierLimits:
    flows: int | None  # None: unlimited
    executions_per_month: int
    wasm_modules: int | None  # None: unlimited
    project_memory_bytes: int  # 0: project memory not available


TIER_LIMITS: dict[Tier, TierLimits] = {
    Tier.FREE: TierLimits(flows=1, executions_per_month=1_000, wasm_modules=0, project_memory_bytes=0),
    Tier.PAID: TierLimits(flows=10, executions_per_month=10_000, wasm_modules=0, project_memory_bytes=10 * MB),
    Tier.PRO: TierLimits(flows=None, executions_per_month=100_000, wasm_modules=10, project_memory_bytes=100 * MB),
    Tier.ENTERPRISE: TierLimits(
        flows=None, executions_per_month=1_000_000, wasm_modules=None, project_memory_bytes=1024 * MB
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
