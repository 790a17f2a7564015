"""Marketplace rules (docs/marketplace.md): publishing flow templates and WASM tools, browsing and searching them,
the author's edits, using a template, installing a tool (pinned to the listing's own copy of the module), ratings
and downloads (distinct users, counted in the same transaction as the use or install).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import clock, wasm_modules
from bloxserver.auth import Principal
from bloxserver.contract import (
    Flow,
    FlowTemplateContent,
    InstalledTool,
    MarketplaceListing,
    MarketplaceListingSummary,
    MarketplaceListingType,
    PaginatedResponse,
    PublishToMarketplaceRequest,
    Tier,
    ToolContent,
    UpdateMarketplaceListingRequest,
    WasmModuleStatus,
)
from bloxserver.dal import installed_tools as tool_store
from bloxserver.dal import marketplace as store
from bloxserver.dal import modules as module_store
from bloxserver.dal import users as user_store
from bloxserver.display_text import check_display_text
from bloxserver.errors import Forbidden, InvalidFlow, InvalidState, LimitReached, NotFound, ValidationFailed
from bloxserver.flow_rules import check_definition, insert_flow, listed_issues
from bloxserver.limits import effective_tier, limits_for
from bloxserver.observability import logger
from bloxserver.pagination import PageRequest, counted_page

import marketplace_index as index

# The fixed list of categories (docs/marketplace.md).
CATEGORIES = ("productivity", "ai", "data", "integrations", "developer-tools", "communication", "marketing", "other")
MAX_TAG_CHARS = 32
# Tags are words people type: letters, digits, spaces and - _ . + # (no separators the index's keys use).
_TAG = re.compile(r"^[^\W_](?:[\w .+#-]*[\w+#])?$")
# ToolContent's free texts have no cap in the contract: these keep a listing's content item well below 400 KB.
MAX_WIT_INTERFACE_CHARS = 64 * 1024
MAX_EXAMPLE_USAGE_CHARS = 16 * 1024
# Installs are counted (the list's total), never limited: every tier is unlimited.
UNLIMITED = {tier.value: None for tier in Tier}


def listing_not_found() -> NotFound:
    return NotFound("Marketplace listing not found")


# Checks shared by publish and PATCH.


def _check_category(category: str | None) -> None:
    if category is not None and category not in CATEGORIES:
        raise ValidationFailed("Request validation failed", {"body.category": f"one of {', '.join(CATEGORIES)}"})


def normalized_tag(tag: str, location: str) -> str:
    """Lower-cased and trimmed; 422 at `location` unless 1–32 characters of letters, digits, spaces and - _ . + #."""
    tag = tag.strip().lower()
    if not 1 <= len(tag) <= MAX_TAG_CHARS or not _TAG.match(tag):
        raise ValidationFailed(
            "Request validation failed",
            {location: f"1–{MAX_TAG_CHARS} letters, digits, spaces and - _ . + # (got {tag!r})"},
        )
    return tag


def normalized_tags(tags: list[str]) -> list[str]:
    """Each tag normalized (422 naming `body.tags.<position>`), without repeats (the first occurrence kept)."""
    return list(dict.fromkeys(normalized_tag(tag, f"body.tags.{position}") for position, tag in enumerate(tags)))


def _check_texts(name: str | None, description: str | None) -> None:
    check_display_text({"body.name": name}, {"body.description": description})


def _check_content_type(kind: str, content: ToolContent | FlowTemplateContent) -> None:
    if content.type != kind:
        raise ValidationFailed(
            "Request validation failed", {"body.content.type": f"must be {kind!r}, the listing's type"}
        )


def _author_name(principal: Principal) -> str:
    """The author's name on their profile, else the part of their email before the @."""
    profile = user_store.get_user(principal.user_id) or {}
    name = profile.get("name") or principal.name
    email = profile.get("email") or principal.email
    return name or email.split("@", 1)[0]


def _tier(principal: Principal) -> Tier:
    profile = None if principal.tier_claim else user_store.get_user(principal.user_id)
    return effective_tier(principal.tier_claim, profile)


