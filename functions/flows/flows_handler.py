"""HTTP entry point of the flows resource group: parse, call one logic function, shape the answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import Depends, Path, Response

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import InvalidFlow, InvalidState, LimitReached, ServiceUnavailable
from bloxserver.auth import Principal
from bloxserver.contract import (
    CreateFlowRequest,
    Flow,
    FlowExport,
    FlowSummary,
    FlowVersion,
    FlowVersionSummary,
    PaginatedResponse,
    UpdateFlowRequest,
)
from bloxserver.pagination import PageRequest, page_query

import flow_copies
import flows_logic

VERSION_NUMBER = Path(ge=1, le=99_999_999)  # keys.flow_version_sk's eight digits

app = create_app("BloxServer flows")


@app.get("/api/v1/flows", response_model=PaginatedResponse[FlowSummary])
async def list_flows(
    page: PageRequest = Depends(page_query(20)), principal: Principal = Depends(current_principal)
) -> PaginatedResponse[FlowSummary]:
    return flows_logic.list_flows(principal, page)


@app.post(
    "/api/v1/flows", response_model=Flow, status_code=201,
    responses=error_responses(LimitReached),
)
async def create_flow(body: CreateFlowRequest, principal: Principal = Depends(current_principal)) -> Flow:
    return flows_logic.create_flow(principal, body)


@app.post(
    "/api/v1/flows/import", response_model=Flow, status_code=201,
    responses=error_responses(LimitReached),
)
async def import_flow(body: FlowExport, principal: Principal = Depends(current_principal)) -> Flow:
    return flow_copies.import_flow(principal, body)


@app.get("/api/v1/flows/{flow_id}", response_model=Flow)
async def get_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Flow:
    return flows_logic.get_flow(principal, flow_id)


@app.patch(
    "/api/v1/flows/{flow_id}", response_model=Flow,
    responses=error_responses(InvalidState),
)
async def update_flow(
    flow_id: UUID, body: UpdateFlowRequest, principal: Principal = Depends(current_principal)
) -> Flow:
    return flows_logic.update_flow(principal, flow_id, body)


@app.delete("/api/v1/flows/{flow_id}", status_code=204)
async def delete_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Response:
    flows_logic.delete_flow(principal, flow_id)
    return Response(status_code=204)


@app.post(
    "/api/v1/flows/{flow_id}/start", response_model=Flow,
    responses=error_responses(InvalidState, InvalidFlow, ServiceUnavailable),
)
async def start_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Flow:
    return flows_logic.start_flow(principal, flow_id)


@app.post(
    "/api/v1/flows/{flow_id}/stop", response_model=Flow,
    responses=error_responses(InvalidState),
)
async def stop_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Flow:
    return flows_logic.stop_flow(principal, flow_id)


@app.post("/api/v1/flows/{flow_id}/validate")
async def validate_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> list[dict[str, Any]]:
    return flows_logic.validate_flow(principal, flow_id)


@app.get("/api/v1/flows/{flow_id}/versions", response_model=PaginatedResponse[FlowVersionSummary])
async def list_versions(
    flow_id: UUID, page: PageRequest = Depends(page_query(20)), principal: Principal = Depends(current_principal)
) -> PaginatedResponse[FlowVersionSummary]:
    return flows_logic.list_versions(principal, flow_id, page)


@app.get("/api/v1/flows/{flow_id}/versions/{version}", response_model=FlowVersion)
async def get_version(
    flow_id: UUID, version: int = VERSION_NUMBER, principal: Principal = Depends(current_principal)
) -> FlowVersion:
    return flows_logic.get_version(principal, flow_id, version)


@app.post(
    "/api/v1/flows/{flow_id}/versions/{version}/restore", response_model=Flow,
    responses=error_responses(InvalidState),
)
async def restore_version(
    flow_id: UUID, version: int = VERSION_NUMBER, principal: Principal = Depends(current_principal)
) -> Flow:
    return flows_logic.restore_version(principal, flow_id, version)


@app.post(
    "/api/v1/flows/{flow_id}/duplicate", response_model=Flow, status_code=201,
    responses=error_responses(LimitReached),
)
async def duplicate_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Flow:
    return flow_copies.duplicate_flow(principal, flow_id)


@app.get("/api/v1/flows/{flow_id}/export")
async def export_flow(flow_id: UUID, principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return flow_copies.export_flow(principal, flow_id)


handler = lambda_handler(app)
