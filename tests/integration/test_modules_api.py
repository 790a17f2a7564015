"""WASM modules through the real Lambda handlers on embedded AWS: tier limits, presigned uploads, validation (by
`complete` and by the bucket's notification), edits, deletion, isolation, and modules in flows."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from bloxserver import keys
from bloxserver.auth import user_id_for
from devstack.events import LambdaContext, run_handler
from tests import wasm_modules as wasm
from tests.support import ALICE, BOB, call, claims_for

PRO = claims_for("user_pro", tier="pro")
OTHER_PRO = claims_for("user_pro_2", tier="pro")


def bucket() -> str:
    return os.environ["MODULE_BUCKET_NAME"]


def create(modules, claims=PRO, **body):
    return call(modules, "POST", "/api/v1/modules", body={"name": "Tool", **body}, claims=claims)


def put_upload(module: dict, data: bytes, content_type: str = "application/wasm") -> None:
    """What the browser's POST leaves in the bucket (the multipart POST itself is tested on the local stack)."""
    boto3.client("s3").put_object(Bucket=bucket(), Key=module["upload"]["fields"]["key"], Body=data, ContentType=content_type)


def uploaded(modules, data: bytes, claims=PRO) -> dict:
    module = create(modules, claims).json
    put_upload(module, data)
    reply = call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=claims)
    assert reply.status == 200, reply.body
    return reply.json


def object_keys(prefix: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket(), Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.parametrize("tier", ["free", "paid"])
def test_given_a_tier_without_modules_when_creating_one_then_limit_reached(modules, tier):
    reply = create(modules, claims_for(f"user_{tier}", tier=tier))

    assert reply.status == 403 and reply.json["code"] == "limit_reached"
    assert reply.json["details"] == {"limit": 0, "tier": tier}


def test_given_a_user_without_a_tier_claim_then_the_stored_free_tier_applies(modules):
    reply = create(modules, ALICE)

    assert reply.status == 403 and reply.json["details"] == {"limit": 0, "tier": "free"}


def test_given_20_parallel_creates_by_a_pro_user_then_exactly_10_modules_exist(modules):
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda index: create(modules, name=f"m{index}").status, range(20)))

    assert statuses.count(201) == 10 and statuses.count(403) == 10
    assert call(modules, "GET", "/api/v1/modules", claims=PRO).json["total"] == 10


def test_given_an_enterprise_user_then_modules_are_unlimited(modules):
    enterprise = claims_for("user_ent", tier="enterprise")

    assert all(create(modules, enterprise, name=f"m{index}").status == 201 for index in range(12))


def test_given_a_pro_user_when_creating_a_module_then_it_is_pending_with_a_presigned_post(modules):
    before = datetime.now(timezone.utc)
    reply = create(modules, name="Scorer", description="scores leads", witInterface="interface score {}")

    assert reply.status == 201
    module = reply.json
    assert (module["name"], module["description"], module["witInterface"]) == ("Scorer", "scores leads", "interface score {}")
    assert (module["status"], module["error"], module["sha256"], module["exports"], module["sizeBytes"]) == (
        "pending", None, None, [], 0)
    upload = module["upload"]
    assert upload["fields"]["Content-Type"] == "application/wasm" and "policy" in upload["fields"]
    assert upload["fields"]["key"].startswith(f"uploads/{user_id_for('user_pro')}/{module['id']}/")
    expires = datetime.fromisoformat(upload["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - before <= timedelta(minutes=15, seconds=5)
    fetched = call(modules, "GET", f"/api/v1/modules/{module['id']}", claims=PRO).json
    assert fetched["upload"] is None and fetched["status"] == "pending"


def test_given_nothing_uploaded_when_completing_then_invalid_state(modules):
    module = create(modules).json

    reply = call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=PRO)

    assert reply.status == 409 and reply.json["code"] == "invalid_state"


def test_given_an_uploaded_module_when_completed_then_it_is_ready_and_completing_again_changes_nothing(modules):
    module = uploaded(modules, wasm.LOGGING)

    assert (module["status"], module["error"], module["sizeBytes"]) == ("ready", None, len(wasm.LOGGING))
    assert (module["exports"], module["imports"]) == (["handle_echo"], ["host.log"])
    again = call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=PRO).json
    assert again == module
    prefix = keys.module_versions_prefix(user_id_for("user_pro"), module["id"])
    stored = object_keys(prefix)
    assert f"{prefix}{module['sha256']}.wasm" in stored and any(key.endswith(".cwasm") for key in stored)
    assert object_keys(keys.module_uploads_prefix(user_id_for("user_pro"), module["id"])) == []


