"""The tier limits table: the one place that says what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass

from bloxserver.contract import Tier

MB = 1024 * 1024


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
