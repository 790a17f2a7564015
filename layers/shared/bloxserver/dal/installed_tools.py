"""Installed marketplace tools: one item per (user, tool listing) in the user's partition, listed by install time
through GSI1 and counted on the profile (`toolCount`, no tier limit). It pins the listing's module version at install
time; `usedBy` holds the running flows that pinned it (as a module's does), so it cannot be uninstalled under them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.modules import delete_unused, release_item, use_action
from bloxserver.dal.table import batch_get, cancellation_codes, get_item, key, query_items
from bloxserver.dal.users import TOOL_COUNTER, insert_counted

USED_BY = "usedBy"


def tool_key(user_id: UUID | str, listing_id: UUID | str) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.tool_sk(listing_id))


def _tool(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is not None:
        item[USED_BY] = sorted(item.get(USED_BY, ()))
        for field in ("PK", "SK", "GSI1PK", "GSI1SK", "entity"):
            item.pop(field, None)
    return item


def install(
    tool: dict[str, Any],
    owner_profile: dict[str, Any],
    limits_by_tier: dict[str, int | None],
    claimed_tier: str | None,
    default_tier: str,
    together_with: list[dict[str, Any]],
) -> None:
    """Insert the installed tool (absent before) and count it (`limits_by_tier`: every tier unlimited), with the
    actions `together_with` (its download), in one transaction; a ClientError names the action that failed (index
    1: installed already)."""
    user_id, listing_id = tool["userId"], tool["listingId"]
    item = {
        "PK": keys.user_pk(user_id),
        "SK": keys.tool_sk(listing_id),
        "GSI1PK": keys.tools_by_install_pk(user_id),
        "GSI1SK": f"{tool['installedAt']}#{listing_id}",
        "entity": "installedTool",
        **tool,
    }
    insert_counted(item, TOOL_COUNTER, owner_profile, limits_by_tier, claimed_tier, default_tier, together_with)


def get_tool(user_id: UUID | str, listing_id: UUID | str) -> dict[str, Any] | None:
    return _tool(get_item(tool_key(user_id, listing_id)))


def get_tools(user_id: UUID | str, listing_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The user's installed tools among `listing_ids`, by listing id, consistently read."""
    found = batch_get([tool_key(user_id, listing_id) for listing_id in sorted(set(listing_ids))], consistent=True)
    return {item["listingId"]: _tool(item) for item in found}


def list_tools(user_id: UUID | str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the user's installed tools, newest install first."""
    items = query_items(
        {
            "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.tools_by_install_pk(user_id)}},
            "ScanIndexForward": False,
        },
        limit,
    )
    return [_tool(item) for item in items]


def use_actions(user_id: UUID | str, listing_ids: list[str], flow_id: UUID | str) -> list[dict[str, Any]]:
    """Transaction actions recording that running flow `flow_id` uses these installed tools (each fails if the tool
    was uninstalled meanwhile)."""
    return [use_action(tool_key(user_id, listing_id), flow_id) for listing_id in sorted(set(listing_ids))]


def release(user_id: UUID | str, listing_ids: list[str], flow_id: UUID | str) -> None:
    for listing_id in sorted(set(listing_ids)):
        release_item(tool_key(user_id, listing_id), flow_id)


def uninstall(user_id: UUID | str, listing_id: UUID | str) -> bool:
    """Remove the installed tool, only while no running flow is recorded as using it; False when not installed.
    Raises modules.ModuleConditionFailed when a flow uses it."""
    return delete_unused(tool_key(user_id, listing_id), user_id, TOOL_COUNTER)


def is_install_conflict(exc: ClientError) -> bool:
    """A cancelled install whose tool item existed already (installed by a concurrent request)."""
    codes = cancellation_codes(exc)
    return len(codes) > 1 and codes[1] == "ConditionalCheckFailed"
