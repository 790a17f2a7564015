"""Execution rules for a flow's owner: listing with exact totals, one execution, stats, manual runs, logs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from bloxserver import clock, jsonvalues
from bloxserver.auth import Principal
from bloxserver.contract import (
    Execution,
    ExecutionStatus,
    ExecutionSummary,
    FlowStats,
    LogEntry,
    LogLevel,
    PaginatedResponse,
    TriggerType,
)
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.errors import BadRequest, NotFound, ValidationFailed
from bloxserver.ownership import owned_flow
from bloxserver.executions import StartRequest, checked_idempotency_key, retained_days, start_execution
from bloxserver.pagination import PageRequest, to_page

LEVEL_ORDER = [level.value for level in LogLevel]  # debug < info < warning < error


def _require_flow(principal: Principal, flow_id: UUID) -> None:
    owned_flow(principal.user_id, flow_id)


def _retained_counters(flow_id: UUID, now: datetime) -> list[dict[str, Any]]:
    first_day, last_day = retained_days(now)
    return execution_store.day_counters(str(flow_id), first_day, last_day)


def _counter_name(status: ExecutionStatus | None, trigger_type: TriggerType | None) -> str:
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
) -> PaginatedResponse[ExecutionSummary]:
    _require_flow(principal, flow_id)
    now = clock.utc_now()
    counter = _counter_name(status, trigger_type)
    total = sum(int(day.get(counter, 0)) for day in _retained_counters(flow_id, now))
    if total == 0:
        return to_page([], 0, page)
    items = execution_store.list_summaries(
        str(flow_id),
        (status.value,) if status else execution_store.STATUSES,
        (trigger_type.value,) if trigger_type else execution_store.TRIGGER_TYPES,
        page.read_limit,
        int(now.timestamp()),
    )
    return to_page([ExecutionSummary.model_validate(item) for item in items], total, page)


def get_execution(principal: Principal, flow_id: UUID, execution_id: UUID) -> Execution:
    item = execution_store.get_execution(str(flow_id), str(execution_id))
    if (
        item is None
        or item["userId"] != str(principal.user_id)
        or item["expiresAt"] <= int(clock.utc_now().timestamp())
    ):
        raise NotFound("Execution not found")
    return Execution.model_validate(item)


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
    principal: Principal, flow_id: UUID, body: bytes, input_payload: str | None, idempotency_key: str | None
) -> Execution:
    """Start a manual run; a repeated Idempotency-Key (a double click, a client's retry) answers with the run it
    started the first time, as it is now."""
    key = checked_idempotency_key(idempotency_key)
    outcome = start_execution(
        StartRequest(
            user_id=principal.user_id,
            flow_id=flow_id,
            trigger_type=TriggerType.MANUAL.value,
            trigger_id=None,
            input_payload=_manual_input(body, input_payload),
            tier=principal.tier_claim,
            # The owner is part of the key: another user's request naming this flow must reach the flow's check (404).
            delivery_scope=flow_id if key else None,
            delivery_key=f"manual:{principal.user_id}:{key}" if key else None,
        )
    )
    if not outcome.created:
        return get_execution(principal, flow_id, UUID(outcome.execution["id"]))
    return Execution.model_validate(outcome.execution)


def flow_logs(
    principal: Principal, flow_id: UUID, execution_id: UUID | None, level: LogLevel | None, limit: int
) -> list[LogEntry]:
    _require_flow(principal, flow_id)
    levels = tuple(LEVEL_ORDER[LEVEL_ORDER.index(level.value) :]) if level else tuple(LEVEL_ORDER)
    records = log_store.newest_records(
        str(flow_id),
        str(execution_id) if execution_id else None,
        levels,
        limit,
        int(clock.utc_now().timestamp()),
    )
    return [
        LogEntry(
            timestamp=record["timestamp"],
            level=record["level"],
            message=record["message"],
            metadata=json.loads(record["metadataJson"]) if record.get("metadataJson") else None,
        )
        for record in records
    ]
