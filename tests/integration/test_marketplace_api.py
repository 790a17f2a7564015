"""The marketplace through the real Lambda handlers on embedded AWS: publish, browse (filters, sorts, search,
pagination), get, use a template (the flow runs), install a tool (it runs in the installer's flow, pinned), ratings,
downloads, every refusal, and public routes."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from bloxserver import keys
from tests import wasm_modules as wasm
from tests.support import ALICE, BOB, SHOUT_YAML, call, claims_for

AUTHOR = claims_for("user_author", tier="pro")
PAID = claims_for("user_paid", tier="paid")
FREE = claims_for("user_free", tier="free")
CANVAS = {"nodes": [{"id": "upper", "type": "listener", "position": {"x": 1.5, "y": 2}, "data": {"label": "upper"}}],
          "edges": [], "viewport": {"x": 0, "y": 0, "zoom": 1}}


def template_body(name: str = "Shouter", **fields) -> dict:
    return {
        "type": "flow",
        "name": name,
        "description": "Upper-cases a name and returns it",
        "category": "productivity",
        "tags": ["Text", "demo"],
        "content": {"type": "flow", "organismYaml": SHOUT_YAML, "canvasState": CANVAS},
        **fields,
    }


def publish(marketplace, body: dict | None = None, claims=AUTHOR) -> dict:
    reply = call(marketplace, "POST", "/api/v1/marketplace", body=body or template_body(), claims=claims)
    assert reply.status == 201, reply.body
    return reply.json


def browse(marketplace, **query) -> dict:
    reply = call(marketplace, "GET", "/api/v1/marketplace", query={k: str(v) for k, v in query.items()})
    assert reply.status == 200, reply.body
    return reply.json


def names(page: dict) -> list[str]:
    return [item["name"] for item in page["items"]]


def uploaded_module(modules, data: bytes, claims=AUTHOR, module_id: str | None = None) -> dict:
    """A ready module of `claims` holding `data` (a new one, or a re-upload of `module_id`)."""
    if module_id is None:
        module = call(modules, "POST", "/api/v1/modules", body={"name": "Echo"}, claims=claims).json
        module_id, fields = module["id"], module["upload"]["fields"]
    else:
        fields = call(modules, "POST", f"/api/v1/modules/{module_id}/upload", claims=claims).json["fields"]
    boto3.client("s3").put_object(Bucket=os.environ["MODULE_BUCKET_NAME"], Key=fields["key"], Body=data,
                                  ContentType="application/wasm")
    reply = call(modules, "POST", f"/api/v1/modules/{module_id}/complete", claims=claims)
    assert reply.status == 200 and reply.json["status"] == "ready", reply.body
    return reply.json


def tool_body(module_id: str, name: str = "Echo tool") -> dict:
    return {
        "type": "tool",
        "name": name,
        "description": "Answers with the message it gets",
        "category": "developer-tools",
        "tags": ["echo"],
        "content": {"type": "tool", "wasmModuleId": module_id, "witInterface": "interface echo {}",
                    "exampleUsage": "handler: wasm:<moduleId>"},
    }


def tool_flow(handler: str, config: str = "{}") -> str:
    return f"""
organism: {{name: with-tool}}
listeners:
  - name: tool
    description: the installed tool
    handler: {handler}
    config: {config}
    peers: [done]
  - name: done
    description: result
    handler: output
