"""Input checks: printable names and descriptions, a bounded validation answer, and a production API that fails
closed without its authorized parties."""

from __future__ import annotations

import pytest

from tests.support import ALICE, call, triggers_path

BAD_NAMES = ["   ", "\t", "\u3000\u200b", "a\x00b", "\x1b[31mred", "line\nbreak", "back\rspace", "bell\x07", "del\x7f"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_given_a_blank_or_control_character_name_then_creating_a_flow_is_422_and_nothing_is_written(flows, name):
    reply = call(flows, "POST", "/api/v1/flows", body={"name": name}, claims=ALICE)
    assert (reply.status, reply.json["code"]) == (422, "validation_error") and "body.name" in reply.json["details"]
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


@pytest.mark.parametrize("name", BAD_NAMES)
def test_given_a_blank_or_control_character_name_then_renaming_a_flow_or_naming_a_trigger_is_422(
    flows, triggers, flow_id, name
):
    renamed = call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"name": name}, claims=ALICE)
    assert renamed.status == 422 and "body.name" in renamed.json["details"]
    assert call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["name"] == "Triggered"
    body = {"type": "manual", "name": name, "config": {"type": "manual"}}
    created = call(triggers, "POST", triggers_path(flow_id), body=body, claims=ALICE)
    assert created.status == 422 and "body.name" in created.json["details"]


@pytest.mark.parametrize("description", ["bell\x07", "\x1b]0;title\x07", "nul\x00"])
def test_given_a_description_with_control_characters_then_422_naming_it(flows, flow_id, description):
    created = call(flows, "POST", "/api/v1/flows", body={"name": "ok", "description": description}, claims=ALICE)
    assert created.status == 422 and "body.description" in created.json["details"]
    updated = call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"description": description}, claims=ALICE)
    assert updated.status == 422 and "body.description" in updated.json["details"]


def test_given_a_name_with_inner_spaces_and_a_description_with_line_breaks_then_they_are_kept(flows):
    body = {"name": "  My flow ", "description": "First line.\n\tSecond line."}
    reply = call(flows, "POST", "/api/v1/flows", body=body, claims=ALICE)
    assert reply.status == 201 and (reply.json["name"], reply.json["description"]) == (body["name"], body["description"])


def many_cycles_yaml(count: int) -> str:
    listeners = "\n".join(
        f"  - {{name: l{i}, description: loops, handler: transform, config: {{expression: '@'}}, peers: [l{i}]}}"
        for i in range(count)
    )
    return f"organism: {{name: loops}}\nlisteners:\n{listeners}\n  - {{name: bad, handler: nope}}\n"


def test_given_a_flow_with_thousands_of_findings_then_validate_lists_the_first_200_errors_first_and_counts_the_rest(
    flows,
):
    created = call(flows, "POST", "/api/v1/flows", body={"name": "Loops", "organismYaml": many_cycles_yaml(600)}, claims=ALICE)
    assert created.status == 201
    reply = call(flows, "POST", f"/api/v1/flows/{created.json['id']}/validate", claims=ALICE)
    assert reply.status == 200 and len(reply.json) == 201
    assert reply.json[0]["code"] == "unknown_handler"  # the one error comes first, whatever its place
    note = reply.json[-1]
    # 600 cycles, 600 unreachable listeners and one error
    assert (note["code"], note["severity"], note["omitted"]) == ("issues_truncated", "info", 1201 - 200)
    started = call(flows, "POST", f"/api/v1/flows/{created.json['id']}/start", claims=ALICE)
    assert started.status == 422 and len(started.json["details"]["issues"]) == 201


@pytest.fixture
def production(monkeypatch):
    from bloxserver.settings import get_settings

    def configure(parties: str) -> None:
        monkeypatch.setenv("ENVIRONMENT", "prod")
        monkeypatch.setenv("AUTHORIZED_PARTIES", parties)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_given_production_without_authorized_parties_then_every_protected_request_is_401_naming_the_parameter(
    flows, users, production
):
    production("")
    for handler, path in [(flows, "/api/v1/flows"), (users, "/api/v1/me"), (users, "/api/v1/me/usage")]:
        reply = call(handler, "GET", path, claims=ALICE | {"azp": "https://app.example.com"})
        assert (reply.status, reply.json["code"]) == (401, "unauthorized")
        assert "AuthorizedParties" in reply.json["message"]


def test_given_production_with_authorized_parties_then_a_token_from_one_of_them_is_served(flows, production):
    production("https://app.example.com")
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE | {"azp": "https://app.example.com"}).status == 200
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE | {"azp": "https://evil.example.com"}).status == 401
