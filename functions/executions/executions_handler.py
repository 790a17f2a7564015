"""HTTP entry point of the executions resource group: a flow's executions, stats, manual runs, retries, cancels
and logs."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from bloxserver import waits
from bloxserver.api import any_json_body, create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import BadRequest, InvalidState, NotFound, QuotaExceeded, ServiceUnavailable
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
    PaginatedResponse,
    TriggerType,
)
from bloxserver.pagination import MAX_PAGE_SIZE, PageRequest, page_query

import executions_logic

MAX_RUN_INPUT_BYTES = 256 * 1024  # the same cap as a webhook delivery's body
MAX_LOG_WAIT_SECONDS = 20  # long polling of the logs route, within the function's Timeout (template.yaml)

app = create_app("BloxServer executions")


@app.get(
    "/api/v1/executions", response_model=ExecutionCursorPage,
    responses=error_responses(NotFound),
)
async def list_owner_executions(
    flow_id: UUID | None = Query(None),
    status: ExecutionStatus | None = Query(None),
    trigger_type: TriggerType | None = Query(None),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    cursor: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(current_principal),
) -> ExecutionCursorPage:
    return executions_logic.list_owner_executions(
        principal, flow_id, status, trigger_type, since, until, cursor, limit
    )


@app.get("/api/v1/flows/{flow_id}/executions", response_model=PaginatedResponse[ExecutionSummary])
async def list_executions(
    flow_id: UUID,
    page: PageRequest = Depends(page_query(50)),
    status: ExecutionStatus | None = Query(None),
    trigger_type: TriggerType | None = Query(None),
    reason: EndReason | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> PaginatedResponse[ExecutionSummary]:
    return executions_logic.list_executions(principal, flow_id, page, status, trigger_type, reason)


@app.post(
    "/api/v1/flows/{flow_id}/executions/run", response_model=Execution, status_code=201,
    responses={**error_responses(BadRequest, InvalidState, QuotaExceeded), **waits.WAITED_RESPONSE},
    openapi_extra=any_json_body("The run's input: any JSON (or give it as `input_payload`)"),
)
async def run_flow(
    flow_id: UUID,
    request: Request,
    input_payload: str | None = Query(None),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    prefer: str | None = Header(None),
    wait: str | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> Execution | JSONResponse:
    wait_seconds = waits.requested_wait(prefer, wait)
    execution, ended = executions_logic.run_flow(
        principal, flow_id, await request.body(), input_payload, idempotency_key, wait_seconds
    )
    return _waited(execution, ended, wait_seconds)


@app.post(
    "/api/v1/flows/{flow_id}/executions/bulk-retry", response_model=BulkRetryResult, status_code=202,
    responses=error_responses(InvalidState),
)
async def bulk_retry(
    flow_id: UUID, body: BulkRetryRequest, principal: Principal = Depends(current_principal)
) -> BulkRetryResult:
    return executions_logic.bulk_retry(principal, flow_id, body)


@app.post(
    "/api/v1/flows/{flow_id}/executions/{execution_id}/retry", response_model=Execution, status_code=201,
    responses={**error_responses(BadRequest, InvalidState, QuotaExceeded), **waits.WAITED_RESPONSE},
)
async def retry_execution(
    flow_id: UUID,
    execution_id: UUID,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    prefer: str | None = Header(None),
    wait: str | None = Query(None),
    principal: Principal = Depends(current_principal),
) -> Execution | JSONResponse:
    wait_seconds = waits.requested_wait(prefer, wait)
    execution, ended = executions_logic.retry_execution(principal, flow_id, execution_id, idempotency_key, wait_seconds)
    return _waited(execution, ended, wait_seconds)


def _waited(execution: Execution, ended: dict | None, wait_seconds: int | None) -> Execution | JSONResponse:
    """201 with the execution as started, or 200 with how it ended when the caller waited and it did."""
    if ended is None or wait_seconds is None:
        return execution
    return JSONResponse(waits.result_body(ended), headers=waits.preference_applied(wait_seconds))


@app.post(
    "/api/v1/flows/{flow_id}/executions/{execution_id}/cancel", response_model=Execution,
    responses=error_responses(InvalidState, ServiceUnavailable),
)
async def cancel_execution(
    flow_id: UUID, execution_id: UUID, principal: Principal = Depends(current_principal)
) -> Execution:
    return executions_logic.cancel_execution(principal, flow_id, execution_id)


@app.get("/api/v1/flows/{flow_id}/executions/{execution_id}", response_model=Execution)
async def get_execution(
    flow_id: UUID, execution_id: UUID, principal: Principal = Depends(current_principal)
) -> Execution:
    return executions_logic.get_execution(principal, flow_id, execution_id)


@app.delete(
    "/api/v1/flows/{flow_id}/executions/{execution_id}", status_code=204,
    responses=error_responses(InvalidState),
)
async def delete_execution(
    flow_id: UUID, execution_id: UUID, principal: Principal = Depends(current_principal)
) -> Response:
    executions_logic.delete_execution(principal, flow_id, execution_id)
    return Response(status_code=204)


@app.get("/api/v1/flows/{flow_id}/stats", response_model=FlowStats)
async def flow_stats(flow_id: UUID, principal: Principal = Depends(current_principal)) -> FlowStats:
    return executions_logic.flow_stats(principal, flow_id)


@app.get("/api/v1/flows/{flow_id}/logs", response_model=list[LogEntry])
async def flow_logs(
    flow_id: UUID,
    execution_id: UUID | None = Query(None),
    level: LogLevel | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    after: str | None = Query(None, max_length=20),
    wait: int = Query(0, ge=0, le=MAX_LOG_WAIT_SECONDS),
    principal: Principal = Depends(current_principal),
    *,
    response: Response,
) -> list[LogEntry]:
    entries, next_cursor = executions_logic.flow_logs(principal, flow_id, execution_id, level, limit, after, wait)
    if next_cursor is not None:
        response.headers["X-Next-Cursor"] = next_cursor
    return entries


handler = lambda_handler(app, max_body_bytes=MAX_RUN_INPUT_BYTES)
