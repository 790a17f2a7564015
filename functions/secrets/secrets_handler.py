"""HTTP entry point of the secrets resource group: the caller's secrets (values go in, never out)."""

from __future__ import annotations

from fastapi import Depends, Response

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import LimitReached
from bloxserver.auth import Principal
from bloxserver.contract import PutSecretRequest, Secret

import secrets_logic

app = create_app("BloxServer secrets")

SECRETS = "/api/v1/secrets"


@app.get(SECRETS, response_model=list[Secret])
async def list_secrets(principal: Principal = Depends(current_principal)) -> list[Secret]:
    return secrets_logic.list_secrets(principal)


@app.put(
    SECRETS + "/{name}", response_model=Secret,
    responses=error_responses(LimitReached),
)
async def put_secret(name: str, body: PutSecretRequest, principal: Principal = Depends(current_principal)) -> Secret:
    return secrets_logic.put_secret(principal, name, body.value)


@app.delete(SECRETS + "/{name}", status_code=204)
async def delete_secret(name: str, principal: Principal = Depends(current_principal)) -> Response:
    secrets_logic.delete_secret(principal, name)
    return Response(status_code=204)


handler = lambda_handler(app)
