"""HTTP entry point of the memory resource group: a flow's project memory and its entries."""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, Header, Request, Response
from starlette.convertors import PathConvertor, register_url_convertor

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import LimitReached, MemoryDisabled, MemoryFull, ServiceUnavailable, VersionMismatch
from bloxserver.auth import Principal
from bloxserver.contract import MemoryEntry, ProjectMemory, PutMemoryEntryRequest, UpdateProjectMemoryRequest

import memory_logic



class MemoryKeyConvertor(PathConvertor):
    """Any text, "/" and control characters included (a key holding them is refused with a 422 naming it, not a
    404): a client sends "/" as %2F, which API Gateway routes as one segment."""

    regex = r"[\s\S]+"


register_url_convertor("memory_key", MemoryKeyConvertor())

app = create_app("BloxServer memory")


def entry_key(request: Request, key: str) -> str:
    """The entry's key as API Gateway decoded its path parameter (the path FastAPI routes on may still hold the
    %XX escapes a client must use for "/", "?", "#" or "%" in a key)."""
    parameters = (request.scope.get("aws.event") or {}).get("pathParameters") or {}
    return parameters.get("key", key)

MEMORY = "/api/v1/flows/{flow_id}/memory"
ENTRY = MEMORY + "/entries/{key:memory_key}"


@app.get(MEMORY, response_model=ProjectMemory)
async def get_memory(flow_id: UUID, principal: Principal = Depends(current_principal)) -> ProjectMemory:
    return memory_logic.describe(principal, flow_id)


@app.patch(
    MEMORY, response_model=ProjectMemory,
    responses=error_responses(LimitReached),
)
async def update_memory(
    flow_id: UUID, body: UpdateProjectMemoryRequest, principal: Principal = Depends(current_principal)
) -> ProjectMemory:
    return memory_logic.set_enabled(principal, flow_id, body.enabled)


@app.delete(
    MEMORY, status_code=204,
    responses=error_responses(ServiceUnavailable),
)
async def clear_memory(flow_id: UUID, principal: Principal = Depends(current_principal)) -> Response:
    memory_logic.clear(principal, flow_id)
    return Response(status_code=204)


@app.get(
    ENTRY, response_model=MemoryEntry,
    responses=error_responses(MemoryDisabled),
)
async def get_entry(
    flow_id: UUID, key: str = Depends(entry_key), principal: Principal = Depends(current_principal)
) -> MemoryEntry:
    return memory_logic.get_entry(principal, flow_id, key)


@app.put(
    ENTRY, response_model=MemoryEntry,
    responses=error_responses(MemoryDisabled, VersionMismatch, MemoryFull),
)
async def put_entry(
    flow_id: UUID,
    body: PutMemoryEntryRequest,
    key: str = Depends(entry_key),
    if_match: str | None = Header(None, alias="If-Match"),
    if_none_match: str | None = Header(None, alias="If-None-Match"),
    principal: Principal = Depends(current_principal),
) -> MemoryEntry:
    condition = memory_logic.precondition(if_match, if_none_match)
    return memory_logic.put_entry(principal, flow_id, key, body.value, body.ttl_seconds, condition)


@app.delete(
    ENTRY, status_code=204,
    responses=error_responses(MemoryDisabled, VersionMismatch),
)
async def delete_entry(
    flow_id: UUID,
    key: str = Depends(entry_key),
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = Depends(current_principal),
) -> Response:
    memory_logic.delete_entry(principal, flow_id, key, memory_logic.precondition(if_match, None))
    return Response(status_code=204)


handler = lambda_handler(app)
