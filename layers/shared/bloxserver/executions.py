"""The execution lifecycle shared by every way one starts (webhook, schedule, manual) and ends (executor,
sweeper, dead letters). Rules and timings live here; DynamoDB and SQS calls live in dal/. See docs/executions.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock, fast_path, keys
from bloxserver.contract import EndReason, Tier
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal import queue
from bloxserver.dal import triggers as trigger_store
from bloxserver.errors import (
    BadRequest,
    InvalidState,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    flow_not_found,
)
from bloxserver.ids import time_ordered_uuid
from bloxserver.limits import (
    TIER_LIMITS,
    WebhookRate,
    known_stored_tiers,
    remember_stored_tier,
    stored_tier_condition,
    webhook_rate,
)
from bloxserver.memory import ContainerMemory
from bloxserver.observability import logger
from bloxserver.run_logs import log_items

RETENTION_DAYS = 30  # executions, their counters and logs are kept for the start day plus 30 full days
DELIVERY_MEMORY_SECONDS = (
    24 * 3600
)  # how long an Idempotency-Key (or Scheduler execution id) is remembered
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Must match template.yaml (tests/integration/test_executor.py checks): the executor's Timeout, the queue's
# VisibilityTimeout (6× the executor's, as AWS advises for event source mappings) and the redrive maxReceiveCount.
EXECUTOR_TIMEOUT_SECONDS = 900
QUEUE_VISIBILITY_TIMEOUT_SECONDS = 6 * EXECUTOR_TIMEOUT_SECONDS
QUEUE_MAX_RECEIVES = 3
# A queued execution nobody claimed by then was lost (never queued, or its message vanished): the sweeper ends
# it. Every delivery attempt fits before it, so a slow queue is never mistaken for a lost message.
QUEUED_DEADLINE_SECONDS = QUEUE_MAX_RECEIVES * QUEUE_VISIBILITY_TIMEOUT_SECONDS + 600
# An execution still unclaimed this long after its start is queued once more by the sweeper: its message may never
# have been sent (ingress stopped between recording and sending it) or may be gone. Claims make a duplicate
# harmless; once is enough to cover a lost send, and bounds the extra messages a long backlog can cause.
REQUEUE_AFTER_SECONDS = 600


def queued_deadline(started_at: str) -> str:
    """When an execution started at `started_at` (ISO) that nobody claimed is given up on."""
    return clock.iso(
        clock.parse_iso(started_at) + timedelta(seconds=QUEUED_DEADLINE_SECONDS)
    )


# A claimed execution whose executor is gone (crash, Lambda timeout) is ended this long after the time its
# invocation had left, which it cannot outlive.
CLAIM_GRACE_SECONDS = 60


def retention_expiry(started: datetime) -> int:
    """expiresAt (epoch seconds) of everything about an execution started at `started`: the end of its start
    day plus RETENTION_DAYS, so a whole day's counters expire with the day's executions."""
    start_of_day = started.astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return int((start_of_day + timedelta(days=RETENTION_DAYS + 1)).timestamp())


def retained_days(now: datetime) -> tuple[str, str]:
    """First and last UTC day (ISO) whose executions are still retained at `now`."""
    today = now.astimezone(UTC).date()
    return (today - timedelta(days=RETENTION_DAYS)).isoformat(), today.isoformat()


def next_month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


QUEUE_MESSAGE_FIELDS = ("userId", "flowId", "executionId")


def queue_message(execution: dict[str, Any]) -> dict[str, str]:
    """The execution queue's message body: enough to find the execution and its flow."""
    return {
        "userId": execution["userId"],
        "flowId": execution["flowId"],
        "executionId": execution["id"],
    }


