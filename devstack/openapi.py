"""`make openapi`: one OpenAPI 3.1 document for the whole API, from template.yaml and every function's FastAPI app.

The template decides what exists: each HttpApi route (but `$default`, which only answers unknown routes) becomes
one operation, at the path and with the path parameter names API Gateway routes it by, protected by the bearer
scheme when its authorizer applies. The function's app decides what the operation takes and answers
(`bloxserver.api.openapi_of`: contract schemas, every error an ApiError with its codes).

    python -m devstack.openapi            # writes openapi.json at the top of the repository
    python -m devstack.openapi --check    # exit 1 when openapi.json differs from what the code says
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from typing import Any

from fastapi import FastAPI

from devstack import template

DOCUMENT_PATH = template.ROOT / "openapi.json"
OPENAPI_VERSION = "3.1.0"
_VARIABLE = re.compile(r"\{([^}]+)\}")


def _shape(path: str) -> str:
    """A path with its variables unnamed: FastAPI's `{flow_id}` and the template's `{flowId}` are one route."""
    return _VARIABLE.sub("{}", path)


def _app_of(spec: template.FunctionSpec) -> FastAPI:
    module = spec.import_module()
    apps = [value for value in vars(module).values() if isinstance(value, FastAPI)]
    if len(apps) != 1:
        raise LookupError(f"{spec.logical_id}: {spec.module} should define one FastAPI app, found {len(apps)}")
    return apps[0]


def _operation(app_document: dict[str, Any], route: template.HttpRoute) -> dict[str, Any]:
    """The app's operation for a template route, with the template's path parameter names."""
    for app_path, operations in app_document.get("paths", {}).items():
        operation = operations.get(route.method.lower())
        if operation is None or _shape(app_path) != _shape(route.path):
            continue
        operation = copy.deepcopy(operation)
        renamed = dict(zip(_VARIABLE.findall(app_path), _VARIABLE.findall(route.path), strict=True))
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                parameter["name"] = renamed[parameter["name"]]
        return operation
    raise LookupError(f"{route.function} routes {route.route_key} in template.yaml, but its app has no such route")


def _merge_schemas(into: dict[str, Any], schemas: dict[str, Any], source: str) -> None:
    for name, schema in schemas.items():
        if into.setdefault(name, schema) != schema:
            raise ValueError(f"schema {name!r} of {source} differs from another function's schema of that name")


def _contract_schemas() -> dict[str, Any]:
    """Every model of the wire contract (bloxserver.contract), those no route uses yet included, so a client has
    all of its types. Generic models appear through the routes that use them (PaginatedResponse_Flow_...)."""
    import pydantic
    from pydantic.json_schema import models_json_schema

    from bloxserver import contract

    models = [
        value
        for value in vars(contract).values()
        if isinstance(value, type)
        and issubclass(value, pydantic.BaseModel)
        and value.__module__ == contract.__name__
        and value is not contract.BaseModel
        and not value.__pydantic_generic_metadata__["parameters"]
    ]
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], by_alias=True, ref_template="#/components/schemas/{model}"
    )
    return definitions.get("$defs", {})


def _security_schemes() -> dict[str, Any]:
    """The template's JWT authorizers as bearer schemes."""
    authorizers = template.http_api().get("Auth", {}).get("Authorizers", {})
    return {
        name: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A session token of the issuer the HTTP API's JWT authorizer trusts "
            "(Clerk; locally `bloxserver token` or the token `make dev` prints)",
        }
        for name in authorizers
    }


def build_document() -> dict[str, Any]:
    from bloxserver.api import declare_errors, openapi_of
    from bloxserver.errors import ErrorCode

    routes = [route for route in template.http_routes() if route.path != "/$default"]
    specs = template.functions()
    app_documents = {name: openapi_of(_app_of(specs[name])) for name in sorted({route.function for route in routes})}
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda route: (route.path, route.method)):
        app_document = app_documents[route.function]
        operation = _operation(app_document, route)
        operation["operationId"] = route.event
        operation["tags"] = [specs[route.function].code_dir.name]
        if route.authorizer is None:
            operation["security"] = []
        else:
            operation["security"] = [{route.authorizer: []}]
            declare_errors(operation, ErrorCode.UNAUTHORIZED)  # the authorizer's refusal, before any function
        operation["responses"] = dict(sorted(operation["responses"].items()))
        paths.setdefault(route.path, {})[route.method.lower()] = operation
        _merge_schemas(schemas, app_document.get("components", {}).get("schemas", {}), route.function)
    for name, schema in _contract_schemas().items():
        schemas.setdefault(name, schema)  # what the apps generate wins: they are what the routes answer
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "BloxServer API",
            "version": app_documents[routes[0].function]["info"]["version"],
            "description": "Every route of template.yaml's HTTP API. Every error is an ApiError "
            "{code, message, details?}; each response lists its codes (docs/api.md). In AWS, API Gateway's JWT "
            "authorizer answers a missing or invalid token with 401 {\"message\": \"Unauthorized\"} (its body "
            "cannot be changed); the local stack answers that 401 as an ApiError.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": _security_schemes()},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with openapi.json instead of writing it")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        if not DOCUMENT_PATH.exists() or DOCUMENT_PATH.read_text() != text:
            print("openapi.json is not what the code describes: run `make openapi` and commit it", file=sys.stderr)
            return 1
        return 0
    DOCUMENT_PATH.write_text(text)
    print(f"wrote {DOCUMENT_PATH.relative_to(template.ROOT)}: {sum(map(len, json.loads(text)['paths'].values()))} "
          "operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
