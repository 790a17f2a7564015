"""Flows through the real Lambda handler on embedded AWS: CRUD, limits, lifecycle, isolation, bad input."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bloxserver import api
from tests.support import ALICE, BOB, SHOUT_YAML, call, claims_for

PRO = claims_for("user_pat", tier="pro")


def create(flows, claims=ALICE, **body):
    return call(flows, "POST", "/api/v1/flows", body={"name": "My flow", **body}, claims=claims)


def test_given_a_new_user_when_they_create_a_flow_then_it_is_stopped_with_the_default_template(flows):
    reply = create(flows, description="first")
    assert reply.status == 201
    flow = reply.json
    assert flow["name"] == "My flow" and flow["description"] == "first"
    assert flow["status"] == "stopped" and flow["errorMessage"] is None
    assert "listeners" in flow["organismYaml"]
    assert flow["createdAt"] == flow["updatedAt"]
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json == flow


def test_given_snake_case_fields_when_creating_then_they_are_accepted(flows):
    reply = create(flows, claims=PRO, organism_yaml=SHOUT_YAML)
    assert reply.status == 201 and reply.json["organismYaml"] == SHOUT_YAML


def test_given_a_free_user_with_one_flow_when_creating_another_then_limit_reached(flows):
    assert create(flows).status == 201
    reply = create(flows)
    assert reply.status == 403
    assert reply.json["code"] == "limit_reached"
    assert "Flow limit reached (1)" in reply.json["message"]


def test_given_20_parallel_creates_by_a_free_user_then_exactly_one_flow_exists(flows):
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: create(flows).status, range(20)))
    assert statuses.count(201) == 1
    assert statuses.count(403) == 19
    listing = call(flows, "GET", "/api/v1/flows", claims=ALICE).json
    assert listing["total"] == 1 and len(listing["items"]) == 1


def test_given_a_pro_tier_claim_when_creating_many_flows_then_none_is_refused(flows):
    assert all(create(flows, claims=PRO, name=f"f{i}").status == 201 for i in range(12))


def test_given_several_flows_when_listing_then_newest_update_first_with_exact_total_and_pages(flows):
    ids = [create(flows, claims=PRO, name=f"flow {i}").json["id"] for i in range(5)]
    call(flows, "PATCH", f"/api/v1/flows/{ids[0]}", body={"name": "renamed"}, claims=PRO)
    first = call(flows, "GET", "/api/v1/flows", claims=PRO, query={"page": "1", "page_size": "2"}).json
    assert first["total"] == 5 and first["pageSize"] == 2 and first["hasMore"] is True
    assert [item["id"] for item in first["items"]] == [ids[0], ids[4]]
    last = call(flows, "GET", "/api/v1/flows", claims=PRO, query={"page": "3", "page_size": "2"}).json
    assert [item["id"] for item in last["items"]] == [ids[1]] and last["hasMore"] is False
    assert set(last["items"][0]) == {"id", "name", "description", "status", "updatedAt"}


def test_given_bad_paging_when_listing_then_422_names_the_parameter(flows):
    reply = call(flows, "GET", "/api/v1/flows", claims=ALICE, query={"page_size": "1000"})
    assert reply.status == 422 and "query.page_size" in reply.json["details"]


def test_given_another_users_flow_then_every_route_answers_404(flows):
    flow_id = create(flows).json["id"]
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "mine now"}),
        ("DELETE", "", None),
        ("POST", "/start", None),
        ("POST", "/stop", None),
    ]:
        reply = call(flows, method, f"/api/v1/flows/{flow_id}{suffix}", body=body, claims=BOB)
        assert reply.status == 404, (method, suffix)
        assert reply.json == {"code": "not_found", "message": "Flow not found"}
    assert call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).json["name"] == "My flow"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": ""}, "body.name"),
        ({"name": "x" * 101}, "body.name"),
        ({"name": "ok", "description": "d" * 501}, "body.description"),
        ({"name": 5}, "body.name"),
        ({}, "body.name"),
        ({"name": "ok", "organismYaml": "a: b\n" * 30000}, "body.organismYaml"),
        ({"name": "ok", "organismYaml": ""}, "body.organismYaml"),
        ({"name": "ok", "organismYaml": " \n "}, "body.organismYaml"),
    ],
)
def test_given_invalid_create_bodies_then_422_names_the_field_and_nothing_is_written(flows, body, field):
    reply = call(flows, "POST", "/api/v1/flows", body=body, claims=ALICE)
    assert reply.status == 422 and reply.json["code"] == "validation_error"
    assert field in reply.json["details"]
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


@pytest.mark.parametrize("organism_yaml", ["", "   \n"])
def test_given_an_empty_organism_yaml_when_patched_then_422_and_the_flow_keeps_its_yaml(flows, organism_yaml):
    flow = create(flows).json
    reply = call(flows, "PATCH", f"/api/v1/flows/{flow['id']}", body={"organismYaml": organism_yaml}, claims=ALICE)
    assert reply.status == 422 and reply.json["details"] == {"body.organismYaml": "empty"}
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json["organismYaml"] == flow["organismYaml"]


def test_given_malformed_json_then_422_saying_where_and_nothing_written(flows):
    reply = call(flows, "POST", "/api/v1/flows", body='{"name": ', claims=ALICE)
    assert reply.status == 422 and reply.json["code"] == "validation_error"
    assert reply.json["details"] == {"body": "not valid JSON: Expecting value at character 9"}
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


def test_given_a_huge_body_then_413(flows):
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "x", "organismYaml": "a" * 2_000_000}, claims=ALICE)
    assert reply.status == 413 and reply.json["code"] == "payload_too_large"


def test_given_a_non_uuid_id_then_422(flows):
    reply = call(flows, "GET", "/api/v1/flows/not-a-uuid", claims=ALICE)
    assert reply.status == 422 and "path.flow_id" in reply.json["details"]


def test_given_no_claims_then_401_api_error(flows):
    reply = call(flows, "GET", "/api/v1/flows")
    assert reply.status == 401 and reply.json["code"] == "unauthorized"


def test_given_an_unknown_flow_then_404(flows):
    assert call(flows, "GET", f"/api/v1/flows/{uuid.uuid4()}", claims=ALICE).status == 404


def test_given_a_stopped_flow_when_patched_then_fields_change_and_updated_at_moves(flows):
    flow = create(flows, claims=PRO).json
    reply = call(
        flows,
        "PATCH",
        f"/api/v1/flows/{flow['id']}",
        body={"description": "new", "organismYaml": SHOUT_YAML, "canvasState": {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}},
        claims=PRO,
    )
    assert reply.status == 200
    assert reply.json["description"] == "new" and reply.json["organismYaml"] == SHOUT_YAML
    assert reply.json["canvasState"]["viewport"]["zoom"] == 1
    assert reply.json["updatedAt"] > flow["updatedAt"]


def test_lifecycle_start_stop_and_edit_rules(flows):
    flow_id = create(flows, claims=PRO, organism_yaml=SHOUT_YAML).json["id"]
    started = call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PRO)
    assert started.status == 200 and started.json["status"] == "running"

    again = call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PRO)
    assert again.status == 409 and again.json["code"] == "invalid_state"

    edit = call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"organismYaml": SHOUT_YAML}, claims=PRO)
    assert edit.status == 409 and edit.json["code"] == "invalid_state"
    rename = call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"name": "still running"}, claims=PRO)
    assert rename.status == 200 and rename.json["status"] == "running"

    stopped = call(flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=PRO)
    assert stopped.status == 200 and stopped.json["status"] == "stopped"
    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/stop", claims=PRO).status == 409


def test_given_unusable_yaml_when_started_then_422_and_the_flow_is_in_error(flows):
    flow_id = create(flows, claims=PRO, organism_yaml="listeners: [unclosed").json["id"]
    reply = call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PRO)
    assert reply.status == 422 and reply.json["code"] == "invalid_flow"
    assert any(issue["severity"] == "error" for issue in reply.json["details"]["issues"])
    flow = call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=PRO).json
    assert flow["status"] == "error" and flow["errorMessage"]
    # error → stop is allowed, and from error the YAML may be fixed and the flow started
    fixed = call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body={"organismYaml": SHOUT_YAML}, claims=PRO)
    assert fixed.status == 200
    # the refused YAML is gone, and so is the verdict on it
    assert (fixed.json["status"], fixed.json["errorMessage"]) == ("stopped", None)
    assert call(flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PRO).json["status"] == "running"


def test_given_a_flow_when_deleted_then_gone_and_the_limit_frees_up(flows):
    flow_id = create(flows).json["id"]
    assert call(flows, "DELETE", f"/api/v1/flows/{flow_id}", claims=ALICE).status == 204
    assert call(flows, "GET", f"/api/v1/flows/{flow_id}", claims=ALICE).status == 404
    assert call(flows, "DELETE", f"/api/v1/flows/{flow_id}", claims=ALICE).status == 404
    assert create(flows).status == 201


def test_validate_lists_issues_without_changing_the_flow(flows):
    good = create(flows, claims=PRO, organism_yaml=SHOUT_YAML).json
    issues = call(flows, "POST", f"/api/v1/flows/{good['id']}/validate", claims=PRO).json
    assert [issue for issue in issues if issue["severity"] == "error"] == []
    bad = create(flows, claims=PRO, organism_yaml="listeners:\n  - name: a\n    handler: os.system\n").json
    issues = call(flows, "POST", f"/api/v1/flows/{bad['id']}/validate", claims=PRO).json
    assert any(issue["code"] == "unknown_handler" and issue["severity"] == "error" for issue in issues)
    assert call(flows, "GET", f"/api/v1/flows/{bad['id']}", claims=PRO).json["status"] == "stopped"
    assert call(flows, "POST", f"/api/v1/flows/{bad['id']}/validate", claims=BOB).status == 404


def test_given_a_page_too_deep_then_422_names_page(flows):
    reply = call(flows, "GET", "/api/v1/flows", claims=ALICE, query={"page": "102", "page_size": "100"})
    assert reply.status == 422 and "query.page" in reply.json["details"]
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE, query={"page": "101", "page_size": "100"}).status == 200


def test_given_a_json_body_sent_as_a_form_then_422_says_to_send_json(flows):
    # curl -d without -H 'content-type: application/json' sends a form content type
    form = {"content-type": "application/x-www-form-urlencoded"}
    reply = call(flows, "POST", "/api/v1/flows", body='{"name": "x"}', headers=form, claims=ALICE)
    assert reply.status == 422
    assert reply.json["details"] == {"body": "must be a JSON object, sent with Content-Type: application/json"}
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


def canvas(data: Any, viewport: str = '{"x": 0, "y": 0, "zoom": 1}') -> str:
    node = '{"id": "n1", "type": "agent", "position": {"x": 1.5, "y": 2}, "data": %s}' % data
    return '{"canvasState": {"nodes": [%s], "edges": [], "viewport": %s}}' % (node, viewport)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (canvas("{}", '{"x": 1e999, "y": 0, "zoom": 1}'), "a number JSON cannot carry (infinity or NaN)"),
        (canvas("{}", '{"x": NaN, "y": 0, "zoom": 1}'), "a number JSON cannot carry (infinity or NaN)"),
        (canvas('{"v": NaN}'), "a number JSON cannot carry (infinity or NaN)"),
        (canvas('{"d": ' + "[" * 300 + "]" * 300 + "}"), "nesting deeper than 256 levels"),
    ],
    ids=["infinite viewport", "NaN viewport", "NaN in node data", "300 levels"],
)
def test_given_a_canvas_json_cannot_carry_when_patched_then_422_names_it_and_nothing_changes(flows, body, problem):
    flow = create(flows).json
    reply = call(flows, "PATCH", f"/api/v1/flows/{flow['id']}", body=body, claims=ALICE)
    assert reply.status == 422 and problem in json.dumps(reply.json["details"])
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json == flow


@pytest.mark.parametrize(
    "body",
    [canvas('{"n": ' + "9" * 5000 + "}"), b'{"name": "\xff"}', "[" * 100_000 + "]" * 100_000],
    ids=["5000 digits", "not UTF-8", "nested past the parser"],
)
def test_given_a_body_json_cannot_read_then_422_names_the_body_and_nothing_changes(flows, body):
    flow = create(flows).json
    json_type = {"content-type": "application/json"}
    reply = call(flows, "PATCH", f"/api/v1/flows/{flow['id']}", body=body, headers=json_type, claims=ALICE)
    assert (reply.status, reply.json["details"]) == (422, {"body": api.UNREADABLE_JSON})
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json == flow


def test_given_free_form_node_data_when_patched_then_it_round_trips_exactly(flows):
    # deeper than DynamoDB's 32 map levels, 50-digit numbers, nulls and empty keys: all plain JSON
    data = {"deep": json.loads("[" * 40 + "1" + "]" * 40), "big": 10**49, "none": None, "": {"": ""}}
    flow = create(flows).json
    reply = call(flows, "PATCH", f"/api/v1/flows/{flow['id']}", body=canvas(json.dumps(data)), claims=ALICE)
    assert reply.status == 200
    stored = call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json["canvasState"]
    assert stored["nodes"][0]["data"] == data and stored == reply.json["canvasState"]