def parse_queue_message(body: str) -> dict[str, str] | None:
    """A queue message's fields, or None when it is not one."""
    try:
        message = json.loads(body)
        return {name: str(message[name]) for name in QUEUE_MESSAGE_FIELDS}
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class StartRequest:
    user_id: UUID
    flow_id: UUID
    trigger_type: str
    trigger_id: UUID | None
    input_payload: str | None
    tier: Tier | None  # from the caller's token; None: the owner's stored tier applies
    delivery_scope: UUID | None = (
        None  # with delivery_key: a replay of that delivery starts nothing new
    )
    delivery_key: str | None = None
    webhook_token: str | None = (
        None  # the start also requires this token still exists (else TriggerGone)
    )
    # A webhook delivery's bucket (the trigger's config.rate_limit or the default; the token's item keeps it),
    # lowered to the owner's tier ceilings; past it, RateLimited and nothing is written. None: not throttled.
    rate_limit: WebhookRate | None = None
    # The start also requires the trigger's item still exists (else TriggerGone): a schedule may outlive its trigger.
    require_trigger: bool = False
    # A retry: the id of the ended execution of the flow it repeats (which records it as `retriedBy`, else
    # dal.executions.RetryRefused); with first_retry_only, only if nothing retried that one yet.
    retry_of: UUID | None = None
    first_retry_only: bool = False
    # The webhook token item's revision as read (dal.executions.Throttle.revision).
    webhook_revision: int = 0


def checked_idempotency_key(header: str | None) -> str | None:
    """The Idempotency-Key header's value, checked (webhook deliveries and manual runs take one)."""
    if header is None:
        return None
    if (
        not header
        or len(header) > MAX_IDEMPOTENCY_KEY_LENGTH
        or not header.isprintable()
    ):
        raise BadRequest(
            f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
            {"header.idempotency-key": "invalid"},
        )
    return header


@dataclass(frozen=True)
class StartOutcome:
    execution: dict[str, Any]
    created: bool  # False: a replayed delivery; `execution` holds only its id
    ran_at_the_door: bool = False  # the fast path: `execution` is recorded as ended, nothing was queued


def _quota_exceeded(tier: Tier, now: datetime) -> QuotaExceeded:
    limit = TIER_LIMITS[tier].executions_per_month
    reset_at = next_month_start(now)
    retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
    return QuotaExceeded(
        f"Monthly execution quota reached ({limit}); it resets at {clock.wire_iso(reset_at)}",
        {"limit": limit, "tier": tier.value, "resetAt": clock.wire_iso(reset_at)},
        headers={"Retry-After": str(retry_after)},
    )


# Each running flow as this container last saw it (what a start uses of it): the start records its version as the
# execution's flowVersion, and its transaction requires that the flow still runs that version (a stop, an edit and a
# start in between cancel it and return the flow: the start is written again with the new version); a quick flow's
# run at the door uses its YAML and pinned modules (the fast path).
_known_flows: ContainerMemory[dict[str, Any]] = ContainerMemory(1_000)
KNOWN_FLOW_FIELDS = ("id", "status", "version", "updatedAt", "organismYaml")


def _remember_flow(flow_id: UUID, flow: dict[str, Any] | None) -> dict[str, Any] | None:
    """`flow` (as read, or as a cancelled start returned it), remembered while it runs."""
    from bloxserver.wasm_modules import PINNED_MODULES  # on a first start, not at import (cold start)

    if flow is None or flow.get("status") != "running":
        # No flow, or not running: the transaction refuses the start (or answers a replayed delivery) whatever the
        # guess, so only a running flow is remembered.
        _known_flows.forget(str(flow_id))
        return flow
    fields = (*KNOWN_FLOW_FIELDS, PINNED_MODULES)
    return _known_flows.remember(str(flow_id), {name: flow[name] for name in fields if name in flow})


def flow_version(flow: dict[str, Any]) -> int:
    """A flow stored before versions existed holds version 1."""
    return int(flow.get("version", 1))


def runs_recorded_version(execution: dict[str, Any], flow: dict[str, Any]) -> bool:
    """Whether `flow` still runs the version `execution` was recorded with (one recorded before versions existed
    runs whatever runs)."""
    recorded = execution.get("flowVersion")
    return recorded is None or recorded == flow_version(flow)


