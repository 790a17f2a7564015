"""Running one invocation's batch of queued executions: claim each once, run the engine within the time left,
record the outcomes.

The claim protocol (docs/executions.md): a delivery runs an execution only if its conditional claim wins, so a
redelivered message never runs it twice; anything that stops before the end is ended by the sweeper. The
bookkeeping of a batch is batched (one read, one claim transaction, shared log writes, one end transaction),
each execution's claim and end staying individually conditional. The runs themselves go side by side
(run_pool.py), each owner's bounded by its tier, so no owner's slow runs hold up another's.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock, keys
from bloxserver.contract import Tier
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal.users import USAGE_TOKENS
from bloxserver.executions import CLAIM_GRACE_SECONDS, ending, runs_recorded_version
from bloxserver.limits import RunLimits, run_limits_for, stored_tier
from bloxserver.observability import logger
from bloxserver.run_logs import MAX_LOG_RECORDS, log_items  # noqa: F401 - how an execution's log is stored, named here too
from bloxserver.run_results import MAX_OUTPUT_BYTES, recorded_outcome  # noqa: F401 - the output cap, named here too
from bloxserver.wasm_modules import PINNED_MODULES, OwnerModules, run_context

from live_run import LiveRun
from run_pool import RunPool

# Time kept back from the invocation's remaining time for the writes after the run.
FINISH_MARGIN_SECONDS = 15
# Below this much run time a delivery is handed back to the queue instead of starting a run bound to time out.
MIN_RUN_SECONDS = 10
# Results of a batch wait to be written together, at most this long, so a long run does not hold back the results
# of the quick ones beside it.
FLUSH_AFTER_SECONDS = 1.0
# A batch's flows are read once, before its first run. A run starting later than this after that read (waiting
# for its owner's earlier runs) reads its flow again, so a stop, a delete or an edit (which needs a stop) holds
# back the batch's runs still waiting: a stop must not let minutes of queued runs go on calling out.
FLOW_REREAD_AFTER_SECONDS = 1.0
# Runs still going this close to the invocation's end are left to the sweeper, so the results of the others are
# written in time.
ABANDON_RUNS_BEFORE_END_SECONDS = 5
STOPPED_BEFORE_START = {"errorMessage": "Flow stopped before the execution started"}


@dataclass
class _Results:
    """Outcomes waiting to be written: log records, then the endings (with the message each answers)."""

    logs: list[log_store.LogItems] = field(default_factory=list)
    endings: list[tuple[int, execution_store.Ending]] = field(default_factory=list)
    since: float | None = None

    def add(self, index: int, end: execution_store.Ending, logs: log_store.LogItems | None = None) -> None:
        if logs is not None and logs.records:
            self.logs.append(logs)
        self.endings.append((index, end))
        if self.since is None:
            self.since = time.monotonic()

    def waiting(self) -> bool:
        return self.since is not None

    def overdue(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= FLUSH_AFTER_SECONDS

    def flush(self) -> set[int]:
        """Write the logs (best effort: the outcomes matter more), then the endings; returns the indexes of the
        messages whose ending could not be written."""
        logs, endings = self.logs, self.endings
        self.logs, self.endings, self.since = [], [], None
        if logs:
            try:
                log_store.put_many(logs)
            except Exception:  # the outcome matters more than its logs: still record it
                logger.exception(
                    "Could not store the executions' logs", extra={"executionIds": [log.execution_id for log in logs]}
                )
        if not endings:
            return set()
        try:
            written = execution_store.finish_many([end for _, end in endings])
        except Exception:  # e.g. conflicts past the retries: nothing was written; try each on its own
            logger.warning("Batched end failed; ending one by one", exc_info=True)
            return self._finish_one_by_one(endings)
        for (_, end), ok in zip(endings, written):
            _report_lost_end(end, ok)
        return set()

    @staticmethod
    def _finish_one_by_one(endings: list[tuple[int, execution_store.Ending]]) -> set[int]:
        failed = set()
        for index, end in endings:
            try:
                _report_lost_end(end, execution_store.finish_many([end])[0])
            except Exception:
                logger.exception("Could not end the execution", extra={"executionId": end.execution["id"]})
                failed.add(index)
        return failed


def _report_lost_end(end: execution_store.Ending, written: bool) -> None:
    if not written and end.claimed_at is not None:
        logger.warning(
            "Execution was ended elsewhere (cancelled, or timed out by the sweeper) before the run finished",
            extra={"executionId": end.execution["id"]},
        )


def process(messages: list[dict[str, str]], remaining_seconds: Callable[[], float]) -> set[int]:
    """Run the executions `messages` name, each unless it already ran, ended or is running elsewhere. Returns the
    indexes of the messages to hand back to the queue (not started for lack of time, or not recorded)."""
    read_at = time.monotonic()
    month_sk = keys.usage_month_sk(clock.now_iso())
    executions, flows, owner_items = execution_store.get_executions_and_flows(
        [(message["userId"], message["flowId"], message["executionId"]) for message in messages],
        owner_sks=(keys.PROFILE, month_sk),
    )
    results = _Results()
    runnable: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    for index, message in enumerate(messages):
        execution_id = message["executionId"]
        execution = executions.get(execution_id)
        if execution_id in seen or execution is None or execution["status"] != "running" or execution.get("claimedAt"):
            logger.info("Execution already handled or gone", extra={"executionId": execution_id})
            continue
        seen.add(execution_id)
        flow = flows.get((message["userId"], message["flowId"]))
        # A flow stopped, edited and started again since the execution was recorded runs another version: the
        # execution's (recorded for the flow as it ran then) never runs.
        if flow is None or flow["status"] != "running" or not runs_recorded_version(execution, flow):
            results.add(index, ending(execution, "error", STOPPED_BEFORE_START, unclaimed=True))
        else:
            runnable.append((index, execution, flow))

    failed: set[int] = set()
    claimed: list[tuple[int, execution_store.Claim, dict[str, Any]]] = []
    remaining = remaining_seconds()
    abandon_at = time.monotonic() + remaining - ABANDON_RUNS_BEFORE_END_SECONDS
    if runnable and remaining - FINISH_MARGIN_SECONDS < MIN_RUN_SECONDS:
        failed.update(index for index, _, _ in runnable)  # handed back unclaimed
    elif runnable:
        now = clock.utc_now()
        claimed_at = clock.iso(now)
        # The claim lasts what the invocation can live, plus grace: past that, the sweeper ends the execution.
        marker_deadline = clock.iso(now + timedelta(seconds=remaining + CLAIM_GRACE_SECONDS))
        claims = [
            execution_store.Claim(
                execution, claimed_at, keys.running_marker_sk(marker_deadline, execution["id"]), marker_deadline
            )
            for _, execution, _ in runnable
        ]
        try:
            won = execution_store.claim_many(claims)
        except Exception:  # nothing was claimed: all go back to the queue
            logger.exception("Could not claim the executions", extra={"executionIds": list(seen)})
            won = [False] * len(claims)
            failed.update(index for index, _, _ in runnable)
        for (index, execution, flow), claim, ok in zip(runnable, claims, won):
            if ok:
                claimed.append((index, claim, flow))
            elif index not in failed:
                logger.info("Execution claimed by another delivery", extra={"executionId": execution["id"]})
    if claimed:
        owners = {
            user_id: _Owner(owner_items.get((user_id, keys.PROFILE)), owner_items.get((user_id, month_sk)))
            for user_id in {claim.execution["userId"] for _, claim, _ in claimed}
        }
        failed |= _run_side_by_side(claimed, owners, _CurrentFlows(flows, read_at), results, remaining_seconds, abandon_at)
    failed |= results.flush()
    return failed


def _run_side_by_side(
    claimed: list[tuple[int, execution_store.Claim, dict[str, Any]]],
    owners: dict[str, _Owner],
    current_flows: _CurrentFlows,
    results: _Results,
    remaining_seconds: Callable[[], float],
    abandon_at: float,
) -> set[int]:
    """Run the claimed executions at once, each owner's at most its tier's `concurrent_runs` at a time (the others
    start, in order, as its runs end), writing results that have waited FLUSH_AFTER_SECONDS; returns the indexes
    of the messages to hand back."""
    failed: set[int] = set()
    pool = RunPool(len(claimed))

    def started(index: int, claim: execution_store.Claim, flow: dict[str, Any]) -> bool:
        """Start the run, or end or hand it back without running it; False when its owner has no room yet."""
        owner = owners[claim.execution["userId"]]
        if not pool.has_room(claim.execution["userId"], owner.limits.concurrent_runs):
            return False
        if not current_flows.still_runs(claim.execution, flow):
            results.add(index, _claimed_ending(claim, "error", STOPPED_BEFORE_START))
            return True
        run_seconds = remaining_seconds() - FINISH_MARGIN_SECONDS
        if run_seconds < MIN_RUN_SECONDS:
            _release(claim)
            failed.add(index)
            return True
        pool.start(claim.execution["userId"], (index, claim), lambda: _run(claim, flow, run_seconds, owner, LiveRun(claim)))
        return True

    waiting = claimed
    try:
        while waiting or pool.busy:
            waiting = [item for item in waiting if not started(*item)]
            if not pool.busy:
                continue
            now = time.monotonic()
            if now >= abandon_at:
                logger.error("Runs still going at the invocation's end are left to the sweeper")
                break
            wait_seconds = abandon_at - now
            if results.since is not None:
                wait_seconds = min(wait_seconds, max(0.0, results.since + FLUSH_AFTER_SECONDS - now))
            for (index, claim), run in pool.finished(wait_seconds):
                try:
                    results.add(index, *run.result())
                except Exception:  # a bug of ours: end the run now rather than leave its claim for the sweeper
                    logger.exception("Execution run failed", extra={"executionId": claim.execution["id"]})
                    results.add(index, _ended_by_internal_error(claim))
            if results.overdue():
                failed |= results.flush()
    finally:
        pool.close()
    return failed


class _Owner:
    """What the batch read of an execution owner: its stored tier (its runs' ceilings; a tier can drop after a
    start) and its LLM tokens this month, shared by its runs as their token quota."""

    def __init__(self, profile: dict[str, Any] | None, month_usage: dict[str, Any] | None) -> None:
        self.tier: Tier = stored_tier(profile)
        self.limits: RunLimits = run_limits_for(self.tier)
        self.token_quota = _MonthlyTokens(
            self.tier, self.limits.llm_tokens_per_month, int((month_usage or {}).get(USAGE_TOKENS, 0))
        )


class _MonthlyTokens:
    """An owner's monthly LLM token quota as seen by this batch: what was used when the batch was read, plus what
    the owner's runs in this batch use (runs elsewhere at the same time are not seen: docs/security.md)."""

    def __init__(self, tier: Tier, limit: int, used: int) -> None:
        self.description = f"monthly LLM token quota ({limit} tokens, {tier.value} tier)"
        self._limit = limit
        self._used = used
        self._lock = threading.Lock()

    def left(self) -> int:
        with self._lock:
            return self._limit - self._used

    def spend(self, tokens: int) -> None:
        with self._lock:
            self._used += tokens


