"""HTTP entry point of the modules resource group: parse, call one logic function, shape the answer."""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, Response

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import InvalidState, LimitReached
from bloxserver.auth import Principal
from bloxserver.contract import (
    CreateWasmModuleRequest,
    PaginatedResponse,
    UpdateWasmModuleRequest,
    WasmModule,
    WasmModuleSummary,
    WasmUpload,
)
from bloxserver.pagination import PageRequest, page_query

import modules_logic

app = create_app("BloxServer WASM modules")


@app.get("/api/v1/modules", response_model=PaginatedResponse[WasmModuleSummary])
async def list_modules(
    page: PageRequest = Depends(page_query(20)), principal: Principal = Depends(current_principal)
) -> PaginatedResponse[WasmModuleSummary]:
    return modules_logic.list_modules(principal, page)


@app.post(
    "/api/v1/modules", response_model=WasmModule, status_code=201,
    responses=error_responses(LimitReached),
)
async def create_module(body: CreateWasmModuleRequest, principal: Principal = Depends(current_principal)) -> WasmModule:
    return modules_logic.create_module(principal, body)


@app.get("/api/v1/modules/{module_id}", response_model=WasmModule)
async def get_module(module_id: UUID, principal: Principal = Depends(current_principal)) -> WasmModule:
    return modules_logic.get_module(principal, module_id)


@app.patch("/api/v1/modules/{module_id}", response_model=WasmModule)
async def update_module(
    module_id: UUID, body: UpdateWasmModuleRequest, principal: Principal = Depends(current_principal)
) -> WasmModule:
    return modules_logic.update_module(principal, module_id, body)


@app.delete(
    "/api/v1/modules/{module_id}", status_code=204,
    responses=error_responses(InvalidState),
)
async def delete_module(module_id: UUID, principal: Principal = Depends(current_principal)) -> Response:
    modules_logic.delete_module(principal, module_id)
    return Response(status_code=204)


@app.post(
    "/api/v1/modules/{module_id}/upload", response_model=WasmUpload,
    responses=error_responses(InvalidState),
)
async def new_upload(module_id: UUID, principal: Principal = Depends(current_principal)) -> WasmUpload:
    return modules_logic.new_upload(principal, module_id)


@app.post(
    "/api/v1/modules/{module_id}/complete", response_model=WasmModule,
    responses=error_responses(InvalidState),
)
async def complete_upload(module_id: UUID, principal: Principal = Depends(current_principal)) -> WasmModule:
    return modules_logic.complete_upload(principal, module_id)


handler = lambda_handler(app)