@pytest.mark.parametrize(
    ("data", "content_type", "error"),
    [
        (b"#!/bin/sh\necho not wasm\n", "application/wasm", "not a WebAssembly module"),
        (wasm.TRUNCATED, "application/wasm", "truncated"),
        (wasm.NO_ALLOC, "application/wasm", "does not export the function `alloc`"),
        (wasm.UNCOMPILABLE, "application/wasm", "wasmtime cannot compile the module: "),
        (wasm.FORBIDDEN_IMPORT, "application/wasm", "imports env.fetch, which is not a host function"),
        (b"\0asm\x0d\x00\x01\x00", "application/wasm", "WebAssembly component"),
        (b"\0asm\x01\x00\x00\x00\x05\x03\x01\x00\x01", "application/wasm", "does not export its memory"),
        (wasm.ECHO, "text/plain", "uploaded as text/plain"),
        (b"\0asm" + bytes(10 * 1024 * 1024), "application/wasm", "the limit is 10485760 bytes"),
    ],
    ids=["not wasm", "truncated", "no alloc", "uncompilable", "forbidden import", "component", "no memory", "content type", "too large"],
)
def test_given_a_bad_upload_when_completed_then_the_module_is_invalid_saying_why(modules, data, content_type, error):
    module = create(modules).json
    put_upload(module, data, content_type)

    reply = call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=PRO)

    assert reply.status == 200 and reply.json["status"] == "invalid"
    assert error in reply.json["error"] and reply.json["exports"] == []


def test_given_an_upload_when_the_bucket_notifies_then_the_module_turns_ready_without_complete(modules, module_uploads):
    module = create(modules).json
    put_upload(module, wasm.ECHO)
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                          "s3": {"bucket": {"name": bucket()}, "object": {"key": module["upload"]["fields"]["key"]}}}]}

    run_handler(module_uploads, event, LambdaContext("ModuleUploadsFunction"))

    ready = call(modules, "GET", f"/api/v1/modules/{module['id']}", claims=PRO).json
    assert ready["status"] == "ready" and ready["exports"] == ["handle_echo"]


def test_given_a_ready_module_when_a_new_upload_is_asked_then_it_is_pending_until_the_new_bytes_validate(modules):
    module = uploaded(modules, wasm.ECHO)

    form = call(modules, "POST", f"/api/v1/modules/{module['id']}/upload", claims=PRO)

    assert form.status == 200 and set(form.json) == {"url", "fields", "expiresAt"}
    pending = call(modules, "GET", f"/api/v1/modules/{module['id']}", claims=PRO).json
    assert (pending["status"], pending["sha256"], pending["exports"]) == ("pending", None, [])
    assert call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=PRO).status == 409
    put_upload({"upload": form.json}, wasm.FIXED)
    replaced = call(modules, "POST", f"/api/v1/modules/{module['id']}/complete", claims=PRO).json
    assert replaced["status"] == "ready" and replaced["exports"] == ["handle_answer", "handle_echo"]
    assert replaced["sha256"] != module["sha256"]


def test_patch_changes_name_description_and_wit_interface(modules):
    module = create(modules, description="old").json

    reply = call(modules, "PATCH", f"/api/v1/modules/{module['id']}", claims=PRO,
                 body={"name": "Renamed", "description": None, "witInterface": "interface x {}"})

    assert reply.status == 200
    assert (reply.json["name"], reply.json["description"], reply.json["witInterface"]) == ("Renamed", None, "interface x {}")
    assert call(modules, "PATCH", f"/api/v1/modules/{module['id']}", claims=PRO, body={"name": ""}).status == 422
    too_long = call(modules, "PATCH", f"/api/v1/modules/{module['id']}", claims=PRO, body={"witInterface": "x" * 70000})
    assert too_long.status == 422 and "body.witInterface" in too_long.json["details"]


def test_the_list_pages_newest_first_with_status(modules):
    ids = [create(modules, name=f"m{index}").json["id"] for index in range(3)]

    page = call(modules, "GET", "/api/v1/modules", claims=PRO, query={"page": "1", "page_size": "2"}).json

    assert (page["total"], page["hasMore"]) == (3, True)
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    assert all(item["status"] == "pending" for item in page["items"])


def test_another_users_module_is_404_on_every_route(modules):
    module = create(modules).json
    path = f"/api/v1/modules/{module['id']}"
    for method, route, body in [("GET", path, None), ("PATCH", path, {"name": "x"}), ("DELETE", path, None),
                                ("POST", f"{path}/upload", None), ("POST", f"{path}/complete", None)]:
        reply = call(modules, method, route, claims=OTHER_PRO, body=body)
        assert reply.status == 404 and reply.json["code"] == "not_found", (method, route)
    assert call(modules, "GET", path, claims=PRO).status == 200