def _release(claim: execution_store.Claim) -> None:
    """Give a claimed execution back unrun (too little time left), so that its redelivery runs it."""
    try:
        released = execution_store.release_claim(claim.execution, claim)
    except Exception:  # the claim stays: the sweeper ends the execution at the claim's deadline
        logger.exception("Claim could not be released", extra={"executionId": claim.execution["id"]})
        return
    if not released:
        logger.warning("Claim could not be released", extra={"executionId": claim.execution["id"]})


class _CurrentFlows:
    """The batch's flows as last read, read again for a run that starts FLOW_REREAD_AFTER_SECONDS after the read."""

    def __init__(self, flows: dict[tuple[str, str], dict[str, Any]], read_at: float) -> None:
        self.flows: dict[tuple[str, str], dict[str, Any] | None] = dict(flows)
        self.read_at = {flow_key: read_at for flow_key in flows}  # when the read was asked for: changes since count

    def still_runs(self, execution: dict[str, Any], flow: dict[str, Any]) -> bool:
        """Whether `flow`, as read for `execution`'s claim, is still running with the same YAML."""
        flow_key = (execution["userId"], execution["flowId"])
        if time.monotonic() - self.read_at.get(flow_key, 0.0) >= FLOW_REREAD_AFTER_SECONDS:
            try:
                self.flows[flow_key] = flow_store.get_flow(UUID(flow_key[0]), UUID(flow_key[1]))
            except Exception:  # the batch's read stands: a failed re-read must not cost the batch its results
                logger.warning("Could not read the flow again", exc_info=True, extra={"flowId": flow_key[1]})
                self.flows.setdefault(flow_key, flow)
            self.read_at[flow_key] = time.monotonic()
        current = self.flows.get(flow_key)
        return (
            current is not None
            and current["status"] == "running"
            and current["organismYaml"] == flow["organismYaml"]
            and current.get(PINNED_MODULES) == flow.get(PINNED_MODULES)
        )


