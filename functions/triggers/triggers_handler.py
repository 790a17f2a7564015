"""HTTP entry point of the triggers resource group: parse, call one logic function, shape the answer."""

from __future__ import annotations

from uuid import UUID

from fastapi import Depends, Response

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import Conflict, InvalidState, LimitReached, ServiceUnavailable
from bloxserver.auth import Principal
from bloxserver.contract import CreateTriggerRequest, Trigger, UpdateTriggerRequest

import triggers_logic

app = create_app("BloxServer triggers")

TRIGGERS = "/api/v1/flows/{flow_id}/triggers"
TRIGGER = TRIGGERS + "/{trigger_id}"


@app.get(TRIGGERS, response_model=list[Trigger])
async def list_triggers(flow_id: UUID, principal: Principal = Depends(current_principal)) -> list[Trigger]:
    return triggers_logic.list_triggers(principal, flow_id)


@app.post(
    TRIGGERS, response_model=Trigger, status_code=201,
    responses=error_responses(LimitReached, ServiceUnavailable),
)
async def create_trigger(
    flow_id: UUID, body: CreateTriggerRequest, principal: Principal = Depends(current_principal)
) -> Trigger:
    return triggers_logic.create_trigger(principal, flow_id, body)


@app.get(TRIGGER, response_model=Trigger)
async def get_trigger(flow_id: UUID, trigger_id: UUID, principal: Principal = Depends(current_principal)) -> Trigger:
    return triggers_logic.get_trigger(principal, flow_id, trigger_id)


@app.patch(
    TRIGGER, response_model=Trigger,
    responses=error_responses(ServiceUnavailable),
)
async def update_trigger(
    flow_id: UUID, trigger_id: UUID, body: UpdateTriggerRequest, principal: Principal = Depends(current_principal)
) -> Trigger:
    return triggers_logic.update_trigger(principal, flow_id, trigger_id, body)


@app.delete(
    TRIGGER, status_code=204,
    responses=error_responses(ServiceUnavailable),
)
async def delete_trigger(
    flow_id: UUID, trigger_id: UUID, principal: Principal = Depends(current_principal)
) -> Response:
    triggers_logic.delete_trigger(principal, flow_id, trigger_id)
    return Response(status_code=204)


@app.post(
    TRIGGER + "/regenerate-token", response_model=Trigger,
    responses=error_responses(InvalidState, Conflict, ServiceUnavailable),
)
async def regenerate_token(
    flow_id: UUID, trigger_id: UUID, principal: Principal = Depends(current_principal)
) -> Trigger:
    return triggers_logic.regenerate_token(principal, flow_id, trigger_id)


handler = lambda_handler(app)
