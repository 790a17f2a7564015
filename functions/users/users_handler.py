"""HTTP entry point of the users resource group: the caller's profile and usage, and Clerk's user sync."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, Query, Request

from bloxserver.api import create_app, current_principal, error_responses, lambda_handler
from bloxserver.errors import BadRequest, Conflict, InvalidSignature, ServiceUnavailable
from bloxserver.auth import Principal
from bloxserver.contract import UsageStats, User

import users_logic

app = create_app("BloxServer users")


@app.get("/api/v1/me", response_model=User)
async def get_me(principal: Principal = Depends(current_principal)) -> User:
    return users_logic.get_me(principal)


@app.get("/api/v1/me/usage", response_model=UsageStats)
async def get_usage(
    period: Literal["day", "month"] = Query("month"), principal: Principal = Depends(current_principal)
) -> UsageStats:
    return users_logic.get_usage(principal, period)


@app.post(
    "/webhooks/clerk",
    responses=error_responses(BadRequest, InvalidSignature, Conflict, ServiceUnavailable),
)
async def clerk_webhook(request: Request) -> dict[str, Any]:
    return users_logic.sync_clerk_event(await request.body(), dict(request.headers), request.scope.get("aws.context"))


handler = lambda_handler(app)