def _template_content(principal: Principal, content: FlowTemplateContent) -> dict[str, Any]:
    """A flow template's stored content, once its YAML validates with no errors (422 invalid_flow with the issues
    otherwise). Its `wasm:` handlers may name live tool listings only (an installer's tool), never a module of the
    publisher's: the issue names the listener."""
    from bloxserver.engine import FlowContext, validate, wasm_module_ids

    check_definition(content.organism_yaml, content.canvas_state, "body.content")
    tools = []
    for module_id in wasm_modules.storable_ids(wasm_module_ids(content.organism_yaml)):
        found = store.get_listing(module_id)
        if found and not found[0].get("deleted") and found[0]["type"] == MarketplaceListingType.TOOL.value:
            tools.append(_tool_facts(module_id, found[1]))
    context = FlowContext(owner_tier=_tier(principal).value, wasm_modules=tuple(tools))
    issues = [issue.as_dict() for issue in validate(content.organism_yaml, context)]
    for issue in issues:
        if issue["code"] == "unknown_handler" and "WASM module" in issue["message"]:
            issue["message"] = (
                f"listener {issue['listener']!r} uses a private WASM module: a template may use marketplace tools "
                "only (wasm:<tool listing id>)"
            )
    errors = [issue for issue in issues if issue["severity"] == "error"]
    if errors:
        raise InvalidFlow(
            "The template's flow is invalid: " + "; ".join(issue["message"] for issue in errors[:3]),
            {"issues": listed_issues(issues)},
        )
    return content.model_dump(by_alias=True, mode="json")


def _tool_facts(listing_id: str, content: dict[str, Any]) -> Any:
    from bloxserver.engine import WasmModuleFacts
    from bloxserver.engine.wasm_abi import interface_names

    return WasmModuleFacts(
        id=listing_id,
        status=WasmModuleStatus.READY.value,
        sha256=content["sha256"],
        interfaces=interface_names(content.get("exports", [])),
        host_imports=tuple(name.removeprefix("host.") for name in content.get("imports", [])),
        listing_id=listing_id,
    )


def _check_tool_texts(content: ToolContent) -> None:
    if len(content.wit_interface) > MAX_WIT_INTERFACE_CHARS:
        raise ValidationFailed(
            "Request validation failed", {"body.content.witInterface": f"at most {MAX_WIT_INTERFACE_CHARS} characters"}
        )
    if len(content.example_usage) > MAX_EXAMPLE_USAGE_CHARS:
        raise ValidationFailed(
            "Request validation failed", {"body.content.exampleUsage": f"at most {MAX_EXAMPLE_USAGE_CHARS} characters"}
        )


def _tool_content(principal: Principal, content: ToolContent, listing_id: str) -> dict[str, Any]:
    """A tool listing's stored content: the publisher's ready module, its version pinned and copied under the
    listing. 403 limit_reached when the publisher's tier has no WASM modules."""
    _check_tool_texts(content)
    tier = _tier(principal)
    if limits_for(tier).wasm_modules == 0:
        raise LimitReached(
            f"The {tier.value} tier has no WASM modules: upgrade to publish tools", {"limit": 0, "tier": tier.value}
        )
    module = module_store.get_module(principal.user_id, content.wasm_module_id)
    if module is None:
        raise ValidationFailed(
            "Request validation failed", {"body.content.wasmModuleId": "not one of your WASM modules"}
        )
    if module["status"] != WasmModuleStatus.READY.value:
        raise InvalidState(
            f"The WASM module is {module['status']}: only a ready module can be published", {"status": module["status"]}
        )
    wasm_modules.copy_version(principal.user_id, module["id"], module["sha256"], listing_id)
    return {
        **content.model_dump(by_alias=True, mode="json"),
        "sha256": module["sha256"],
        "exports": module["exports"],
        "imports": module["imports"],
    }


# The pinned module's facts that a tool's content keeps for installs, never shown.
PINNED_FACTS = ("exports", "imports")


