"""What the engine knows of a flow beyond its YAML: facts about its owner that validation checks and handlers are
built with, and the services a run may use. The callers (flows, executor) read them through the DAL; the engine
never does. Loading caches per YAML text and context, so a context is small, frozen and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FlowContext:
    # The owner's tier (a bloxserver.contract.Tier value); None: the engine is used as a library, without an owner,
    # and tier ceilings are not applied.
    owner_tier: str | None = None


class TokenQuota(Protocol):
    """The LLM tokens the flow's owner may still use (its monthly quota); shared by the owner's concurrent runs."""

    # How a run stopped by it names it, e.g. "monthly LLM token quota (200000 tokens, free tier)".
    description: str

    def left(self) -> int: ...

    def spend(self, tokens: int) -> None: ...


@dataclass(frozen=True)
class RunServices:
    """What a run may use beyond its flow; None for a service: not applied (the engine as a library)."""

    token_quota: TokenQuota | None = None
