"""What the engine knows of a flow beyond its YAML: facts about its owner that validation checks and handlers are
built with (FlowContext), and what a run is given to reach the owner's resources (RunServices). The callers (flows,
executor) read them through the DAL; the engine never does. Loading caches per YAML text and context, so a context
is small, frozen and hashable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowContext:
    # The owner's tier (a bloxserver.contract.Tier value); None: the engine is used as a library, without an owner,
    # and tier ceilings are not applied.
    owner_tier: str | None = None
    # The names of the owner's secrets (never their values): a `secret('NAME')` naming another is an invalid_config.
    # None: not known here (a library use, or the executor, whose runs resolve them at their start instead).
    secret_names: frozenset[str] | None = None


@dataclass(frozen=True)
class RunServices:
    # The owner's secret values for the names asked (those the flow references), asked once when a run starts; a
    # name the owner has no secret for is left out, which ends the run as error. None: no secrets are available.
    secret_values: Callable[[frozenset[str]], Mapping[str, str]] | None = None
