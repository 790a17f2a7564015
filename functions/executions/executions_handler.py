"""HTTP entry point of the executions resource group: a flow's executions, stats, manual runs, retries, cancels
and logs."""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, Header, Query, Request, Response

from bloxserver.api import any_json_body, create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import BadRequest, InvalidState, QuotaExceeded, ServiceUnavailable
from bloxserver.auth import Principal
from bloxserver.contract import (
    BulkRetryRequest,
    BulkRetryResult,
    EndReason,
    Execution,
    ExecutionStatus,
    ExecutionSummary,
    FlowStats,
    LogEntry,
    LogLevel,
    PaginatedResponse,
    TriggerType,
)
from bloxserver.pagination import PageRequest, page_query

import executions_logic

MAX_RUN_INPUT_BYTES = 256 * 1024  # the same cap as a webhook delivery's body
MAX_LOG_WAIT_SECONDS = 20  # long polling of the logs route, within the function's Timeout (template.yaml)

app = create_app("BloxServer executions")


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
    responses=error_responses(BadRequest, InvalidState, QuotaExceeded),
    openapi_extra=any_json_body("The run's input: any JSON (or give it as `input_payload`)"),
)
async def run_flow(
    flow_id: UUID,
    request: Request,
    input_payload: str | None = Query(None),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(current_principal),
) -> Execution:
    return executions_logic.run_flow(principal, flow_id, await request.body(), input_payload, idempotency_key)


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
    responses=error_responses(BadRequest, InvalidState, QuotaExceeded),
)
async def retry_execution(
    flow_id: UUID,
    execution_id: UUID,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(current_principal),
) -> Execution:
    return executions_logic.retry_execution(principal, flow_id, execution_id, idempotency_key)


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