def _stored_content(content: dict[str, Any]) -> dict[str, Any]:
    """The content item: the public content as JSON text (a canvas may nest deeper than DynamoDB's maps), and for a
    tool the pinned module's facts beside it."""
    public = {field: value for field, value in content.items() if field not in PINNED_FACTS}
    pinned = {field: content[field] for field in PINNED_FACTS if field in content}
    return {"contentJson": json.dumps(public, ensure_ascii=False), **pinned}


def _content(stored: dict[str, Any]) -> dict[str, Any]:
    return {**json.loads(stored["contentJson"]), **{field: stored[field] for field in PINNED_FACTS if field in stored}}


def _listing(summary: dict[str, Any], content: dict[str, Any]) -> MarketplaceListing:
    public_content = {field: value for field, value in content.items() if field not in PINNED_FACTS}
    return MarketplaceListing.model_validate({**summary, "rating": index.rating(summary), "content": public_content})


def _summary(listing: dict[str, Any]) -> MarketplaceListingSummary:
    return MarketplaceListingSummary.model_validate(
        {**listing, "downloads": int(listing.get("downloads") or 0), "rating": index.rating(listing)}
    )


# Routes.


def publish(principal: Principal, request: PublishToMarketplaceRequest) -> MarketplaceListing:
    _check_texts(request.name, request.description)
    _check_category(request.category)
    tags = normalized_tags(request.tags)
    _check_content_type(request.type.value, request.content)
    listing_id = str(uuid.uuid4())
    if isinstance(request.content, ToolContent):
        content = _tool_content(principal, request.content, listing_id)
    else:
        content = _template_content(principal, request.content)
    now = clock.now_iso()
    listing = {
        "id": listing_id,
        "authorId": str(principal.user_id),
        "authorName": _author_name(principal),
        "type": request.type.value,
        "name": request.name,
        "description": request.description,
        "category": request.category,
        "tags": tags,
        "downloads": 0,
        "ratingSum": 0,
        "ratingCount": 0,
        "createdAt": now,
        "updatedAt": now,
    }
    store.insert_listing(listing, _stored_content(content))
    index.reindex(None, listing)
    return _listing(listing, content)


def _live(listing_id: UUID) -> tuple[dict[str, Any], dict[str, Any]]:
    found = store.get_listing(listing_id)
    if found is None or found[0].get("deleted"):
        raise listing_not_found()
    return found[0], _content(found[1])


def get_listing(listing_id: UUID) -> MarketplaceListing:
    return _listing(*_live(listing_id))


def browse(
    kind: MarketplaceListingType | None,
    category: str | None,
    tag: str | None,
    q: str | None,
    sort: str,
    page: PageRequest,
) -> PaginatedResponse[MarketplaceListingSummary]:
    if category is not None and category not in CATEGORIES:
        raise ValidationFailed("Request validation failed", {"query.category": f"one of {', '.join(CATEGORIES)}"})
    tag = normalized_tag(tag, "query.tag") if tag is not None else None
    kind_value = kind.value if kind else None
    query_words = index.words(q or "")[: index.MAX_QUERY_WORDS]
    summaries: dict[str, dict[str, Any]] = {}
    if query_words:
        ordered, total, summaries = index.search(query_words, kind_value, category, tag, sort)
        page_ids = ordered[page.offset : page.read_limit]
    else:
        first, total = index.browse(kind_value, category, tag, sort, page.read_limit)
        page_ids = first[page.offset :]
    missing = [listing_id for listing_id in page_ids if listing_id not in summaries]
    if missing:
        summaries.update(store.get_summaries(missing))
    # A listing hidden a moment ago may still be indexed (the index follows its writes): it is left out.
    items = [_summary(summaries[i]) for i in page_ids if i in summaries and not summaries[i].get("deleted")]
    return PaginatedResponse[MarketplaceListingSummary](
        items=items, total=total, page=page.page, page_size=page.page_size, has_more=page.offset + len(page_ids) < total
    )