def test_given_a_malformed_id_then_422_naming_the_path_parameter(modules):
    reply = call(modules, "GET", "/api/v1/modules/not-a-uuid", claims=PRO)

    assert reply.status == 422 and "path.module_id" in reply.json["details"]


def test_given_a_module_when_deleted_then_its_objects_go_and_the_count_frees_a_place(modules):
    module = uploaded(modules, wasm.ECHO)
    for index in range(9):
        assert create(modules, name=f"filler {index}").status == 201
    assert create(modules).status == 403

    assert call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=PRO).status == 204

    assert call(modules, "GET", f"/api/v1/modules/{module['id']}", claims=PRO).status == 404
    assert object_keys(keys.module_versions_prefix(user_id_for("user_pro"), module["id"])) == []
    assert create(modules).status == 201
    assert call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=PRO).status == 404


def module_flow(module_id: str, config: str = "{}") -> str:
    return f"""
organism: {{name: with-module}}
listeners:
  - name: tool
    description: the module
    handler: wasm:{module_id}
    config: {config}
    peers: [done]
  - name: done
    description: result
    handler: output
"""


def test_given_a_running_flow_using_a_module_then_deleting_the_module_is_refused_until_it_stops(modules, flows):
    module = uploaded(modules, wasm.ECHO)
    flow = call(flows, "POST", "/api/v1/flows", claims=PRO, body={"name": "f", "organismYaml": module_flow(module["id"])}).json
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=PRO).status == 200

    refused = call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=PRO)

    assert refused.status == 409 and refused.json["code"] == "invalid_state"
    assert refused.json["details"] == {"flowIds": [flow["id"]]}
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/stop", claims=PRO).status == 200
    assert call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=PRO).status == 204


def test_given_a_deleted_running_flow_then_its_module_can_be_deleted(modules, flows):
    module = uploaded(modules, wasm.ECHO)
    flow = call(flows, "POST", "/api/v1/flows", claims=PRO, body={"name": "f", "organismYaml": module_flow(module["id"])}).json
    call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=PRO)
    assert call(flows, "DELETE", f"/api/v1/flows/{flow['id']}", claims=PRO).status == 204

    assert call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=PRO).status == 204


@pytest.mark.parametrize(
    ("setup", "code"),
    [("missing", "unknown_handler"), ("someone else's", "unknown_handler"), ("pending", "invalid_config"),
     ("invalid", "invalid_config"), ("ungranted import", "invalid_config")],
)
def test_a_flow_naming_a_module_it_cannot_use_does_not_start(modules, flows, setup, code):
    if setup == "missing":
        module_id = str(uuid.uuid4())
    elif setup == "someone else's":
        module_id = uploaded(modules, wasm.ECHO, OTHER_PRO)["id"]
    elif setup == "pending":
        module_id = create(modules).json["id"]
    elif setup == "invalid":
        module_id = uploaded(modules, wasm.TRUNCATED)["id"]
    else:
        module_id = uploaded(modules, wasm.LOGGING)["id"]
    flow = call(flows, "POST", "/api/v1/flows", claims=PRO, body={"name": "f", "organismYaml": module_flow(module_id)}).json

    issues = call(flows, "POST", f"/api/v1/flows/{flow['id']}/validate", claims=PRO).json
    started = call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=PRO)

    assert any(issue["code"] == code and issue["listener"] == "tool" for issue in issues), issues
    assert started.status == 422 and started.json["code"] == "invalid_flow"
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=PRO).json["status"] == "error"


def test_a_flow_using_a_ready_module_validates_and_its_start_pins_the_version(modules, flows):
    from bloxserver.dal import flows as flow_store

    module = uploaded(modules, wasm.LOGGING)
    yaml_text = module_flow(module["id"], "{capabilities: [log]}")
    flow = call(flows, "POST", "/api/v1/flows", claims=PRO, body={"name": "f", "organismYaml": yaml_text}).json

    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/validate", claims=PRO).json == []
    assert call(flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=PRO).status == 200

    item = flow_store.get_flow(user_id_for("user_pro"), uuid.UUID(flow["id"]))
    assert item["pinnedModules"] == {
        module["id"]: {"sha256": module["sha256"], "exports": ["handle_echo"], "imports": ["host.log"]}
    }


def test_bad_create_bodies_are_422_naming_the_field(modules):
    assert create(modules, name="").status == 422
    reply = create(modules, witInterface="x" * 70000)
    assert reply.status == 422 and "body.witInterface" in reply.json["details"]
    assert call(modules, "POST", "/api/v1/modules", claims=BOB, body={"nope": 1}).status == 422
