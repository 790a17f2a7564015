"""secret('NAME') in http templates: checked against the owner's secret names at validation, given to the run when
it starts, sent where the template says, and redacted as *** in everything the engine writes."""

from __future__ import annotations

import json
import time

import pytest
from engine_fakes import LocalServer, Reply, scripted
from test_engine_http import LOOPBACK_ONLY, everything_logged, http_flow

from bloxserver.engine import FlowContext, RunServices, run_flow, validate

API_KEY = "sk-live-9f8e7d6c5b4a"
OWNER_SECRETS = {"API_KEY": API_KEY, "PASSWORD": 'pa ss/wörd&"x'}


def with_secrets(values: dict[str, str], asked: list | None = None) -> RunServices:
    def secret_values(names: frozenset[str]) -> dict[str, str]:
        if asked is not None:
            asked.append(names)
        return {name: values[name] for name in names if name in values}

    return RunServices(secret_values=secret_values)


def run(yaml_text: str, payload: object, services: RunServices = RunServices(), log_payloads: bool = False):
    if log_payloads:
        yaml_text = yaml_text.replace("listeners:", "log_payloads: true\nlisteners:", 1)
    return run_flow(
        yaml_text,
        json.dumps(payload),
        execution_id="exec-secrets",
        deadline=time.monotonic() + 10,
        settings=LOOPBACK_ONLY,
        services=services,
    )


def errors(yaml_text: str, context: FlowContext) -> list[tuple[str, str]]:
    return [(issue.code, issue.message) for issue in validate(yaml_text, context) if issue.severity == "error"]


def test_secrets_are_sent_in_headers_url_and_body_and_never_written_by_the_engine():
    echo = Reply(body={"echoed": f"Bearer {API_KEY}", "password": OWNER_SECRETS["PASSWORD"]})
    asked: list[frozenset[str]] = []
    with LocalServer(scripted(echo)) as server:
        yaml_text = http_flow(
            f"""{{method: POST, url: "{server.url}/v1?key=secret('PASSWORD')",
                headers: {{Authorization: "Bearer {{{{ secret('API_KEY') }}}}"}},
                body: "token=secret('API_KEY')&user={{{{ user }}}}"}}"""
        )
        result = run(yaml_text, {"user": "ada"}, with_secrets(OWNER_SECRETS, asked), log_payloads=True)

    assert result.status == "success", result.error
    assert asked == [frozenset({"API_KEY", "PASSWORD"})]
    [request] = server.requests
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.path == "/v1?key=pa%20ss%2Fw%C3%B6rd%26%22x"
    assert request.body == f"token={API_KEY}&user=ada".encode()
    written = everything_logged(result) + result.output
    assert API_KEY not in written
    assert "pa ss" not in written and "pa%20ss" not in written
    assert json.loads(result.output)["body"] == {"echoed": "Bearer ***", "password": "***"}


def test_an_error_that_would_quote_a_secret_shows_stars():
    with LocalServer(scripted(Reply(status=500, body="bad"))) as server:
        yaml_text = http_flow(f'{{url: "{server.url}/keys/secret(\'API_KEY\')"}}')
        result = run(yaml_text, {}, with_secrets(OWNER_SECRETS))
    assert result.error == f"listener 'call' failed: GET {server.url}/keys/*** answered HTTP 500"
    assert API_KEY not in everything_logged(result)


def test_validation_refuses_a_secret_the_owner_does_not_have_naming_it():
    yaml_text = http_flow("""{url: "https://api.example.com/", headers: {X-Key: "secret('MISSING_KEY')"}}""")

    found = errors(yaml_text, FlowContext(secret_names=frozenset({"API_KEY"})))

    assert found == [
        (
            "invalid_config",
            "listener 'call': no secret named 'MISSING_KEY' exists: add it with PUT /api/v1/secrets/MISSING_KEY",
        )
    ]
    assert errors(yaml_text, FlowContext(secret_names=frozenset({"MISSING_KEY"}))) == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("""{url: "https://api.example.com/", headers: {X-Key: "secret('bad-name')"}}""", "secret name 'bad-name' must be"),
        ("""{url: "https://api.example.com/", headers: {X-Key: "{{ length(secret('API_KEY')) }}"}}""", "unknown function secret()"),
    ],
)
def test_a_malformed_reference_or_a_secret_inside_an_expression_is_refused(config, problem):
    [(code, message)] = errors(http_flow(config), FlowContext(secret_names=frozenset({"API_KEY"})))
    assert code == "invalid_config" and problem in message


def test_secrets_exist_only_in_http_templates_not_in_expressions():
    yaml_text = """
organism: {name: leak}
listeners:
  - {name: leak, description: x, handler: transform, config: {expression: "secret('API_KEY')"}}
"""
    [(code, message)] = errors(yaml_text, FlowContext(secret_names=frozenset({"API_KEY"})))
    assert code == "invalid_config" and "unknown function secret()" in message


def test_a_secret_deleted_after_the_start_ends_the_run_as_error_naming_it():
    with LocalServer(scripted()) as server:
        yaml_text = http_flow(f"""{{url: "{server.url}/", headers: {{X-Key: "secret('API_KEY')"}}}}""")
        result = run(yaml_text, {}, with_secrets({}))
    assert (result.status, result.error) == ("error", "no secret named 'API_KEY' exists")
    assert server.requests == []


def test_a_run_without_secret_services_cannot_use_secrets():
    yaml_text = http_flow("""{url: "https://api.example.com/", headers: {X-Key: "secret('API_KEY')"}}""")
    result = run(yaml_text, {})
    assert (result.status, result.error) == ("error", "secrets are not available to this run")


def test_a_flow_without_secrets_never_asks_for_them():
    asked: list[frozenset[str]] = []
    with LocalServer(scripted(Reply(body="ok"))) as server:
        result = run(http_flow(f'{{url: "{server.url}/"}}'), {}, with_secrets(OWNER_SECRETS, asked))
    assert result.status == "success"
    assert asked == []
