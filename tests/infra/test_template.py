"""template.yaml is valid, and renders (through the SAM translator) to the deployment the product needs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.template import ROOT, load_template

PARAMETERS = {"ClerkIssuer": "https://clerk.example.com", "ClerkAudience": "bloxserver", "ClerkWebhookSecret": "x"}
PUBLIC_PREFIXES = ("/health", "/webhooks/", "/$default")
# The marketplace's browse and get: a landing page shows them to visitors without an account (docs/marketplace.md).
PUBLIC_API_ROUTES = {("get", "/api/v1/marketplace"), ("get", "/api/v1/marketplace/{listingId}")}


@pytest.fixture(scope="module")
def rendered() -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import copy

    from samtranslator.translator.transform import transform

    template = copy.deepcopy(load_template())
    for props in (r.get("Properties", {}) for r in template["Resources"].values()):
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://placeholder/code.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(template, PARAMETERS, NoManagedPolicies())


def _routes(rendered: dict) -> dict[tuple[str, str], dict]:
    api = next(r for r in rendered["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    return {
        (method, path): operation
        for path, methods in api["Properties"]["Body"]["paths"].items()
        for method, operation in methods.items()
    }


def test_cfn_lint_reports_nothing():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_api_route_has_the_clerk_authorizer_and_public_routes_none(rendered):
    routes = _routes(rendered)
    assert any(path.startswith("/api/v1/") for _, path in routes)
    for (method, path), operation in routes.items():
        if (method, path) in PUBLIC_API_ROUTES:
            assert operation["security"] == [{"NONE": []}], (method, path)
        elif path.startswith("/api/v1/"):
            assert operation["security"] == [{"ClerkJwt": []}], (method, path)
        else:
            assert path.startswith(PUBLIC_PREFIXES), f"unexpected public route {method} {path}"
            assert operation["security"] == [{"NONE": []}], (method, path)


def test_the_authorizer_checks_the_clerk_issuer_and_audience(rendered):
    authorizers = next(
        r for r in rendered["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"
    )["Properties"]["Body"]["components"]["securitySchemes"]
    jwt = authorizers["ClerkJwt"]["x-amazon-apigateway-authorizer"]
    assert jwt["type"] == "jwt"
    assert jwt["jwtConfiguration"]["issuer"] == {"Ref": "ClerkIssuer"}
    assert jwt["jwtConfiguration"]["audience"] == [{"Ref": "ClerkAudience"}]


def test_routes_are_explicit_no_greedy_proxies(rendered):
    assert not [path for _, path in _routes(rendered) if "proxy+" in path]


def test_tables_are_on_demand_recoverable_encrypted_and_retained():
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        assert resource["DeletionPolicy"] == "Retain" and resource["UpdateReplacePolicy"] == "Retain", name
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert props["SSESpecification"]["SSEEnabled"] is True, name


def test_each_function_reaches_its_handler_module_in_two_hops():
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        module, _, attribute = props["Handler"].rpartition(".")
        source = ROOT / props["CodeUri"] / f"{module}.py"
        assert source.exists(), f"{name}: {source} missing"
        assert f"{attribute} = " in source.read_text() or f"def {attribute}(" in source.read_text(), name


def test_every_function_that_queues_executions_may_send_to_the_queue_and_knows_its_url():
    queue_ref = {"QueueName": {"Fn::GetAtt": ["ExecutionQueue", "QueueName"]}}
    senders = []
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        code = " ".join(path.read_text() for path in (ROOT / props["CodeUri"]).glob("*.py"))
        if re.search(r"\b(start_execution|requeue)\(", code):
            senders.append(name)
            assert {"SQSSendMessagePolicy": queue_ref} in props.get("Policies", []), name
            assert props["Environment"]["Variables"].get("EXECUTION_QUEUE_URL") == {"Ref": "ExecutionQueue"}, name
    assert {"IngressFunction", "ExecutionsFunction", "ScheduleFunction", "SweeperFunction"} <= set(senders)


def test_the_layer_is_built_for_the_runtime_with_pinned_requirements():
    layer = load_template()["Resources"]["SharedLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert load_template()["Globals"]["Function"]["Runtime"] == "python3.12"
    requirements = (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)


def _policy_documents(rendered: dict):
    for name, resource in rendered["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                # A conditional policy is checked as if its condition held (the more permissive case).
                policy = policy["Fn::If"][1] if "Fn::If" in policy else policy
                yield name, policy["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            yield name, resource["Properties"]["PolicyDocument"]


def test_policies_grant_no_wildcard_actions(rendered):
    documents = list(_policy_documents(rendered))
    assert documents
    for name, document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), (name, actions)


def test_pass_role_is_scoped_to_the_scheduler_service(rendered):
    pass_role = [
        statement
        for _, document in _policy_documents(rendered)
        for statement in document["Statement"]
        if "iam:PassRole" in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    ]
    assert pass_role
    for statement in pass_role:
        assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "scheduler.amazonaws.com"
        assert statement["Resource"] != "*"


def test_the_executor_may_invoke_only_the_default_and_the_tiers_bedrock_models():
    from bloxserver.limits import bedrock_models_of_every_tier

    template = load_template()
    allowed = template["Parameters"]["BedrockAllowedModelIds"]["Default"].split(",")
    assert sorted(allowed) == sorted(bedrock_models_of_every_tier())
    statements = [
        statement
        for policy in template["Resources"]["ExecutorFunction"]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if "bedrock:InvokeModel" in statement["Action"]
    ]
    [statement] = statements
    assert "/*" not in str(statement["Resource"])
    assert "BedrockModelId" in str(statement["Resource"]) and "BedrockAllowedModelIds" in str(statement["Resource"])
