"""The HTTP side shared by every API function: the FastAPI app factory, ApiError everywhere, the Lambda entry point.

Every non-2xx answer is an `ApiError {code, message, details?}`; the status comes from `errors.HTTP_STATUS`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from mangum import Mangum
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aws_lambda_powertools.logging import correlation_paths

from bloxserver import jsonvalues
from bloxserver.auth import Principal, claims_from_event, principal_from_claims
from bloxserver.contract import TRIGGER_CONFIG_TAGS, VERIFY_SCHEME_TAGS, ApiError
from bloxserver.errors import HTTP_STATUS, AppError, ErrorCode
from bloxserver.observability import logger, metrics

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
NOT_A_JSON_BODY = "must be a JSON object, sent with Content-Type: application/json"
UNREADABLE_JSON = "not readable as JSON: UTF-8 text, numbers of at most 4300 digits, nested less than 1000 levels"
FASTAPI_UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's HTTPException detail

# Contract models defer their build (cold start); FastAPI's body parameter then reaches Pydantic carrying the
# alias "body", which Pydantic warns has no effect there. It has none, by design.
warnings.filterwarnings("ignore", message="The 'alias' attribute with value 'body'")


def error_response(
    code: ErrorCode,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code.value, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status or HTTP_STATUS[code], headers=headers)


_UNION_TAGS = {"config": TRIGGER_CONFIG_TAGS, "verify": VERIFY_SCHEME_TAGS}


def _client_location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc]
    return ".".join(
        part for index, part in enumerate(parts)
        if not (index and part in _UNION_TAGS.get(parts[index - 1], ()))
    )


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for err in exc.errors():
        message, location = err.get("msg", "invalid value"), tuple(err.get("loc", ()))
        if location == ("body",) and isinstance(err.get("input"), (bytes, str)):
            # FastAPI reads JSON only under a JSON content type; curl -d sends a form's
            message = NOT_A_JSON_BODY
        elif err.get("type") == "json_invalid":  # FastAPI puts the character position where a field name goes
            message = f"not valid JSON: {err.get('ctx', {}).get('error', 'malformed')} at character {location[-1]}"
            location = ("body",)
        details[_client_location(location) or "request"] = message
    return details


async def _app_error(_: Request, exc: AppError) -> JSONResponse:
    return error_response(exc.code, exc.message, exc.details, exc.headers, exc.status)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(ErrorCode.VALIDATION_ERROR, "Request validation failed", _validation_details(exc))


_HTTP_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.detail == FASTAPI_UNPARSABLE_BODY:  # not UTF-8, too deep, too many digits
        return error_response(ErrorCode.VALIDATION_ERROR, "Request validation failed", {"body": UNREADABLE_JSON})
    if exc.status_code in (404, 405):
        # API Gateway routes by method and path, so a route's function only sees another method when a decoded %2F
        # made the path another route's: that is no route either.
        return error_response(ErrorCode.NOT_FOUND, "Route not found")
    return error_response(_HTTP_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST), str(exc.detail))


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware answers with this, then re-raises for GuardMiddleware to log.
    return error_response(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred")


def _holds_unpaired_surrogate(body: bytes) -> bool:
    """A JSON body whose text escapes an unpaired surrogate ("\\ud800"): Python's parser accepts it, but the string
    it makes can be neither stored nor answered. Only bodies with such an escape are parsed here (rare)."""
    if b"\\ud" not in body and b"\\uD" not in body:
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):  # not JSON: the route decides what that means
        return False
    return False


class GuardMiddleware:
    """Outermost ASGI layer: refuses bodies over the cap before any parsing, and turns any unexpected
    exception into a 500 ApiError that leaks nothing (the trace goes to the log)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            ErrorCode.PAYLOAD_TOO_LARGE, f"Request body exceeds {self.max_body_bytes} bytes"
        )
        json_typed = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await too_large(scope, receive, send)
                return
            json_typed = json_typed or (name == b"content-type" and b"json" in value.lower())
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = None
        if json_typed and json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
            problem = UNREADABLE_JSON  # UTF-16 or UTF-32, which Python's parser would otherwise read
        elif _holds_unpaired_surrogate(body):
            problem = jsonvalues.UNPAIRED_SURROGATE
        if problem:
            details = {"body": problem}
            await error_response(ErrorCode.VALIDATION_ERROR, "Request validation failed", details)(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay, tracking_send)
        except Exception:
            logger.exception("Unhandled error")
            if not started:
                await error_response(ErrorCode.INTERNAL_ERROR, "An unexpected error occurred")(
                    scope, receive, send
                )


