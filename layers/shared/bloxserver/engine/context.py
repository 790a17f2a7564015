"""What the engine knows of a flow beyond its YAML: facts about its owner that validation checks and handlers are
built with. The callers (flows, executor) read them through the DAL; the engine never does. Loading caches per YAML
text and context, so a context is small, frozen and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowContext:
    # The owner's tier (a bloxserver.contract.Tier value); None: the engine is used as a library, without an owner,
    # and tier ceilings are not applied.
    owner_tier: str | None = None