def _owner_tier_and_flow(request: StartRequest) -> tuple[Tier, bool, dict[str, Any] | None]:
    """The tier to count the start against (and whether the transaction must check it is still the stored one) and
    the flow as guessed (None: no such flow), reading what this container does not know yet in one round trip at
    most."""
    tier, verify_tier = request.tier, False
    if tier is None:  # the owner's stored tier: known from an earlier start (verified in the transaction) or read
        tier = known_stored_tiers.get(str(request.user_id))
        verify_tier = tier is not None
    flow = _known_flows.get(str(request.flow_id))
    if tier is not None and flow is not None:
        return tier, verify_tier, flow
    if tier is None:
        read, profile = flow_store.get_flow_and_owner(request.user_id, request.flow_id, with_owner=True)
        tier = remember_stored_tier(request.user_id, profile)
    else:
        read, _ = flow_store.get_flow_and_owner(request.user_id, request.flow_id, with_owner=False)
    return tier, verify_tier, flow or _remember_flow(request.flow_id, read)


# Each bucket's time as this container last left it, so the start's bucket update guesses its case right: only a
# guess, checked by the update's condition (a wrong one costs one more round trip).
_known_buckets: ContainerMemory[int] = ContainerMemory()
# Rounds of a start whose guesses (tier, bucket) keep being overtaken by concurrent starts; past them, the bucket
# is taken to be full (429, retry shortly).
MAX_START_ROUNDS = 4


def _rate_limited(rate: WebhookRate, retry_after_seconds: float) -> RateLimited:
    retry_after = max(1, math.ceil(retry_after_seconds))
    return RateLimited(
        f"Webhook rate limit reached ({rate.per_second:g} per second, bursts of {rate.burst}); retry in {retry_after} s",
        {
            "perSecond": rate.per_second,
            "burst": rate.burst,
            "retryAfterSeconds": retry_after,
        },
        headers={"Retry-After": str(retry_after)},
    )


def flow_not_running(status: str) -> InvalidState:
    return InvalidState(f"Flow is {status}; start it to run executions", {"status": status})