"""


def run_manually(system, flow_id: str, payload, claims) -> dict:
    started = call(system.executions, "POST", f"/api/v1/flows/{flow_id}/executions/run", body=payload, claims=claims)
    assert started.status == 201, started.body
    system.drain()
    return system.execution(flow_id, started.json["id"], claims=claims)


# Publish and get.


def test_given_a_valid_template_when_published_then_it_is_public_with_the_authors_name(marketplace):
    listing = publish(marketplace)

    assert listing["authorName"] == "User_Author" and listing["type"] == "flow"
    assert listing["tags"] == ["text", "demo"] and listing["downloads"] == 0 and listing["rating"] is None
    assert listing["content"] == {"type": "flow", "organismYaml": SHOUT_YAML, "canvasState": CANVAS}
    got = call(marketplace, "GET", f"/api/v1/marketplace/{listing['id']}")  # no token
    assert got.status == 200 and got.json == listing


def test_given_a_profile_without_a_name_then_the_author_name_is_the_email_before_the_at(marketplace):
    claims = {"sub": "user_nameless", "email": "ada.l@example.com", "tier": "pro"}

    assert publish(marketplace, claims=claims)["authorName"] == "ada.l"


def test_given_protected_routes_without_a_token_then_they_are_refused(marketplace):
    listing = publish(marketplace)
    for method, path in [
        ("POST", "/api/v1/marketplace"),
        ("PATCH", f"/api/v1/marketplace/{listing['id']}"),
        ("DELETE", f"/api/v1/marketplace/{listing['id']}"),
        ("POST", f"/api/v1/marketplace/{listing['id']}/use"),
        ("POST", f"/api/v1/marketplace/{listing['id']}/install"),
        ("POST", f"/api/v1/marketplace/{listing['id']}/rating"),
        ("GET", "/api/v1/me/tools"),
        ("DELETE", f"/api/v1/me/tools/{listing['id']}"),
    ]:
        assert call(marketplace, method, path, body={}).status == 401, (method, path)


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"category": "games"}, "body.category"),
        ({"tags": ["x" * 33]}, "body.tags.0"),
        ({"tags": [" "]}, "body.tags.0"),
        ({"tags": ["a&b"]}, "body.tags.0"),
        ({"name": ""}, "body.name"),
        ({"name": "x" * 101}, "body.name"),
        ({"description": "short"}, "body.description"),
        ({"name": "bell\x07"}, "body.name"),
        ({"tags": [f"t{index}" for index in range(11)]}, "body.tags"),
        ({"type": "tool"}, "body.content.type"),
    ],
)
def test_given_a_bad_publish_body_then_422_naming_the_field_and_nothing_is_listed(marketplace, change, location):
    reply = call(marketplace, "POST", "/api/v1/marketplace", body=template_body(**change), claims=AUTHOR)

    assert reply.status == 422 and reply.json["code"] == "validation_error", reply.body
    assert location in reply.json["details"], reply.json
    assert browse(marketplace)["total"] == 0


def test_given_a_template_whose_yaml_has_errors_then_422_invalid_flow_with_the_issues(marketplace):
    body = template_body(content={"type": "flow", "organismYaml": "listeners: nope", "canvasState": CANVAS})
    reply = call(marketplace, "POST", "/api/v1/marketplace", body=body, claims=AUTHOR)

    assert reply.status == 422 and reply.json["code"] == "invalid_flow"
    assert reply.json["details"]["issues"]


def test_given_a_template_using_a_private_module_then_422_naming_the_listener(marketplace, modules):
    module = uploaded_module(modules, wasm.ECHO)
    body = template_body(content={"type": "flow", "organismYaml": tool_flow(f"wasm:{module['id']}"), "canvasState": CANVAS})

    reply = call(marketplace, "POST", "/api/v1/marketplace", body=body, claims=AUTHOR)

    assert reply.status == 422 and reply.json["code"] == "invalid_flow"
    issue = next(issue for issue in reply.json["details"]["issues"] if issue["listener"] == "tool")
    assert "private WASM module" in issue["message"]


# Browse: filters, sorts, search, pagination.


@pytest.fixture
def catalogue(marketplace, modules):
    """Five listings: four templates in two categories, one tool."""
    published = {
        "alpha": publish(marketplace, template_body("Alpha mailer", description="Sends café newsletters to a list",
                                                    category="productivity", tags=["email"])),
        "beta": publish(marketplace, template_body("Beta summarizer", description="Summarises documents with AI",
                                                   category="ai", tags=["llm", "email"])),
        "gamma": publish(marketplace, template_body("Gamma report", description="Builds a weekly data report",
                                                    category="data", tags=["reports"])),
        "delta": publish(marketplace, template_body("Delta digest", description="Emails a daily digest of news",
                                                    category="productivity", tags=["email", "news"])),
    }
    module = uploaded_module(modules, wasm.ECHO)
    published["tool"] = publish(marketplace, tool_body(module["id"], "Echo tool"))
    return published


def test_given_listings_then_browse_filters_by_type_category_and_tag(marketplace, catalogue):
    assert browse(marketplace)["total"] == 5
    assert names(browse(marketplace, type="tool")) == ["Echo tool"]
    assert sorted(names(browse(marketplace, category="productivity"))) == ["Alpha mailer", "Delta digest"]
    assert sorted(names(browse(marketplace, tag="EMAIL"))) == ["Alpha mailer", "Beta summarizer", "Delta digest"]
    both = browse(marketplace, tag="email", category="productivity", type="flow")
    assert sorted(names(both)) == ["Alpha mailer", "Delta digest"] and both["total"] == 2
    assert browse(marketplace, type="tool", category="ai")["total"] == 0


def test_given_listings_then_search_matches_whole_folded_words_all_of_them(marketplace, catalogue):
    assert names(browse(marketplace, q="CAFE")) == ["Alpha mailer"]  # "café" in the description
    assert names(browse(marketplace, q="summarises ai")) == ["Beta summarizer"]
    assert browse(marketplace, q="summar")["total"] == 0  # whole words only
    assert browse(marketplace, q="weekly news")["total"] == 0  # every word must match
    assert sorted(names(browse(marketplace, q="email"))) == ["Alpha mailer", "Beta summarizer", "Delta digest"]
    assert names(browse(marketplace, q="email", category="ai")) == ["Beta summarizer"]
    assert names(browse(marketplace, q="news", tag="email", type="flow")) == ["Delta digest"]


def test_given_listings_then_sorts_order_by_downloads_rating_and_newest(marketplace, catalogue):
    for user in ("u1", "u2"):
        assert call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['gamma']['id']}/use",
                    claims=claims_for(user, tier="pro")).status == 201
    call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['beta']['id']}/use", claims=claims_for("u3", tier="pro"))
    call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['delta']['id']}/rating", body={"stars": 5}, claims=BOB)
    call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['alpha']['id']}/rating", body={"stars": 2}, claims=BOB)

    assert names(browse(marketplace, type="flow"))[:2] == ["Gamma report", "Beta summarizer"]
    assert names(browse(marketplace, sort="rating", type="flow"))[:2] == ["Delta digest", "Alpha mailer"]
    assert names(browse(marketplace, sort="newest")) == ["Echo tool", "Delta digest", "Gamma report",
                                                         "Beta summarizer", "Alpha mailer"]
    assert names(browse(marketplace, q="email", sort="downloads"))[0] == "Beta summarizer"
    assert names(browse(marketplace, q="email", sort="rating"))[:2] == ["Delta digest", "Alpha mailer"]
    assert names(browse(marketplace, q="email", sort="newest")) == ["Delta digest", "Beta summarizer", "Alpha mailer"]


def test_given_listings_then_pages_cut_the_sorted_list_with_an_exact_total(marketplace, catalogue):
    first = browse(marketplace, sort="newest", page=1, page_size=2)
    third = browse(marketplace, sort="newest", page=3, page_size=2)
    searched = browse(marketplace, q="email", sort="newest", page=2, page_size=2)

    assert names(first) == ["Echo tool", "Delta digest"] and first["total"] == 5 and first["hasMore"] is True
    assert names(third) == ["Alpha mailer"] and third["hasMore"] is False and third["page"] == 3
    assert names(searched) == ["Alpha mailer"] and searched["total"] == 3 and searched["hasMore"] is False


@pytest.mark.parametrize(
    ("query", "location"),
    [({"type": "widget"}, "query.type"), ({"sort": "best"}, "query.sort"), ({"category": "games"}, "query.category"),
     ({"page_size": "101"}, "query.page_size"), ({"tag": "x" * 40}, "query.tag")],
)
def test_given_bad_browse_parameters_then_422_naming_them(marketplace, query, location):
    reply = call(marketplace, "GET", "/api/v1/marketplace", query=query)

    assert reply.status == 422 and location in reply.json["details"], reply.body


# The author's edits.


def test_given_the_author_when_patching_then_the_listing_and_its_index_change(marketplace, catalogue):
    alpha = catalogue["alpha"]["id"]
    reply = call(marketplace, "PATCH", f"/api/v1/marketplace/{alpha}", claims=AUTHOR,
                 body={"name": "Alpha newsletter", "category": "data", "tags": ["letters"]})

    assert reply.status == 200 and reply.json["name"] == "Alpha newsletter" and reply.json["category"] == "data"
    assert names(browse(marketplace, q="newsletter")) == ["Alpha newsletter"]
    assert browse(marketplace, q="mailer")["total"] == 0
    assert browse(marketplace, tag="email")["total"] == 2
    assert sorted(names(browse(marketplace, category="data"))) == ["Alpha newsletter", "Gamma report"]
    assert browse(marketplace, category="productivity")["total"] == 1


def test_given_another_user_then_patch_and_delete_are_403_forbidden(marketplace, catalogue):
    alpha = catalogue["alpha"]["id"]
    patched = call(marketplace, "PATCH", f"/api/v1/marketplace/{alpha}", claims=BOB, body={"name": "Mine"})
    deleted = call(marketplace, "DELETE", f"/api/v1/marketplace/{alpha}", claims=BOB)

    assert patched.status == 403 and patched.json["code"] == "forbidden"
    assert deleted.status == 403 and deleted.json["code"] == "forbidden"
    assert call(marketplace, "GET", f"/api/v1/marketplace/{alpha}").json["name"] == "Alpha mailer"


def test_given_a_deleted_listing_then_it_leaves_browse_and_get_but_its_flows_stay(marketplace, flows, catalogue):
    alpha = catalogue["alpha"]["id"]
    flow = call(marketplace, "POST", f"/api/v1/marketplace/{alpha}/use", claims=BOB).json

    assert call(marketplace, "DELETE", f"/api/v1/marketplace/{alpha}", claims=AUTHOR).status == 204

    assert call(marketplace, "GET", f"/api/v1/marketplace/{alpha}").status == 404
    assert browse(marketplace)["total"] == 4 and browse(marketplace, q="cafe")["total"] == 0
    assert browse(marketplace, tag="email")["total"] == 2
    assert call(flows, "GET", f"/api/v1/flows/{flow['id']}", claims=BOB).status == 200
    assert call(marketplace, "DELETE", f"/api/v1/marketplace/{alpha}", claims=AUTHOR).status == 404


# Using a template.


def test_given_a_template_when_used_then_a_stopped_flow_of_the_caller_runs(marketplace, system):
    listing = publish(marketplace)
    reply = call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/use", claims=ALICE)

    assert reply.status == 201, reply.body
    flow = reply.json
    assert flow["name"] == "Shouter" and flow["status"] == "stopped" and flow["organismYaml"] == SHOUT_YAML
    assert flow["canvasState"] == CANVAS
    assert call(system.flows, "POST", f"/api/v1/flows/{flow['id']}/start", claims=ALICE).status == 200
    run = run_manually(system, flow["id"], {"name": "ada"}, ALICE)
    assert run["status"] == "success" and json.loads(run["outputPayload"]) == {"shout": "ADA"}


def test_given_the_flow_limit_when_using_a_template_then_403_and_no_download(marketplace, flows):
    listing = publish(marketplace)
    assert call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/use", claims=FREE).status == 201
    other = publish(marketplace, template_body("Second"))

    refused = call(marketplace, "POST", f"/api/v1/marketplace/{other['id']}/use", claims=FREE)

    assert refused.status == 403 and refused.json["code"] == "limit_reached"
    assert call(marketplace, "GET", f"/api/v1/marketplace/{other['id']}").json["downloads"] == 0


def test_given_a_template_deleted_while_being_used_then_404_and_no_flow_is_made(marketplace, flows, monkeypatch):
    import marketplace_logic

    listing = publish(marketplace)
    as_read = marketplace_logic._live(listing["id"])
    assert call(marketplace, "DELETE", f"/api/v1/marketplace/{listing['id']}", claims=AUTHOR).status == 204
    monkeypatch.setattr(marketplace_logic, "_live", lambda _: as_read)  # the use read it before the delete

    reply = call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/use", claims=BOB)

    assert reply.status == 404 and reply.json["code"] == "not_found"
    assert call(flows, "GET", "/api/v1/flows", claims=BOB).json["total"] == 0


def test_given_a_tool_listing_then_use_is_409_and_a_template_install_is_409(marketplace, catalogue):
    used = call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['tool']['id']}/use", claims=PAID)
    installed = call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['alpha']['id']}/install", claims=PAID)

    assert used.status == 409 and used.json["code"] == "invalid_state"
    assert installed.status == 409 and installed.json["code"] == "invalid_state"


def test_given_a_missing_listing_then_every_route_is_404(marketplace):
    missing = "00000000-0000-4000-8000-000000000000"
    assert call(marketplace, "GET", f"/api/v1/marketplace/{missing}").status == 404
    for verb in ("use", "install"):
        assert call(marketplace, "POST", f"/api/v1/marketplace/{missing}/{verb}", claims=PAID).status == 404
    assert call(marketplace, "POST", f"/api/v1/marketplace/{missing}/rating", body={"stars": 3}, claims=PAID).status == 404
    assert call(marketplace, "PATCH", f"/api/v1/marketplace/{missing}", body={"name": "x"}, claims=AUTHOR).status == 404
    assert call(marketplace, "DELETE", f"/api/v1/me/tools/{missing}", claims=PAID).status == 404


# Tools.


def test_given_an_installed_tool_then_it_runs_in_the_installers_flow_pinned_to_the_published_version(
    marketplace, modules, system
):
    module = uploaded_module(modules, wasm.ECHO)
    listing = publish(marketplace, tool_body(module["id"]))
    assert listing["content"]["sha256"] == module["sha256"]

    install = call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/install", claims=PAID)
    assert install.status == 201, install.body
    tool = install.json
    assert tool["listingId"] == listing["id"] and tool["sha256"] == module["sha256"]
    assert tool["handler"] == f"wasm:{tool['moduleId']}"
    flow_id = system.running_flow(PAID, tool_flow(tool["handler"]))
    assert json.loads(run_manually(system, flow_id, {"hello": 1}, PAID)["outputPayload"]) == {"hello": 1}

    # The author re-uploads other bytes to the module, then deletes it: the install keeps its version.
    uploaded_module(modules, wasm.FIXED, module_id=module["id"])
    assert call(modules, "DELETE", f"/api/v1/modules/{module['id']}", claims=AUTHOR).status == 204
    system.stop_flow(flow_id, PAID)
    assert call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PAID).status == 200
    assert json.loads(run_manually(system, flow_id, {"again": 2}, PAID)["outputPayload"]) == {"again": 2}


def test_given_a_repinned_listing_then_new_installs_get_the_new_version_and_old_ones_keep_theirs(
    marketplace, modules, system
):
    echo = uploaded_module(modules, wasm.ECHO)
    listing = publish(marketplace, tool_body(echo["id"]))
    old_install = call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/install", claims=PAID).json
    fixed = uploaded_module(modules, wasm.FIXED)
    body = {"content": tool_body(fixed["id"])["content"]}

    patched = call(marketplace, "PATCH", f"/api/v1/marketplace/{listing['id']}", body=body, claims=AUTHOR)

    assert patched.status == 200 and patched.json["content"]["sha256"] == fixed["sha256"]
    new_claims = claims_for("user_new", tier="pro")
    new_install = call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/install", claims=new_claims).json
    assert new_install["sha256"] == fixed["sha256"] and old_install["sha256"] == echo["sha256"]
    new_flow = system.running_flow(new_claims, tool_flow(new_install["handler"], "{interface: answer}"))
    assert json.loads(run_manually(system, new_flow, {}, new_claims)["outputPayload"]) == wasm.FIXED_ANSWER
    old_flow = system.running_flow(PAID, tool_flow(old_install["handler"]))
    assert json.loads(run_manually(system, old_flow, {"kept": True}, PAID)["outputPayload"]) == {"kept": True}


def test_given_an_install_then_installing_again_is_200_with_the_same_install_and_one_download(marketplace, catalogue):
    tool = catalogue["tool"]["id"]
    first = call(marketplace, "POST", f"/api/v1/marketplace/{tool}/install", claims=PAID)
    second = call(marketplace, "POST", f"/api/v1/marketplace/{tool}/install", claims=PAID)

    assert (first.status, second.status) == (201, 200) and first.json == second.json
    assert call(marketplace, "GET", f"/api/v1/marketplace/{tool}").json["downloads"] == 1
    listed = call(marketplace, "GET", "/api/v1/me/tools", claims=PAID).json
    assert listed["total"] == 1 and listed["items"] == [first.json]


def test_given_the_free_tier_then_installing_is_403_limit_reached(marketplace, catalogue):
    reply = call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['tool']['id']}/install", claims=FREE)

    assert reply.status == 403 and reply.json["code"] == "limit_reached" and reply.json["details"]["tier"] == "free"


def test_given_an_installed_tool_then_it_does_not_count_toward_the_module_limit(marketplace, modules, catalogue):
    pro = claims_for("user_pro_installer", tier="pro")
    assert call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['tool']['id']}/install", claims=pro).status == 201

    created = [call(modules, "POST", "/api/v1/modules", body={"name": f"m{i}"}, claims=pro).status for i in range(10)]

    assert created == [201] * 10


def test_given_a_running_flow_using_a_tool_then_uninstall_is_409_until_it_stops(marketplace, system, catalogue):
    tool = call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['tool']['id']}/install", claims=PAID).json
    flow_id = system.running_flow(PAID, tool_flow(tool["handler"]))

    refused = call(marketplace, "DELETE", f"/api/v1/me/tools/{tool['listingId']}", claims=PAID)

    assert refused.status == 409 and refused.json["details"] == {"flowIds": [flow_id]}
    system.stop_flow(flow_id, PAID)
    assert call(marketplace, "DELETE", f"/api/v1/me/tools/{tool['listingId']}", claims=PAID).status == 204
    assert call(marketplace, "GET", "/api/v1/me/tools", claims=PAID).json["total"] == 0
    started = call(system.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=PAID)
    assert started.status == 422 and started.json["code"] == "invalid_flow"


def test_given_a_deleted_tool_listing_then_existing_installs_keep_running(marketplace, system, catalogue):
    tool = call(marketplace, "POST", f"/api/v1/marketplace/{catalogue['tool']['id']}/install", claims=PAID).json
    assert call(marketplace, "DELETE", f"/api/v1/marketplace/{tool['listingId']}", claims=AUTHOR).status == 204

    flow_id = system.running_flow(PAID, tool_flow(tool["handler"]))

    assert json.loads(run_manually(system, flow_id, {"still": "here"}, PAID)["outputPayload"]) == {"still": "here"}


@pytest.mark.parametrize("tier", ["free", "paid"])
def test_given_a_tier_without_modules_then_publishing_a_tool_is_403_limit_reached(marketplace, modules, tier):
    module = uploaded_module(modules, wasm.ECHO)
    claims = claims_for("user_author", tier=tier)  # the same author, downgraded

    reply = call(marketplace, "POST", "/api/v1/marketplace", body=tool_body(module["id"]), claims=claims)

    assert reply.status == 403 and reply.json["code"] == "limit_reached" and reply.json["details"]["tier"] == tier


def test_given_someone_elses_or_a_pending_module_then_publishing_it_is_refused(marketplace, modules):
    others = uploaded_module(modules, wasm.ECHO, claims_for("user_other_pro", tier="pro"))
    pending = call(modules, "POST", "/api/v1/modules", body={"name": "Pending"}, claims=AUTHOR).json

    not_owned = call(marketplace, "POST", "/api/v1/marketplace", body=tool_body(others["id"]), claims=AUTHOR)
    not_ready = call(marketplace, "POST", "/api/v1/marketplace", body=tool_body(pending["id"]), claims=AUTHOR)

    assert not_owned.status == 422 and "body.content.wasmModuleId" in not_owned.json["details"]
    assert not_ready.status == 409 and not_ready.json["details"] == {"status": "pending"}


def test_given_tool_texts_over_their_caps_then_publish_and_patch_are_422(marketplace, catalogue, modules):
    tool = catalogue["tool"]
    content = {**tool_body(tool["content"]["wasmModuleId"])["content"], "exampleUsage": "x" * 20_000}

    published = call(marketplace, "POST", "/api/v1/marketplace", claims=AUTHOR,
                     body={**tool_body(tool["content"]["wasmModuleId"]), "content": content})
    patched = call(marketplace, "PATCH", f"/api/v1/marketplace/{tool['id']}", claims=AUTHOR, body={"content": content})

    assert published.status == 422 and "body.content.exampleUsage" in published.json["details"]
    assert patched.status == 422 and "body.content.exampleUsage" in patched.json["details"]


# Ratings and downloads.


def test_given_ratings_then_the_mean_follows_one_changeable_rating_per_user(marketplace, catalogue):
    alpha = catalogue["alpha"]["id"]
    rate = lambda claims, stars: call(marketplace, "POST", f"/api/v1/marketplace/{alpha}/rating",  # noqa: E731
                                      body={"stars": stars}, claims=claims)

    assert rate(ALICE, 5).json["rating"] == 5.0
    assert rate(BOB, 2).json["rating"] == 3.5
    assert rate(BOB, 4).json["rating"] == 4.5
    own = rate(AUTHOR, 5)
    assert own.status == 403 and own.json["code"] == "forbidden"
    assert rate(ALICE, 6).status == 422 and rate(ALICE, 0).status == 422
    assert call(marketplace, "GET", f"/api/v1/marketplace/{alpha}").json["rating"] == 4.5


def test_given_one_user_using_twice_then_downloads_count_them_once(marketplace):
    listing = publish(marketplace)
    pro = claims_for("user_twice", tier="pro")
    for _ in range(2):
        assert call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/use", claims=pro).status == 201

    assert call(marketplace, "GET", f"/api/v1/marketplace/{listing['id']}").json["downloads"] == 1


def test_given_20_users_using_one_template_at_once_then_it_counts_20_downloads(marketplace):
    listing = publish(marketplace)

    def use(index: int) -> int:
        return call(marketplace, "POST", f"/api/v1/marketplace/{listing['id']}/use", claims=claims_for(f"u{index}")).status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(use, range(20)))

    assert statuses == [201] * 20
    assert call(marketplace, "GET", f"/api/v1/marketplace/{listing['id']}").json["downloads"] == 20
    assert browse(marketplace)["items"][0]["downloads"] == 20


def test_a_tool_listing_keeps_its_own_copy_of_the_bytes(marketplace, catalogue):
    listing = catalogue["tool"]
    stored = boto3.client("s3").list_objects_v2(
        Bucket=os.environ["MODULE_BUCKET_NAME"], Prefix=keys.listing_versions_prefix(listing["id"])
    )
    names_stored = [item["Key"] for item in stored.get("Contents", [])]

    assert keys.listing_source_key(listing["id"], listing["content"]["sha256"]) in names_stored