def _authored(principal: Principal, listing_id: UUID) -> tuple[dict[str, Any], dict[str, Any]]:
    summary, content = _live(listing_id)
    if summary["authorId"] != str(principal.user_id):
        raise Forbidden("Only the listing's author can change it")
    return summary, content


def update_listing(
    principal: Principal, listing_id: UUID, request: UpdateMarketplaceListingRequest
) -> MarketplaceListing:
    provided = request.model_dump(exclude_unset=True, exclude_none=True, by_alias=True, mode="json")
    _check_texts(request.name, request.description)
    _check_category(request.category)
    before, content = _authored(principal, listing_id)
    changes = {field: provided[field] for field in ("name", "description", "category") if field in provided}
    if request.tags is not None:
        changes["tags"] = normalized_tags(request.tags)
    new_content = None
    if request.content is not None:
        _check_content_type(before["type"], request.content)
        if isinstance(request.content, FlowTemplateContent):
            new_content = _template_content(principal, request.content)
        elif str(request.content.wasm_module_id) != content["wasmModuleId"]:
            new_content = _tool_content(principal, request.content, before["id"])  # re-pinned: new installs get it
        else:
            _check_tool_texts(request.content)
            new_content = {**content, "witInterface": request.content.wit_interface,
                           "exampleUsage": request.content.example_usage}
    if not changes and new_content is None:
        return _listing(before, content)
    changes["updatedAt"] = clock.now_iso()
    try:
        after = store.update_listing(
            listing_id, changes, _stored_content(new_content) if new_content else None, str(principal.user_id)
        )
    except store.ListingConditionFailed as failed:
        raise listing_not_found() from failed
    index.reindex(before, after)
    return _listing(after, new_content or content)


def delete_listing(principal: Principal, listing_id: UUID) -> None:
    """Hides the listing from browse and get; installs keep running its copies, flows made from it are theirs."""
    _authored(principal, listing_id)
    try:
        before = store.mark_deleted(listing_id, str(principal.user_id), clock.now_iso())
    except store.ListingConditionFailed as failed:
        raise listing_not_found() from failed
    index.reindex(before, None)


def _with_download(principal: Principal, listing_id: str, write: Any) -> bool:
    """Run `write(together_with)` with the caller's download counted in the same transaction (its last actions),
    unless they were counted already (then, or when a concurrent use of theirs counts it first, without): whether
    it was counted."""
    now = clock.now_iso()
    if not store.downloaded(listing_id, principal.user_id):
        try:
            write(store.download_actions(listing_id, principal.user_id, now))
            return True
        except ClientError as exc:
            refused = store.download_refused(exc)
            if refused == "gone":
                raise listing_not_found() from exc
            if refused != "counted":
                raise
    write([])
    return False


def _resort_downloads(listing_id: str) -> None:
    """The listing's new place in the downloads order. Best effort: the next download moves it again."""
    try:
        listing = store.get_listing_summary(listing_id)
        if listing and not listing.get("deleted"):
            index.resort(listing, "downloads")
    except Exception:
        logger.exception("Moving a listing in the downloads order failed", extra={"listingId": listing_id})


def use_template(principal: Principal, listing_id: UUID) -> Flow:
    """A new stopped flow of the caller from a flow template (their flow limit applies)."""
    summary, content = _live(listing_id)
    if summary["type"] != MarketplaceListingType.FLOW.value:
        raise InvalidState("A tool listing is installed, not used: POST .../install", {"type": summary["type"]})
    created: dict[str, Any] = {}

    def write(together_with: list[dict[str, Any]]) -> None:
        flow, _ = insert_flow(
            principal, summary["name"], f"From the marketplace template {summary['id']}", content["organismYaml"],
            content["canvasState"], together_with=together_with,
        )
        created.update(flow)

    if _with_download(principal, summary["id"], write):
        _resort_downloads(summary["id"])
    return Flow.model_validate(created)


def _installed(tool: dict[str, Any]) -> InstalledTool:
    return InstalledTool.model_validate({**tool, "handler": f"wasm:{tool['moduleId']}"})


