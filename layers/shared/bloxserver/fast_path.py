"""The fast path (docs/executions.md, "The fast path"): a flow whose listeners are all free of side effects and
quick runs where its execution starts (the ingress, a manual run, a schedule's firing), within a small budget,
and the start's one transaction records it as ended. Anything else, or a run the budget cuts, is queued as before.

Nothing here writes: a run at the door only computes what to record, so a refused start discards it and nothing
leaks. The engine is imported only when a flow is judged or run (the ingress's cold start stays the same).
"""

from __future__ import annotations

import time
from typing import Any

from bloxserver.memory import ContainerMemory
from bloxserver.settings import get_settings

# Handlers that only compute on the message: no call out, no state, no waiting.
QUICK_HANDLERS = frozenset({"transform", "conditional", "output"})

# Verdicts by flow id and the flow item read (`updatedAt`): whether its listeners are all quick.
_verdicts: ContainerMemory[bool] = ContainerMemory()


def budget_seconds() -> float:
    """Wall time a run at the door may take; 0: the fast path is off."""
    return get_settings().fast_path_budget_ms / 1000


def is_quick(flow: dict[str, Any]) -> bool:
    """Whether every listener of the running flow is free of side effects and quick: transform, conditional and
    output, and `wasm:` modules granted no capabilities; no secrets, no agents."""
    if flow.get("status") != "running":
        return False
    verdict_key = f"{flow['id']}/{flow.get('updatedAt')}"
    verdict = _verdicts.get(verdict_key)
    if verdict is None:
        verdict = _verdicts.remember(verdict_key, _judge(flow))
    return verdict


def _judge(flow: dict[str, Any]) -> bool:
    from bloxserver.engine import OrganismError, load_organism
    from bloxserver.engine.wasm_tool import WasmTool
    from bloxserver.wasm_modules import run_context

    try:
        organism = load_organism(flow["organismYaml"], run_context(flow))
    except OrganismError:  # a running flow's YAML was valid at its start: let the executor report it
        return False
    if organism.secret_names:
        return False
    for listener in organism.listeners.values():
        spec = listener.spec
        if spec.agent:
            return False
        if spec.handler_name in QUICK_HANDLERS:
            continue
        if isinstance(listener.handler, WasmTool) and not listener.handler.capabilities:
            continue
        return False
    return True


def run_at_the_door(flow: dict[str, Any], execution: dict[str, Any], tier: str) -> Any | None:
    """Run a quick flow's execution now, within the budget: its recorded outcome (run_results.RecordedOutcome), or
    None when the budget (or the flow's own timeout) cut it: the queue path then runs it with its full time."""
    from bloxserver.engine import RunServices, run_flow
    from bloxserver.run_results import recorded_outcome
    from bloxserver.wasm_modules import PINNED_MODULES, OwnerModules, run_context

    result = run_flow(
        flow["organismYaml"],
        execution.get("inputPayload"),
        execution_id=execution["id"],
        deadline=time.monotonic() + budget_seconds(),
        context=run_context(flow, tier),
        services=RunServices(wasm_modules=OwnerModules(execution["userId"], flow.get(PINNED_MODULES))),
    )
    if result.status == "timeout":
        return None
    return recorded_outcome(result, execution["id"])