# The OpenAPI extension on a response that lists the ApiError codes it carries (`error_responses`).
ERROR_CODES = "x-error-codes"
API_ERROR_SCHEMA = "#/components/schemas/ApiError"


def error_responses(*errors: ErrorCode | type[AppError]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the ApiError answers it gives beyond those every route may give (`openapi_of` adds
    422 validation_error, 404 not_found for a route with an id in its path, 413 payload_too_large for a body).
    An AppError subclass brings its own status when it has one (WebhookSignatureInvalid: 401)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        code = error if isinstance(error, ErrorCode) else error.code
        status = HTTP_STATUS[code] if isinstance(error, ErrorCode) else error.status or HTTP_STATUS[code]
        codes = responses.setdefault(status, {"model": ApiError, ERROR_CODES: []})[ERROR_CODES]
        if code.value not in codes:
            codes.append(code.value)
    return responses


def any_json_body(description: str) -> dict[str, Any]:
    """A route's `openapi_extra` when it reads its body itself (`await request.body()`): the document shows it."""
    content = {"application/json": {"schema": {"description": "any JSON"}}}
    return {"requestBody": {"required": False, "description": description, "content": content}}


def api_error_response(codes: list[str]) -> dict[str, Any]:
    """An OpenAPI response: an ApiError whose `code` is one of `codes`."""
    return {
        "description": "ApiError: " + ", ".join(f"`{code}`" for code in codes),
        ERROR_CODES: codes,
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [{"$ref": API_ERROR_SCHEMA}, {"properties": {"code": {"enum": codes}}}]
                }
            }
        },
    }


def declare_errors(operation: dict[str, Any], *codes: ErrorCode) -> None:
    """Add `codes` to the ApiError responses an OpenAPI operation declares (merged by status)."""
    responses = operation.setdefault("responses", {})
    for code in codes:
        status = str(HTTP_STATUS[code])
        declared = responses.get(status, {}).get(ERROR_CODES, [])
        responses[status] = api_error_response([*declared, *([code.value] if code.value not in declared else [])])


def openapi_of(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error answer an ApiError: FastAPI's own 422 schema replaced, the
    errors every route may give added, each declared response's codes listed (`error_responses`)."""
    if app.openapi_schema is None:
        # One schema per contract model, named as the contract names it (no "-Input"/"-Output" pairs).
        document = get_openapi(
            title=app.title, version=app.version, routes=app.routes, separate_input_output_schemas=False
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["ApiError"] = ApiError.model_json_schema(by_alias=True)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for response in responses.values():
                    if ERROR_CODES in response:
                        response.update(api_error_response(response[ERROR_CODES]))
                if "422" in responses and ERROR_CODES not in responses["422"]:
                    del responses["422"]  # FastAPI's HTTPValidationError: this API answers an ApiError
                if "parameters" in operation or "requestBody" in operation:
                    declare_errors(operation, ErrorCode.VALIDATION_ERROR)
                if "{" in path:
                    declare_errors(operation, ErrorCode.NOT_FOUND)
                if "requestBody" in operation:
                    declare_errors(operation, ErrorCode.PAYLOAD_TOO_LARGE)
        app.openapi_schema = document
    return app.openapi_schema


def create_app(title: str) -> FastAPI:
    # No redirects to the path without its trailing slash: API Gateway has no such route, so it is a 404 there too.
    # No OpenAPI route either: the whole API's document is built from every function's app (`make openapi`).
    app = FastAPI(
        title=title, version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
    )
    app.openapi = lambda: openapi_of(app)  # type: ignore[method-assign]
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    return app


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from the authorizer's claims in the Lambda event."""
    return principal_from_claims(claims_from_event(request.scope.get("aws.event") or {}))


def lambda_handler(app: FastAPI, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Callable[[dict, Any], dict]:
    """The Lambda entry point for an API function: Mangum with Powertools logging and metrics."""
    adapter = Mangum(GuardMiddleware(app, max_body_bytes), lifespan="off")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict, context: Any) -> dict:
        return adapter(event, context)

    return handler
