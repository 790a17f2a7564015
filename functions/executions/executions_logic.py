"""Execution rules for a flow's owner: listing with exact totals, one execution, stats, manual runs, logs, and
operating runs: retry, bulk retry, cancel, following logs live."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock, jsonvalues, waits
from bloxserver.auth import Principal
from bloxserver.contract import (
    BulkRetryRequest,
    BulkRetryResult,
    EndReason,
    Execution,
    ExecutionCursorPage,
    ExecutionStatus,
    ExecutionSummary,
    FlowStats,
    LogEntry,
    LogLevel,
    OwnerExecutionSummary,
    PaginatedResponse,
    TriggerType,
)
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.errors import (
    AppError,
    BadRequest,
    InvalidState,
    NotFound,
    QuotaExceeded,
    ServiceUnavailable,
    ValidationFailed,
)
from bloxserver.ids import earliest_uuid_at, latest_uuid_at
from bloxserver.ownership import owned_flow
from bloxserver.executions import (
    StartRequest,
    cancel,
    checked_idempotency_key,
    flow_not_running,
    retained_days,
    start_execution,
)
from bloxserver.pagination import PageRequest, to_page

LEVEL_ORDER = [level.value for level in LogLevel]  # debug < info < warning < error
# A cancel whose execution's marker moved under it (a claim, a requeue) reads it again; a marker moves at most a
# few times in an execution's life.
CANCEL_ATTEMPTS = 5
# Long polling of the logs route: how often an empty answer is read again, and how often the execution followed is
# read to see whether it ended (nothing more will come).
LOG_POLL_SECONDS = 0.5
ENDED_CHECK_SECONDS = 5.0
CURSOR = re.compile(r"(\d{1,5})(?:\.(\d{1,6}))?")  # item.record; a bare item number starts at its first record


# GET /api/v1/executions: with a status or trigger type filter, one page's query reads at most this many executions
# (small projected items of GSI2, well within a query's 1 MB) and returns the matches among them.
FILTERED_READ_ITEMS = 1000


def _require_flow(principal: Principal, flow_id: UUID) -> None:
    owned_flow(principal.user_id, flow_id)


def _retained_counters(flow_id: UUID, now: datetime) -> list[dict[str, Any]]:
    first_day, last_day = retained_days(now)
    return execution_store.day_counters(str(flow_id), first_day, last_day)


def _counter_name(
    status: ExecutionStatus | None, trigger_type: TriggerType | None, reason: EndReason | None = None
) -> str:
    if reason and trigger_type:
        return execution_store.reason_trigger_counter(reason.value, trigger_type.value)
    if reason:
        return execution_store.reason_counter(reason.value)
    if status and trigger_type:
        return execution_store.status_trigger_counter(status.value, trigger_type.value)
    if status:
        return execution_store.status_counter(status.value)
    if trigger_type:
        return execution_store.trigger_counter(trigger_type.value)
    return "total"


def list_executions(
    principal: Principal,
    flow_id: UUID,
    page: PageRequest,
    status: ExecutionStatus | None,
    trigger_type: TriggerType | None,
    reason: EndReason | None = None,
) -> PaginatedResponse[ExecutionSummary]:
    """A page of the flow's executions, newest first; `reason` (dead_letter, cancelled) narrows to the errors that
    ended for it (any other status then has none)."""
    _require_flow(principal, flow_id)
    if reason and status not in (None, ExecutionStatus.ERROR):
        return to_page([], 0, page)
    now = clock.utc_now()
    counter = _counter_name(status, trigger_type, reason)
    total = sum(int(day.get(counter, 0)) for day in _retained_counters(flow_id, now))
    if total == 0:
        return to_page([], 0, page)
    trigger_types = (trigger_type.value,) if trigger_type else execution_store.TRIGGER_TYPES
    if reason:
        items = execution_store.list_reason_summaries(
            str(flow_id), reason.value, trigger_types, page.read_limit, int(now.timestamp())
        )
        return to_page([ExecutionSummary.model_validate(item) for item in items], total, page)
    items = execution_store.list_summaries(
        str(flow_id),
        (status.value,) if status else execution_store.STATUSES,
        trigger_types,
        page.read_limit,
        int(now.timestamp()),
    )
    return to_page([ExecutionSummary.model_validate(item) for item in items], total, page)


def _owned_execution(principal: Principal, flow_id: UUID, execution_id: UUID) -> dict[str, Any]:
    item = execution_store.get_execution(str(flow_id), str(execution_id))
    if (
        item is None
        or item["userId"] != str(principal.user_id)
        or item["expiresAt"] <= int(clock.utc_now().timestamp())
    ):
        raise NotFound("Execution not found")
    return item


def get_execution(principal: Principal, flow_id: UUID, execution_id: UUID) -> Execution:
    return Execution.model_validate(_owned_execution(principal, flow_id, execution_id))


def flow_stats(principal: Principal, flow_id: UUID) -> FlowStats:
    _require_flow(principal, flow_id)
    days = _retained_counters(flow_id, clock.utc_now())

    def count(name: str) -> int:
        return sum(int(day.get(name, 0)) for day in days)

    finished = count("finished")
    last = max((day["lastExecutedAt"] for day in days if day.get("lastExecutedAt")), default=None)
    return FlowStats(
        flow_id=flow_id,
        executions_total=count("total"),
        executions_success=count(execution_store.status_counter("success")),
        executions_error=count(execution_store.status_counter("error")) + count(execution_store.status_counter("timeout")),
        avg_duration_ms=count("durationMsSum") / finished if finished else 0.0,
        last_executed_at=last,
    )


def _manual_input(body: bytes, input_payload: str | None) -> str | None:
    try:  # strict: JSON is UTF-8, and replacing bad bytes would triple them (past DynamoDB's 400 KB item size)
        text = body.decode().strip() if body else ""
    except UnicodeDecodeError as exc:
        raise ValidationFailed("The body must be JSON (the flow's input)", {"body": "not UTF-8"}) from exc
    if text and input_payload is not None:
        raise BadRequest("Give the input either as the body or as input_payload, not both")
    if text:
        try:
            value = jsonvalues.parse(text)
        except ValueError as exc:
            raise ValidationFailed("The body must be JSON (the flow's input)", {"body": str(exc)}) from exc
        _refuse_unfit_input(value, "body")
        return text
    if not (input_payload and input_payload.strip()):
        return None  # blank: no input, as a webhook
    try:  # raw text, as a webhook's body: JSON enters the flow as JSON, anything else as a string
        value = jsonvalues.parse(input_payload)
    except ValueError:
        return input_payload
    _refuse_unfit_input(value, "query.input_payload")
    return input_payload


def _refuse_unfit_input(value: Any, where: str) -> None:
    """Input a flow would refuse at once (too deep, an unpaired surrogate) is refused now, not accepted and counted."""
    problem = jsonvalues.shape_problem(value)
    if problem:
        raise ValidationFailed("The flow's input cannot be run", {where: problem})


def run_flow(
    principal: Principal,
    flow_id: UUID,
    body: bytes,
    input_payload: str | None,
    idempotency_key: str | None,
    wait_seconds: int | None = None,
) -> tuple[Execution, dict[str, Any] | None]:
    """Start a manual run; a repeated Idempotency-Key (a double click, a client's retry) answers with the run it
    started the first time, as it is now. With `wait_seconds`, also the execution as it ended within that time
    (None if it had not)."""
    key = checked_idempotency_key(idempotency_key)
    # The owner is part of the key: another user's request naming this flow must reach the flow's check (404).
    delivery_key = f"manual:{principal.user_id}:{key}" if key else None
    execution = _start_by_hand(principal, flow_id, _manual_input(body, input_payload), delivery_key)
    return execution, _ended_within(execution, wait_seconds)


def _ended_within(execution: Execution, wait_seconds: int | None) -> dict[str, Any] | None:
    """The started (or replayed) execution as it ended within `wait_seconds`, else None."""
    if wait_seconds is None:
        return None
    return waits.wait_for_end(execution.model_dump(by_alias=True, mode="json"), wait_seconds)


def _start_by_hand(
    principal: Principal,
    flow_id: UUID,
    input_payload: str | None,
    delivery_key: str | None,
    retry_of: UUID | None = None,
) -> Execution:
    """A run the owner asked for (the Run button, a retry): its execution, or with a delivery key seen before, the
    execution that key started, as it is now."""
    outcome = start_execution(_by_hand(principal, flow_id, input_payload, delivery_key, retry_of))
    if not outcome.created:
        return get_execution(principal, flow_id, UUID(outcome.execution["id"]))
    return Execution.model_validate(outcome.execution)


def _by_hand(
    principal: Principal,
    flow_id: UUID,
    input_payload: str | None,
    delivery_key: str | None = None,
    retry_of: UUID | None = None,
    first_retry_only: bool = False,
) -> StartRequest:
    return StartRequest(
        user_id=principal.user_id,
        flow_id=flow_id,
        trigger_type=TriggerType.MANUAL.value,
        trigger_id=None,
        input_payload=input_payload,
        tier=principal.tier_claim,
        delivery_scope=flow_id if delivery_key else None,
        delivery_key=delivery_key,
        retry_of=retry_of,
        first_retry_only=first_retry_only,
    )


def retry_execution(
    principal: Principal,
    flow_id: UUID,
    execution_id: UUID,
    idempotency_key: str | None,
    wait_seconds: int | None = None,
) -> tuple[Execution, dict[str, Any] | None]:
    """Run the flow again (its current YAML) with an ended execution's input: a manual run, counted like any, that
    names the original (`retryOf`) while the original names it (`retriedBy`, its latest retry). With
    `wait_seconds`, also the retry as it ended within that time (None if it had not)."""
    key = checked_idempotency_key(idempotency_key)
    original = _owned_execution(principal, flow_id, execution_id)
    if original["status"] == ExecutionStatus.RUNNING.value:
        raise InvalidState("The execution has not ended; retry it once it has", {"status": original["status"]})
    delivery_key = f"retry:{principal.user_id}:{execution_id}:{key}" if key else None
    try:
        retry = _start_by_hand(principal, flow_id, original.get("inputPayload"), delivery_key, retry_of=execution_id)
    except execution_store.RetryRefused as gone:  # deleted with its flow since it was read
        raise NotFound("Execution not found") from gone
    return retry, _ended_within(retry, wait_seconds)


def bulk_retry(principal: Principal, flow_id: UUID, request: BulkRetryRequest) -> BulkRetryResult:
    """Retry the flow's executions that ended in `request.status` since `request.since`, oldest first, at most
    `request.limit`, each only if nothing retried it yet (a cancelled one was stopped on purpose: not retried). Each
    start is counted against the quota in its own transaction, so concurrent retries admit exactly what is left;
    once the quota is full the rest are not started, and `details` says how many."""
    flow = owned_flow(principal.user_id, flow_id)
    if flow["status"] != "running":
        raise flow_not_running(flow["status"])
    since = request.since if request.since.tzinfo else request.since.replace(tzinfo=UTC)
    originals = execution_store.oldest_ended_since(
        str(flow_id),
        request.status,
        str(earliest_uuid_at(since)),
        request.limit,
        int(clock.utc_now().timestamp()),
    )
    started: list[str] = []
    details = None
    for position, original in enumerate(originals):
        try:
            outcome = start_execution(
                _by_hand(
                    principal, flow_id, original.get("inputPayload"), retry_of=UUID(original["id"]), first_retry_only=True
                )
            )
        except execution_store.RetryRefused:  # retried meanwhile (a concurrent bulk retry): that retry stands
            continue
        except (QuotaExceeded, InvalidState) as refused:  # the quota is full, or the flow was stopped meanwhile
            if not started and isinstance(refused, InvalidState):
                raise
            details = _not_started(refused, len(originals) - position)
            break
        started.append(outcome.execution["id"])
    return BulkRetryResult(queued=len(started), execution_ids=started, details=details)


def _not_started(refused: AppError, count: int) -> dict[str, Any]:
    return {"notStarted": count, "code": refused.code.value, "message": refused.message, **(refused.details or {})}


def cancel_execution(principal: Principal, flow_id: UUID, execution_id: UUID) -> Execution:
    """End a queued or running execution as cancelled; a cancelled one answers as it is (cancelling twice is
    harmless); one that ended otherwise cannot be cancelled."""
    for _ in range(CANCEL_ATTEMPTS):
        item = _owned_execution(principal, flow_id, execution_id)
        if item["status"] != ExecutionStatus.RUNNING.value:
            if item.get("cancelled"):
                return Execution.model_validate(item)
            raise InvalidState(
                f"The execution has ended ({item['status']}); only a queued or running one can be cancelled",
                {"status": item["status"]},
            )
        cancelled = cancel(item)
        if cancelled is not None:
            return Execution.model_validate(cancelled)
    raise ServiceUnavailable("The execution kept changing while being cancelled; try again")


def _log_entries(records: list[dict[str, Any]]) -> list[LogEntry]:
    return [
        LogEntry(
            timestamp=record["timestamp"],
            level=record["level"],
            message=record["message"],
            metadata=json.loads(record["metadataJson"]) if record.get("metadataJson") else None,
        )
        for record in records
    ]


def _cursor_position(after: str) -> log_store.Position:
    if not after:
        return log_store.Position()
    match = CURSOR.fullmatch(after)
    if match is None:
        raise ValidationFailed(
            "after must be a cursor from an earlier answer's X-Next-Cursor header", {"query.after": "not a cursor"}
        )
    return log_store.Position(int(match[1]), int(match[2] or 0))


def _cursor(position: log_store.Position) -> str:
    return f"{position.chunk}.{position.offset}"


def flow_logs(
    principal: Principal,
    flow_id: UUID,
    execution_id: UUID | None,
    level: LogLevel | None,
    limit: int,
    after: str | None = None,
    wait: int = 0,
) -> tuple[list[LogEntry], str | None]:
    """Log records and, for one execution, the cursor after the last one read. Without `after`: newest first (the
    cursor then points after the newest record stored). With `after` (a cursor; empty: from the start): the records
    stored since, in emission order. With `wait`, an empty answer is read again every LOG_POLL_SECONDS for up to
    `wait` seconds, and no longer once the execution followed has ended."""
    _require_flow(principal, flow_id)
    if after is not None and execution_id is None:
        raise ValidationFailed(
            "Following logs with after needs the execution_id to follow", {"query.execution_id": "required with after"}
        )
    position = _cursor_position(after) if after is not None else None
    levels = tuple(LEVEL_ORDER[LEVEL_ORDER.index(level.value) :]) if level else tuple(LEVEL_ORDER)

    def read() -> tuple[list[dict[str, Any]], log_store.Position]:
        now_epoch = int(clock.utc_now().timestamp())
        if position is None:
            return log_store.newest_records(
                str(flow_id), str(execution_id) if execution_id else None, levels, limit, now_epoch
            )
        return log_store.records_after(str(flow_id), str(execution_id), position, levels, limit, now_epoch)

    gives_up_at = time.monotonic() + wait
    records, end = read()
    ended_checked_at = None
    while not records and time.monotonic() < gives_up_at:
        if execution_id is not None and (
            ended_checked_at is None or time.monotonic() - ended_checked_at >= ENDED_CHECK_SECONDS
        ):
            ended_checked_at = time.monotonic()
            if _ended_or_gone(flow_id, execution_id):  # its last records were stored before it ended
                records, end = read()
                break
        time.sleep(max(0.0, min(LOG_POLL_SECONDS, gives_up_at - time.monotonic())))
        records, end = read()
    if execution_id is None:
        return _log_entries(records), None
    return _log_entries(records), _cursor(end)


def _ended_or_gone(flow_id: UUID, execution_id: UUID) -> bool:
    item = execution_store.get_execution(str(flow_id), str(execution_id))
    return item is None or item["status"] != ExecutionStatus.RUNNING.value


def _cursor_below(cursor: str | None) -> UUID | None:
    """The execution id an opaque cursor (from an earlier page's nextCursor) continues below."""
    if cursor is None:
        return None
    try:
        return UUID(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(
            "cursor must be the nextCursor of an earlier page", {"query.cursor": "not a cursor"}
        ) from exc


def _cursor_after(execution_id: str) -> str:
    return base64.urlsafe_b64encode(execution_id.encode()).decode().rstrip("=")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_owner_executions(
    principal: Principal,
    flow_id: UUID | None,
    status: ExecutionStatus | None,
    trigger_type: TriggerType | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> ExecutionCursorPage:
    """The caller's retained executions across flows (or of one flow), newest first, started in [since, until]:
    one bounded query per page whatever its depth (a page may hold fewer than `limit` when filters match few of
    the executions read; `nextCursor` is null only at the end)."""
    if since is not None and until is not None and _utc(since) > _utc(until):
        raise ValidationFailed("until must not be before since", {"query.until": "before since"})
    below = _cursor_below(cursor)
    if flow_id is not None:
        _require_flow(principal, flow_id)
    now = clock.utc_now()
    retained_from = datetime.fromisoformat(retained_days(now)[0]).replace(tzinfo=UTC)
    lowest = earliest_uuid_at(max(_utc(since), retained_from) if since else retained_from)
    highest = latest_uuid_at(_utc(until) if until else now + timedelta(days=1))
    if below is not None:
        highest = min(highest, UUID(int=below.int - 1), key=lambda value: value.int)
    if highest.int < lowest.int:
        return ExecutionCursorPage(items=[], next_cursor=None)
    filters = {}
    if status is not None:
        filters["status"] = status.value
    if trigger_type is not None:
        filters["triggerType"] = trigger_type.value
    listing = execution_store.owner_executions_page(
        str(principal.user_id),
        str(flow_id) if flow_id else None,
        str(lowest),
        str(highest),
        filters,
        limit,
        FILTERED_READ_ITEMS if filters else limit,
        int(now.timestamp()),
    )
    return ExecutionCursorPage(
        items=[OwnerExecutionSummary.model_validate(item) for item in listing.items],
        next_cursor=_cursor_after(listing.next_below) if listing.next_below else None,
    )


def delete_execution(principal: Principal, flow_id: UUID, execution_id: UUID) -> None:
    """Delete an ended execution and its logs (its counts stay: stats, totals and usage count what ran). A queued
    or running one is 409: cancel it first."""
    item = _owned_execution(principal, flow_id, execution_id)
    if item["status"] == ExecutionStatus.RUNNING.value:
        raise InvalidState(
            "The execution has not ended; cancel it or wait for its end before deleting it", {"status": item["status"]}
        )
    # Logs first: if the execution's deletion fails, the request can be sent again and finds it.
    log_store.delete_execution_records(str(flow_id), str(execution_id))
    execution_store.delete_ended(item)
