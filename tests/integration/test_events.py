"""Every sample event in events/ drives its function's real handler on embedded AWS to its documented status.

The documentation is events/README.md's table (event, function, status, seed), read here row by row in order.
"""

from __future__ import annotations

import importlib
import json
import re


from devstack.events import LambdaContext, run_handler
from devstack.template import ROOT, functions

EVENTS = ROOT / "events"
DEMO_FLOW_ID = "3f2b6c1e-0000-4000-8000-000000000001"
DEMO_SUB = "user_demo"
DEMO_TRIGGER_ID = "7c1d2e3f-0000-4000-8000-000000000002"
DEMO_WEBHOOK_TOKEN = "demo-webhook-token-0000000000000000000000000"


def documented_rows() -> list[tuple[str, str, int, str]]:
    rows = []
    for line in (EVENTS / "README.md").read_text().splitlines():
        match = re.match(r"^\| ([\w/.-]+\.json) \| (\w+) \| (\d{3}) \| ([^|]*)\|$", line)
        if match:
            rows.append((match[1], match[2], int(match[3]), match[4].strip()))
    return rows


def seed_demo_flow() -> None:
    from bloxserver import clock
    from bloxserver.auth import user_id_for
    from bloxserver.dal import flows
    from bloxserver.engine import DEFAULT_ORGANISM_YAML

    user_id = str(user_id_for(DEMO_SUB))
    now = clock.now_iso()
    flow = {
        "id": DEMO_FLOW_ID,
        "userId": user_id,
        "name": "Demo flow",
        "organismYaml": DEFAULT_ORGANISM_YAML,
        "status": "stopped",
        "createdAt": now,
        "updatedAt": now,
    }
    profile = {"id": user_id, "clerkId": DEMO_SUB, "email": "demo@example.com", "createdAt": now}
    first_version = {"version": 1, "createdAt": now, "sha256": "0" * 64, "organismYaml": DEFAULT_ORGANISM_YAML}
    flows.create_flow({**flow, "version": 1}, profile, {"pro": None}, "pro", "free", first_version)


def seed_demo_webhook() -> None:
    from bloxserver import clock
    from bloxserver.auth import user_id_for
    from bloxserver.dal import triggers

    trigger = {
        "id": DEMO_TRIGGER_ID,
        "flowId": DEMO_FLOW_ID,
        "userId": str(user_id_for(DEMO_SUB)),
        "type": "webhook",
        "name": "Demo webhook",
        "config": {"type": "webhook"},
        "webhookToken": DEMO_WEBHOOK_TOKEN,
        "createdAt": clock.now_iso(),
    }
    triggers.create_trigger(trigger, max_per_flow=20)


DEMO_MODULE_ID = "5a7e0c2d-0000-4000-8000-000000000003"
DEMO_UPLOAD_ID = "0000000000004000800000000000demo"


def seed_demo_module() -> None:
    """A pro user's pending module whose upload (an echo module) is in the bucket, as events/modules expect."""
    from bloxserver import clock, keys
    from bloxserver.auth import user_id_for
    from bloxserver.dal import module_objects, modules
    from tests.wasm_modules import ECHO

    user_id = str(user_id_for(DEMO_SUB))
    now = clock.now_iso()
    module = {
        "id": DEMO_MODULE_ID,
        "userId": user_id,
        "name": "Demo module",
        "status": "pending",
        "sizeBytes": 0,
        "exports": [],
        "imports": [],
        "uploadId": DEMO_UPLOAD_ID,
        "createdAt": now,
        "updatedAt": now,
    }
    profile = {"id": user_id, "clerkId": DEMO_SUB, "email": "demo@example.com", "createdAt": now}
    modules.create_module(module, profile, {"pro": 10}, "pro", "free")
    module_objects.write(keys.module_upload_key(user_id, DEMO_MODULE_ID, DEMO_UPLOAD_ID), ECHO, "application/wasm")


DEMO_LISTING_ID = "6b3c9d4e-0000-4000-8000-000000000004"
DEMO_TOOL_LISTING_ID = "6b3c9d4e-0000-4000-8000-000000000005"
OWN_DEMO_LISTING_ID = "6b3c9d4e-0000-4000-8000-000000000006"


def seed_demo_listings() -> None:
    """A flow template and an echo tool by another author, and a template by the demo user, as events/marketplace
    expect (written as a publish writes them)."""
    import hashlib

    import marketplace_index

    from bloxserver import clock, keys
    from bloxserver.auth import user_id_for
    from bloxserver.dal import marketplace, module_objects
    from bloxserver.engine import DEFAULT_ORGANISM_YAML
    from tests.wasm_modules import ECHO

    sha256 = hashlib.sha256(ECHO).hexdigest()
    module_objects.write(keys.listing_source_key(DEMO_TOOL_LISTING_ID, sha256), ECHO, "application/wasm")
    canvas = {"nodes": [], "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}
    template = {"type": "flow", "organismYaml": DEFAULT_ORGANISM_YAML, "canvasState": canvas}
    tool = {"type": "tool", "wasmModuleId": DEMO_MODULE_ID, "witInterface": "", "exampleUsage": "", "sha256": sha256}
    for listing_id, author, kind, content in [
        (DEMO_LISTING_ID, "user_demo_author", "flow", template),
        (DEMO_TOOL_LISTING_ID, "user_demo_author", "tool", tool),
        (OWN_DEMO_LISTING_ID, DEMO_SUB, "flow", template),
    ]:
        now = clock.now_iso()
        listing = {"id": listing_id, "authorId": str(user_id_for(author)), "authorName": "demo", "type": kind,
                   "name": f"Demo {kind}", "description": "A listing of the sample events", "category": "other",
                   "tags": ["demo"], "downloads": 0, "ratingSum": 0, "ratingCount": 0, "createdAt": now,
                   "updatedAt": now}
        pinned = {"sha256": sha256, "exports": ["handle_echo"], "imports": []} if kind == "tool" else {}
        marketplace.insert_listing(listing, {"contentJson": json.dumps(content), **pinned})
        marketplace_index.reindex(None, listing)


SEEDS = {"demo flow": seed_demo_flow, "demo webhook": seed_demo_webhook, "demo module": seed_demo_module,
         "demo listings": seed_demo_listings}


def test_every_event_file_is_documented():
    documented = {row[0] for row in documented_rows()}
    on_disk = {str(path.relative_to(EVENTS)) for path in EVENTS.rglob("*.json")}
    assert on_disk == documented


def test_every_route_of_the_template_has_an_event():
    from devstack.template import http_routes

    route_keys = {json.loads((EVENTS / row[0]).read_text()).get("routeKey") for row in documented_rows()}
    assert {route.route_key for route in http_routes()} <= route_keys


def test_every_function_has_an_event():
    assert {row[1] for row in documented_rows()} == set(functions())


def test_each_event_reaches_its_documented_status(aws):
    specs = functions()
    seeded: set[str] = set()
    rows = documented_rows()
    assert rows
    for event_file, function, expected, seed in rows:
        if seed and seed not in seeded:
            SEEDS[seed]()
            seeded.add(seed)
        spec = specs[function]
        handler = getattr(importlib.import_module(spec.module), spec.attribute)
        event = json.loads((EVENTS / event_file).read_text())
        result = run_handler(handler, event, LambdaContext(function))
        status = result.get("statusCode", 200) if isinstance(result, dict) else 200
        assert status == expected, f"{event_file}: {status} {result}"