def start_execution(request: StartRequest) -> StartOutcome:
    """Record a running execution (counted against the owner's monthly quota) and queue it.

    Raises NotFound (no such flow), InvalidState (flow not running), QuotaExceeded, ServiceUnavailable (queue
    unreachable: the execution is ended as error, so it never stays running), dal.executions.TriggerGone (the
    request's webhook_token or, with require_trigger, its trigger no longer exists; nothing was written),
    dal.executions.RetryRefused (the retry's original is gone or, with first_retry_only, was retried already).

    A quick flow (fast_path.is_quick) is run first, within the fast path's budget, and the transaction records its
    execution as ended, requiring the flow item the run read: nothing is queued."""
    tier, verify_tier, flow = _owner_tier_and_flow(request)
    started = clock.utc_now()
    execution_id = str(time_ordered_uuid(int(started.timestamp() * 1000)))
    started_at = clock.iso(started)
    requeue_at = clock.iso(started + timedelta(seconds=REQUEUE_AFTER_SECONDS))
    execution = {
        "id": execution_id,
        "flowId": str(request.flow_id),
        "userId": str(request.user_id),
        "triggerId": str(request.trigger_id) if request.trigger_id else None,
        "triggerType": request.trigger_type,
        "status": "running",
        "startedAt": started_at,
        "inputPayload": request.input_payload,
        "expiresAt": retention_expiry(started),
        "flowVersion": flow_version(flow) if flow else 0,
    }
    if request.retry_of is not None:
        execution["retryOf"] = str(request.retry_of)
    delivery = None
    if request.delivery_key is not None:
        delivery_pk = keys.delivery_idempotency_pk(
            request.delivery_scope, request.delivery_key
        )
        delivery = (delivery_pk, int(started.timestamp()) + DELIVERY_MEMORY_SECONDS)
    marker_sk = keys.running_marker_sk(requeue_at, execution_id)
    trigger_check_key = None
    if request.webhook_token:
        trigger_check_key = trigger_store.webhook_key(request.webhook_token)
    elif request.require_trigger and request.trigger_id:
        trigger_check_key = trigger_store.trigger_key(
            request.user_id, request.flow_id, request.trigger_id
        )

    now_us = int(started.timestamp() * 1_000_000)

    def throttle(tier: Tier, tat: int) -> execution_store.Throttle | None:
        if request.rate_limit is None:
            return None
        rate = webhook_rate(request.rate_limit, tier)
        interval_us = math.ceil(1_000_000 / rate.per_second)
        return execution_store.Throttle(
            trigger_store.webhook_key(request.webhook_token),
            now_us,
            interval_us,
            rate.burst,
            idle=tat < now_us,
            revision=request.webhook_revision,
        )

    runs: dict[tuple[str, Tier], execution_store.FinishedAtStart | None] = {}

    def run_at_the_door(flow: dict[str, Any] | None, tier: Tier) -> execution_store.FinishedAtStart | None:
        """The execution run now, if the fast path is on, its flow quick and the budget lets it end; once per flow
        item and tier."""
        if flow is None or fast_path.budget_seconds() <= 0 or not fast_path.is_quick(flow):
            return None
        run_key = (flow["updatedAt"], tier)
        if run_key not in runs:
            outcome = fast_path.run_at_the_door(flow, execution, tier.value)
            runs[run_key] = outcome and execution_store.FinishedAtStart(
                ending(execution, outcome.status, outcome.fields),
                log_store.LogItems(execution["flowId"], execution_id, log_items(outcome.logs), execution["expiresAt"]),
            )
        return runs[run_key]

    def record(
        tier: Tier,
        profile_condition: tuple[str, dict[str, Any]] | None,
        bucket: execution_store.Throttle | None,
    ) -> execution_store.FinishedAtStart | None:
        finished = run_at_the_door(flow, tier)
        execution_store.record_start(
            execution,
            marker_sk=marker_sk,
            deadline_iso=requeue_at,
            month_limit=TIER_LIMITS[tier].executions_per_month,
            delivery=delivery,
            now_epoch=int(started.timestamp()),
            profile_condition=profile_condition,
            trigger_check_key=None if bucket is not None else trigger_check_key,
            throttle=bucket,
            first_retry_only=request.first_retry_only,
            finished=finished,
            flow_updated_at=flow["updatedAt"] if finished is not None else None,
        )
        return finished

    profile_condition = stored_tier_condition(tier) if verify_tier else None
    tat = _known_buckets.get(request.webhook_token or "") or 0
    try:
        for _ in range(MAX_START_ROUNDS):
            bucket = throttle(tier, tat)
            try:
                finished = record(tier, profile_condition, bucket)
            except execution_store.FlowVersionChanged as changed:  # nothing was written: start the flow as it runs
                flow = _remember_flow(request.flow_id, changed.flow)
                execution["flowVersion"] = changed.version
                continue
            except (
                execution_store.ProfileChanged
            ) as changed:  # the tier changed: nothing was written, use the new one
                tier, profile_condition = (
                    remember_stored_tier(request.user_id, changed.profile),
                    None,
                )
                continue
            except (
                execution_store.Throttled
            ) as throttled:  # nothing was written: the bucket as it is now decides
                tat = throttled.tat
                if bucket is not None and tat > bucket.latest_tat_us:
                    _known_buckets.remember(request.webhook_token, tat)
                    raise _rate_limited(
                        webhook_rate(request.rate_limit, tier),
                        (tat - bucket.latest_tat_us) / 1e6,
                    )
                continue
            if bucket is not None:
                _known_buckets.remember(
                    request.webhook_token, max(tat, now_us) + bucket.interval_us
                )
            break
        else:  # only a bucket's guesses can keep failing (a changed tier is read once): it is in heavy use
            raise _rate_limited(webhook_rate(request.rate_limit, tier), 1)
    except execution_store.DeliveryAlreadyAccepted as replay:
        return StartOutcome({"id": replay.execution_id}, created=False)
    except execution_store.FlowNotRunning as refused:
        _known_flows.forget(str(request.flow_id))
        if refused.status is None:
            raise flow_not_found() from refused
        raise flow_not_running(refused.status) from refused
    except execution_store.MonthlyQuotaFull as full:
        raise _quota_exceeded(tier, started) from full
    if finished is not None:
        return StartOutcome(
            {**execution, **finished.ended_fields()},
            created=True,
            ran_at_the_door=True,
        )
    execution["runningMarker"] = marker_sk
    try:
        queue.send_execution(queue_message(execution))
    except Exception as exc:
        logger.exception(
            "Could not queue execution", extra={"executionId": execution_id}
        )
        if (
            delivery is not None
        ):  # the 503 asks for a retry: it must start anew, not replay this dead execution
            execution_store.forget_delivery(delivery[0], execution_id)
        end_execution(
            execution,
            "error",
            {"errorMessage": "Execution could not be queued"},
            unclaimed=True,
        )
        raise ServiceUnavailable("Could not queue the execution; try again") from exc
    return StartOutcome(execution, created=True)


