"""HTTP entry point of the health resource group: liveness plus a readiness check of the tables, and the
catch-all route that answers every unknown path with an ApiError."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from bloxserver import clock
from bloxserver.api import create_app, error_response, error_responses, lambda_handler
from bloxserver.errors import ServiceUnavailable
from bloxserver.dal import health as health_store
from bloxserver.errors import ErrorCode

app = create_app("BloxServer health")


@app.get(
    "/health",
    responses=error_responses(ServiceUnavailable),
)
async def health() -> JSONResponse:
    checks = health_store.check_tables()
    if all(result == "ok" for result in checks.values()):
        return JSONResponse(
            {"status": "healthy", "service": "bloxserver-api", "timestamp": clock.now_iso(), "checks": checks}
        )
    return error_response(ErrorCode.SERVICE_UNAVAILABLE, "A readiness check failed", {"checks": checks})


@app.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], include_in_schema=False
)
async def unknown_route(path: str, request: Request) -> JSONResponse:
    return error_response(ErrorCode.NOT_FOUND, f"No route for {request.method} /{path}")


handler = lambda_handler(app)
