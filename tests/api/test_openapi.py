"""openapi.json: one OpenAPI 3.1 document for every route of template.yaml, committed, and never behind the code."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from devstack import openapi, template
from devstack.template import http_routes

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def document():
    return openapi.build_document()


@pytest.fixture(scope="module")
def committed():
    return json.loads(openapi.DOCUMENT_PATH.read_text())


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_given_the_code_when_the_document_is_rebuilt_then_it_is_the_committed_openapi_json(document):
    assert openapi.render(document) == openapi.DOCUMENT_PATH.read_text(), (
        "openapi.json is behind the code: run `make openapi` and commit it"
    )


def test_the_committed_document_is_valid_openapi_3_1(committed):
    assert committed["openapi"].startswith("3.1")
    validate(committed)


def test_every_route_of_the_template_is_in_the_document_and_nothing_else(committed):
    template_routes = {(route.method.lower(), route.path) for route in http_routes() if route.path != "/$default"}
    documented = {(method, path) for path, method, _ in operations(committed)}
    assert documented == template_routes


def test_paths_name_their_parameters_as_api_gateway_routes_them(committed):
    for path, _, operation in operations(committed):
        in_path = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "path"}
        assert in_path == set(openapi._VARIABLE.findall(path)), path


def test_protected_routes_require_the_bearer_scheme_and_may_answer_401(committed):
    protected = {(route.method.lower(), route.path): route.authorizer for route in http_routes()}
    schemes = committed["components"]["securitySchemes"]
    for path, method, operation in operations(committed):
        authorizer = protected[(method, path)]
        if authorizer is None:
            assert operation["security"] == [], path
            assert "401" not in operation["responses"] or "unauthorized" not in operation["responses"]["401"][
                "x-error-codes"]
        else:
            assert operation["security"] == [{authorizer: []}]
            assert schemes[authorizer] == {**schemes[authorizer], "type": "http", "scheme": "bearer"}
            assert "unauthorized" in operation["responses"]["401"]["x-error-codes"]


def test_every_error_response_is_an_api_error_with_its_codes(committed):
    from bloxserver.errors import HTTP_STATUS, ErrorCode

    for path, method, operation in operations(committed):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            codes = response["x-error-codes"]
            schema = response["content"]["application/json"]["schema"]
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/ApiError"}, (method, path, status)
            assert schema["allOf"][1]["properties"]["code"]["enum"] == codes
            assert all(ErrorCode(code) for code in codes)
            # A code keeps its status, except one an AppError subclass gives another (WebhookSignatureInvalid: 401).
            assert {HTTP_STATUS[ErrorCode(code)] for code in codes if code != "invalid_signature"} <= {int(status)}


def test_invalid_input_is_declared_as_a_validation_error_never_fastapis_own(committed):
    assert "HTTPValidationError" not in committed["components"]["schemas"]
    create_flow = committed["paths"]["/api/v1/flows"]["post"]
    assert "validation_error" in create_flow["responses"]["422"]["x-error-codes"]
    assert "payload_too_large" in create_flow["responses"]["413"]["x-error-codes"]
    assert "not_found" in committed["paths"]["/api/v1/flows/{flowId}"]["get"]["responses"]["404"]["x-error-codes"]


def test_schemas_are_the_contracts_with_its_camel_case_names(committed):
    schemas = committed["components"]["schemas"]
    assert {"organismYaml", "canvasState", "createdAt", "updatedAt"} <= set(schemas["Flow"]["properties"])
    assert {"items", "total", "page", "pageSize", "hasMore"} == set(
        schemas["PaginatedResponse_FlowSummary_"]["properties"]
    )
    assert set(schemas["ApiError"]["required"]) == {"code", "message"}


def test_each_operation_is_named_after_its_template_event(committed):
    events = {(route.method.lower(), route.path): route.event for route in http_routes()}
    ids = [operation["operationId"] for _, _, operation in operations(committed)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(committed):
        assert operation["operationId"] == events[(method, path)]
        assert operation["tags"] == [template.functions()[_function_of(method, path)].code_dir.name]


def _function_of(method: str, path: str) -> str:
    (route,) = [route for route in http_routes() if (route.method.lower(), route.path) == (method, path)]
    return route.function
