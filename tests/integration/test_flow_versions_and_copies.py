"""Flow versions, duplicate, export and import through the real handlers on embedded AWS (issue 18)."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from bloxserver.settings import get_settings
from devstack.aws_calls import count_aws_calls
from tests.support import ALICE, BOB, SHOUT_YAML, call, claims_for, triggers_path

PRO = claims_for("user_pat", tier="pro")
CANVAS = {
    "nodes": [{"id": "n1", "type": "listener", "position": {"x": 1.5, "y": 2.0}, "data": {"label": "upper"}}],
    "edges": [{"id": "e1", "source": "n1", "target": "n1", "sourceHandle": None, "targetHandle": None}],
    "viewport": {"x": 0.0, "y": 0.0, "zoom": 1.0},
}
OTHER_YAML = SHOUT_YAML.replace("Upper-cases the name", "Shouts the name")


def create(flows, claims=ALICE, **body):
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "Versioned", "organismYaml": SHOUT_YAML, **body}, claims=claims)
    assert reply.status == 201, reply.body
    return reply.json


def patch(flows, flow_id, body, claims=ALICE):
    return call(flows, "PATCH", f"/api/v1/flows/{flow_id}", body=body, claims=claims)


def versions(flows, flow_id, claims=ALICE, **query):
    return call(flows, "GET", f"/api/v1/flows/{flow_id}/versions", claims=claims, query=query)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


# --- creating with a canvas -------------------------------------------------------------------------------------


def test_given_a_canvas_state_when_creating_a_flow_then_it_is_kept_and_the_flow_is_version_1(flows):
    flow = create(flows, canvasState=CANVAS)
    assert flow["canvasState"] == CANVAS and flow["version"] == 1
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json["canvasState"] == CANVAS


def test_given_a_canvas_over_the_cap_when_creating_then_422_names_it_and_nothing_is_written(flows):
    huge = {**CANVAS, "nodes": [{**CANVAS["nodes"][0], "data": {"blob": "x" * 200_000}}]}
    reply = call(flows, "POST", "/api/v1/flows", body={"name": "Big", "canvasState": huge}, claims=ALICE)
    assert reply.status == 422 and "body.canvasState" in reply.json["details"]
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


# --- versions ---------------------------------------------------------------------------------------------------


def test_given_edits_of_the_definition_then_each_makes_a_version_listed_newest_first(flows):
    flow = create(flows)
    assert patch(flows, flow["id"], {"organismYaml": OTHER_YAML}).json["version"] == 2
    assert patch(flows, flow["id"], {"canvasState": CANVAS}).json["version"] == 3
    listing = versions(flows, flow["id"]).json
    assert listing["total"] == 3 and listing["hasMore"] is False
    assert [item["version"] for item in listing["items"]] == [3, 2, 1]
    assert [item["sha256"] for item in listing["items"]] == [sha(OTHER_YAML), sha(OTHER_YAML), sha(SHOUT_YAML)]
    assert set(listing["items"][0]) == {"version", "createdAt", "sha256"}


def test_given_an_edit_of_the_yaml_then_it_costs_one_read_and_one_transaction(flows):
    flow = create(flows)
    with count_aws_calls() as calls:
        edited = patch(flows, flow["id"], {"organismYaml": OTHER_YAML, "description": "new"})
    assert calls == {"dynamodb.GetItem": 1, "dynamodb.TransactWriteItems": 1}
    assert edited.json == call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json


def test_given_a_rename_or_the_same_yaml_then_no_version_is_made(flows):
    flow = create(flows)
    assert patch(flows, flow["id"], {"name": "Renamed"}).json["version"] == 1
    assert patch(flows, flow["id"], {"organismYaml": SHOUT_YAML}).json["version"] == 1
    assert versions(flows, flow["id"]).json["total"] == 1


def test_given_three_edits_at_once_then_each_gets_its_own_version_and_none_is_lost(flows):
    flow = create(flows)
    contents = [SHOUT_YAML + f"# edit {number}\n" for number in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda text: patch(flows, flow["id"], {"organismYaml": text}), contents))
    assert sorted(reply.json["version"] for reply in replies) == [2, 3, 4]
    stored = {
        call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/{number}", claims=ALICE).json["organismYaml"]
        for number in (2, 3, 4)
    }
    assert stored == set(contents)


def test_given_a_version_when_reading_it_then_its_yaml_and_canvas_are_returned(flows):
    flow = create(flows, canvasState=CANVAS)
    patch(flows, flow["id"], {"organismYaml": OTHER_YAML, "canvasState": None})
    first = call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/1", claims=ALICE).json
    assert first["organismYaml"] == SHOUT_YAML and first["canvasState"] == CANVAS and first["version"] == 1
    second = call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/2", claims=ALICE).json
    assert second["organismYaml"] == OTHER_YAML and second["canvasState"] is None


def test_given_an_old_version_when_restored_then_a_new_version_holds_its_content(flows):
    flow = create(flows, canvasState=CANVAS)
    patch(flows, flow["id"], {"organismYaml": OTHER_YAML, "canvasState": None})
    reply = call(flows, "POST", f"/api/v1/flows/{flow['id']}/versions/1/restore", claims=ALICE)
    assert reply.status == 200
    restored = reply.json
    assert restored["version"] == 3 and restored["organismYaml"] == SHOUT_YAML and restored["canvasState"] == CANVAS
    assert [item["version"] for item in versions(flows, flow["id"]).json["items"]] == [3, 2, 1]


def test_given_a_running_flow_when_restoring_a_version_then_409_and_nothing_changes(flows):
    flow = create(flows)
    patch(flows, flow["id"], {"organismYaml": OTHER_YAML})
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=ALICE).status == 200
    reply = call(flows, "POST", f"/api/v1/flows/{flow['id']}/versions/1/restore", claims=ALICE)
    assert reply.status == 409 and reply.json["code"] == "invalid_state"
    current = call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json
    assert current["version"] == 2 and current["organismYaml"] == OTHER_YAML


def test_given_more_than_50_edits_then_the_last_50_versions_are_kept(flows):
    flow = create(flows)
    for number in range(2, 53):
        patch(flows, flow["id"], {"organismYaml": SHOUT_YAML + f"# edit {number}\n"})
    first_page = versions(flows, flow["id"], page_size="100").json
    assert first_page["total"] == 50
    assert [item["version"] for item in first_page["items"]] == list(range(52, 2, -1))
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/2", claims=ALICE).status == 404
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/3", claims=ALICE).status == 200


def test_given_an_unknown_or_malformed_version_then_404_or_422(flows):
    flow = create(flows)
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/7", claims=ALICE).status == 404
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/versions/7/restore", claims=ALICE).status == 404
    reply = call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/zero", claims=ALICE)
    assert reply.status == 422 and "path.version" in reply.json["details"]
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}/versions/0", claims=ALICE).status == 422


def test_given_a_deleted_flow_then_its_versions_are_gone(flows):
    from bloxserver.auth import user_id_for
    from bloxserver.dal import flows as flow_store

    flow = create(flows)
    patch(flows, flow["id"], {"organismYaml": OTHER_YAML})
    assert call(flows, "DELETE", f"/api/v1/flows/{flow['id']}", claims=ALICE).status == 204
    owner = user_id_for(ALICE["sub"])
    assert flow_store.list_version_summaries(owner, uuid.UUID(flow["id"]), 10) == []


# --- duplicate --------------------------------------------------------------------------------------------------


def test_given_a_flow_with_triggers_when_duplicated_then_a_stopped_copy_with_new_triggers_and_tokens(flows, triggers):
    flow = create(flows, claims=PRO, canvasState=CANVAS, description="mine")
    hook = call(triggers, "POST", triggers_path(flow["id"]), body={"type": "webhook", "name": "In", "config": {}}, claims=PRO).json
    cron = {"type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"}
    call(triggers, "POST", triggers_path(flow["id"]), body={"type": "schedule", "name": "Daily", "config": cron}, claims=PRO)
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=PRO).status == 200

    reply = call(flows, "POST", f"/api/v1/flows/{flow['id']}/duplicate", claims=PRO)

    assert reply.status == 201
    copy = reply.json
    assert copy["id"] != flow["id"] and copy["name"] == "Versioned (copy)" and copy["status"] == "stopped"
    assert copy["organismYaml"] == SHOUT_YAML and copy["canvasState"] == CANVAS and copy["description"] == "mine"
    assert copy["version"] == 1
    copied = call(triggers, "GET", triggers_path(copy["id"]), claims=PRO).json
    assert sorted(item["name"] for item in copied) == ["Daily", "In"]
    [copied_hook] = [item for item in copied if item["type"] == "webhook"]
    assert copied_hook["webhookToken"] != hook["webhookToken"] and copied_hook["id"] != hook["id"]
    [copied_schedule] = [item for item in copied if item["type"] == "schedule"]
    schedule = boto3.client("scheduler").get_schedule(
        Name=f"trigger-{copied_schedule['id']}", GroupName=get_settings().schedule_group_name
    )
    assert schedule["State"] == "DISABLED" and copied_schedule["nextRunAt"] is None


def test_given_a_free_user_at_the_flow_limit_when_duplicating_then_403_and_no_copy(flows):
    flow = create(flows)
    reply = call(flows, "POST", f"/api/v1/flows/{flow['id']}/duplicate", claims=ALICE)
    assert reply.status == 403 and reply.json["code"] == "limit_reached"
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 1


def test_given_a_paid_user_one_flow_below_the_limit_when_duplicating_in_parallel_then_exactly_one_copy(flows):
    paid = claims_for("user_payne", tier="paid")
    source = create(flows, claims=paid)
    for number in range(8):
        create(flows, claims=paid, name=f"other {number}")
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: call(flows, "POST", f"/api/v1/flows/{source['id']}/duplicate", claims=paid).status, range(10)))
    assert sorted(statuses) == [201] + [403] * 9
    assert call(flows, "GET", "/api/v1/flows", claims=paid).json["total"] == 10


def test_given_a_long_name_when_duplicated_then_the_copy_name_fits(flows):
    flow = create(flows, claims=PRO, name="n" * 100)
    copy = call(flows, "POST", f"/api/v1/flows/{flow['id']}/duplicate", claims=PRO).json
    assert copy["name"] == "n" * 93 + " (copy)"


# --- export and import ------------------------------------------------------------------------------------------


def test_given_a_flow_when_exported_then_the_document_has_no_ids_tokens_or_literal_secrets(flows, triggers):
    flow = create(flows, claims=PRO, canvasState=CANVAS)
    verify = {"scheme": "header", "header": "X-Token", "value": "literal-shared-value"}
    call(triggers, "POST", triggers_path(flow["id"]), body={"type": "webhook", "name": "In", "config": {"verify": verify}}, claims=PRO)
    reply = call(flows, "GET", f"/api/v1/flows/{flow['id']}/export", claims=PRO)
    assert reply.status == 200
    document = reply.json
    assert document == {
        "format": "bloxserver.flow",
        "formatVersion": 1,
        "name": "Versioned",
        "description": None,
        "organismYaml": SHOUT_YAML,
        "canvasState": CANVAS,
        "triggers": [{"type": "webhook", "name": "In", "config": {"type": "webhook", "verify": {"scheme": "header", "header": "X-Token"}}}],
    }
    assert flow["id"] not in reply.body and "literal-shared-value" not in reply.body


def test_given_an_export_when_imported_then_a_new_stopped_flow_with_its_triggers(flows, triggers):
    flow = create(flows, claims=PRO, canvasState=CANVAS, description="portable")
    cron = {"type": "schedule", "cron": "*/5 * * * *", "timezone": "Europe/Berlin"}
    call(triggers, "POST", triggers_path(flow["id"]), body={"type": "schedule", "name": "Often", "config": cron}, claims=PRO)
    document = call(flows, "GET", f"/api/v1/flows/{flow['id']}/export", claims=PRO).json

    reply = call(flows, "POST", "/api/v1/flows/import", body=document, claims=BOB | {"tier": "pro"})

    assert reply.status == 201, reply.body
    imported = reply.json
    assert imported["name"] == "Versioned" and imported["description"] == "portable" and imported["status"] == "stopped"
    assert imported["canvasState"] == CANVAS and imported["version"] == 1
    [trigger] = call(triggers, "GET", triggers_path(imported["id"]), claims=BOB).json
    assert trigger["name"] == "Often" and trigger["config"] == cron


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"formatVersion": 2}, "body.formatVersion"),
        ({"format": "n8n.workflow"}, "body.format"),
        ({"organismYaml": "  "}, "body.organismYaml"),
        ({"triggers": [{"type": "schedule", "name": "Bad", "config": {"cron": "not a cron"}}]}, "body.triggers.0.config.cron"),
        ({"triggers": [{"type": "webhook", "name": "Hook", "config": {"verify": {"scheme": "header", "header": "X-Token"}}}]}, "body.triggers.0.config.verify.value"),
    ],
)
def test_given_a_bad_document_when_importing_then_422_names_the_field_and_nothing_is_written(flows, change, field):
    document = {"format": "bloxserver.flow", "formatVersion": 1, "name": "Imported", "organismYaml": SHOUT_YAML, **change}
    reply = call(flows, "POST", "/api/v1/flows/import", body=document, claims=ALICE)
    assert reply.status == 422, reply.body
    assert field in reply.json["details"]
    assert call(flows, "GET", "/api/v1/flows", claims=ALICE).json["total"] == 0


def test_given_a_free_user_at_the_flow_limit_when_importing_then_403(flows):
    create(flows)
    document = {"format": "bloxserver.flow", "formatVersion": 1, "name": "Second", "organismYaml": SHOUT_YAML}
    reply = call(flows, "POST", "/api/v1/flows/import", body=document, claims=ALICE)
    assert reply.status == 403 and reply.json["code"] == "limit_reached"


# --- isolation --------------------------------------------------------------------------------------------------


def test_given_another_users_flow_then_the_version_copy_and_export_routes_answer_404(flows):
    flow = create(flows)
    patch(flows, flow["id"], {"organismYaml": OTHER_YAML})
    for method, suffix in [
        ("GET", "/versions"),
        ("GET", "/versions/1"),
        ("POST", "/versions/1/restore"),
        ("POST", "/duplicate"),
        ("GET", "/export"),
    ]:
        reply = call(flows, method, f"/api/v1/flows/{flow['id']}{suffix}", claims=BOB)
        assert reply.status == 404, (method, suffix, reply.body)
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=ALICE).json["version"] == 2