def ending(
    execution: dict[str, Any],
    status: str,
    result: dict[str, Any],
    *,
    now: datetime | None = None,
    claimed_at: str | None = None,
    unclaimed: bool = False,
    llm_tokens: int = 0,
    marker_unmoved: bool = False,
    reason: str | None = None,
) -> execution_store.Ending:
    """Ending a running execution at `now` (see dal.executions.Ending for the conditions), to write alone
    (end_execution) or with others (dal.executions.finish_many)."""
    completed = now or clock.utc_now()
    started = clock.parse_iso(execution["startedAt"])
    duration_ms = max(0, int((completed - started).total_seconds() * 1000))
    return execution_store.Ending(
        execution,
        status,
        clock.iso(completed),
        duration_ms,
        result,
        claimed_at=claimed_at,
        unclaimed=unclaimed,
        llm_tokens=llm_tokens,
        marker_unmoved=marker_unmoved,
        reason=reason,
    )


def end_execution(
    execution: dict[str, Any],
    status: str,
    result: dict[str, Any],
    *,
    now: datetime | None = None,
    claimed_at: str | None = None,
    unclaimed: bool = False,
    marker_unmoved: bool = False,
    reason: str | None = None,
) -> bool:
    """End a running execution now (see dal.executions.Ending for the conditions); False if it had ended (or no
    longer meets them)."""
    end = ending(
        execution,
        status,
        result,
        now=now,
        claimed_at=claimed_at,
        unclaimed=unclaimed,
        marker_unmoved=marker_unmoved,
        reason=reason,
    )
    return execution_store.finish_many([end])[0]


def end_as_read(
    execution: dict[str, Any], status: str, error_message: str, now: datetime, reason: str | None = None
) -> bool:
    """End a running execution only in the claim state it was read in: a claim taken since belongs to a run that
    must not be ended. False if it had ended or was claimed meanwhile."""
    claimed_at = execution.get("claimedAt")
    return end_execution(
        execution,
        status,
        {"errorMessage": error_message},
        now=now,
        claimed_at=claimed_at,
        unclaimed=claimed_at is None,
        reason=reason,
    )


CANCELLED_REASON = EndReason.CANCELLED.value
# What a cancelled execution records (the contract has no cancelled status).
CANCELLED_RESULT = {"errorMessage": "cancelled", "cancelled": True}


def cancel(execution: dict[str, Any]) -> dict[str, Any] | None:
    """End a running execution (queued or running) as cancelled, in one transaction conditional on it still running
    with the running marker it was read with (so the marker deleted is its live one: a run watching it stops at its
    next step, and a queued one is skipped by the executor). Returns the execution as ended; None when it ended or
    its marker moved (a claim, a requeue) since it was read: read it again."""
    end = ending(execution, "error", CANCELLED_RESULT, marker_unmoved=True, reason=CANCELLED_REASON)
    if not execution_store.finish_many([end])[0]:
        return None
    return {
        **execution,
        **end.result,
        "status": end.status,
        "completedAt": end.completed_at,
        "durationMs": end.duration_ms,
        "reason": CANCELLED_REASON,
    }


def requeue(execution: dict[str, Any]) -> bool:
    """Queue an unclaimed execution once more (see REQUEUE_AFTER_SECONDS), its running marker moved to its queued
    deadline. The message goes first, so a failure leaves the marker due and the next sweep tries again. False if
    it was claimed or ended meanwhile (the message is then a harmless duplicate)."""
    deadline = queued_deadline(execution["startedAt"])
    marker_sk = keys.running_marker_sk(deadline, execution["id"])
    queue.send_execution(queue_message(execution))
    return execution_store.move_queued_marker(execution, marker_sk, deadline)