def install_tool(principal: Principal, listing_id: UUID) -> tuple[InstalledTool, bool]:
    """(the caller's install of a tool listing, whether it is new): it pins the listing's current version."""
    summary, content = _live(listing_id)
    if summary["type"] != MarketplaceListingType.TOOL.value:
        raise InvalidState("A flow template is used, not installed: POST .../use", {"type": summary["type"]})
    existing = tool_store.get_tool(principal.user_id, summary["id"])
    if existing is not None:
        return _installed(existing), False
    tier = _tier(principal)
    if not limits_for(tier).installs_tools:
        raise LimitReached(
            f"The {tier.value} tier cannot install marketplace tools: upgrade to paid or above",
            {"tier": tier.value},
        )
    now = clock.now_iso()
    tool = {
        "userId": str(principal.user_id),
        "listingId": summary["id"],
        "moduleId": summary["id"],
        "name": summary["name"],
        "status": WasmModuleStatus.READY.value,
        "sha256": content["sha256"],
        "exports": content["exports"],
        "imports": content["imports"],
        "installedAt": now,
    }

    def write(together_with: list[dict[str, Any]]) -> None:
        tool_store.install(
            tool,
            principal.provisioned_profile(now),
            UNLIMITED,
            principal.tier_claim.value if principal.tier_claim else None,
            Tier.FREE.value,
            together_with,
        )

    try:
        counted = _with_download(principal, summary["id"], write)
    except ClientError as exc:
        if not tool_store.is_install_conflict(exc):
            raise
        return _installed(tool_store.get_tool(principal.user_id, summary["id"]) or tool), False
    if counted:
        _resort_downloads(summary["id"])
    return _installed(tool), True


def list_tools(principal: Principal, page: PageRequest) -> PaginatedResponse[InstalledTool]:
    return counted_page(
        user_store.counted(principal.user_id, user_store.TOOL_COUNTER),
        page,
        lambda limit: [_installed(tool) for tool in tool_store.list_tools(principal.user_id, limit)],
    )


def uninstall_tool(principal: Principal, listing_id: UUID) -> None:
    """Removes the caller's install; 409 while a running flow uses it."""
    # A start that pins the tool meanwhile makes the conditional delete fail: look again.
    for _ in range(3):
        tool = tool_store.get_tool(principal.user_id, listing_id)
        if tool is None:
            raise NotFound("Tool not installed")
        running = wasm_modules.flows_running_with(
            principal.user_id, tool["moduleId"], tool["usedBy"],
            lambda flow_id: tool_store.release(principal.user_id, [tool["moduleId"]], flow_id),
        )
        if running:
            raise InvalidState("The tool is used by running flows; stop them first", {"flowIds": running})
        try:
            if not tool_store.uninstall(principal.user_id, listing_id):
                raise NotFound("Tool not installed")
        except module_store.ModuleConditionFailed:
            continue
        return
    raise InvalidState("The tool is being started with a flow; try again")


def rate(principal: Principal, listing_id: UUID, stars: int) -> MarketplaceListing:
    """Records the caller's rating (one per user, changeable); the author cannot rate their own listing."""
    summary, content = _live(listing_id)
    if summary["authorId"] == str(principal.user_id):
        raise Forbidden("Authors cannot rate their own listing")
    for _ in range(5):  # a concurrent rating by the same user changed it between the read and the write
        try:
            if store.rate(summary["id"], principal.user_id, stars, store.get_rating(summary["id"], principal.user_id),
                          clock.now_iso()):
                break
        except store.ListingConditionFailed as failed:
            raise listing_not_found() from failed
    else:
        raise InvalidState("Your rating of this listing is changing concurrently; try again")
    current = store.get_listing_summary(summary["id"]) or summary
    try:
        index.resort(current, "rating")
    except Exception:  # the rating holds; the next one moves the listing again
        logger.exception("Moving a listing in the rating order failed", extra={"listingId": summary["id"]})
    return _listing(current, content)
