"""HTTP entry point of the ingress resource group: public webhook deliveries and their dry-run check."""

from __future__ import annotations

from typing import Any

from fastapi import Header, Query, Request
from fastapi.responses import JSONResponse

from bloxserver import waits
from bloxserver.api import any_json_body, create_app, error_responses, lambda_handler
from bloxserver.errors import BadRequest, InvalidState, QuotaExceeded, RateLimited, WebhookSignatureInvalid

import ingress_logic
import webhook_input

MAX_WEBHOOK_BODY_BYTES = 256 * 1024

app = create_app("BloxServer ingress")


@app.post(
    "/webhooks/{token}", status_code=202,
    responses={
        **error_responses(BadRequest, WebhookSignatureInvalid, InvalidState, RateLimited, QuotaExceeded),
        **waits.WAITED_RESPONSE,
    },
    openapi_extra=any_json_body("The delivery, passed to the flow as its input (any content type is taken)"),
)
async def receive_webhook(
    token: str,
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    prefer: str | None = Header(None),
    wait: str | None = Query(None),
) -> JSONResponse:
    wait_seconds = waits.requested_wait(prefer, wait)
    delivery = webhook_input.DeliveryRequest(request.method, request.query_params.multi_items())
    execution_id, ended = ingress_logic.receive_webhook(
        token, await request.body(), dict(request.headers), idempotency_key, delivery, wait_seconds
    )
    if ended is not None:
        return JSONResponse(waits.result_body(ended), headers=waits.preference_applied(wait_seconds))
    return JSONResponse({"status": "accepted", "executionId": execution_id}, status_code=202)


@app.get("/webhooks/{token}/test")
async def check_webhook(token: str) -> dict[str, Any]:
    return ingress_logic.check_webhook(token)


handler = lambda_handler(app, max_body_bytes=MAX_WEBHOOK_BODY_BYTES)
