"""The tier limits table: the one place that says what each tier may do."""

from __future__ import annotations

from dataclasses import dataclass

from typing import Any
from uuid import UUID

from bloxserver.contract import Tier
from bloxserver.memory import ContainerMemory

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