def _claimed_ending(
    claim: execution_store.Claim, status: str, fields: dict[str, Any], llm_tokens: int = 0
) -> execution_store.Ending:
    execution = dict(claim.execution, runningMarker=claim.marker_sk)
    return ending(execution, status, fields, claimed_at=claim.claimed_at, llm_tokens=llm_tokens)


def _ended_by_internal_error(claim: execution_store.Claim) -> execution_store.Ending:
    return _claimed_ending(claim, "error", {"errorMessage": "Internal error while running the execution"})


def _run(
    claim: execution_store.Claim, flow: dict[str, Any], run_seconds: float, owner: _Owner, live: LiveRun
) -> tuple[execution_store.Ending, log_store.LogItems]:
    """Run one claimed execution for at most `run_seconds`, within its owner's tier, its records stored as it goes
    (`live`): its ending and its log records not stored yet."""
    from bloxserver import secrets
    from bloxserver.engine import RunServices, run_flow
    from bloxserver.project_memory import EngineMemory

    execution = claim.execution
    result = run_flow(
        flow["organismYaml"],
        execution.get("inputPayload"),
        execution_id=execution["id"],
        deadline=time.monotonic() + run_seconds,
        context=run_context(flow, owner.tier.value),
        services=RunServices(
            wasm_modules=OwnerModules(execution["userId"], flow.get(PINNED_MODULES)),
            token_quota=owner.token_quota,
            # Secret names are not checked at load here (the start checked them): a run asks for the values of those
            # its flow references when it starts, and a secret deleted since ends it as error naming the secret.
            secret_values=functools.partial(secrets.secret_values, execution["userId"]),
            # The flow's project memory, enabled or not: the port makes no call until a memory listener runs, and
            # refuses then if memory is disabled.
            memory=EngineMemory(UUID(execution["userId"]), UUID(execution["flowId"])),
            cancelled=live.cancelled,
            log_progress=live.store_progress,
        ),
    )
    outcome = recorded_outcome(result, execution["id"])
    return (
        _claimed_ending(claim, outcome.status, outcome.fields, result.tokens_used),
        live.final_items(outcome.logs),
    )
