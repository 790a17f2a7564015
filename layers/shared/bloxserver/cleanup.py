"""Removing what a flow or a user owns. Used by flow deletion and by Clerk's user.deleted event."""

from __future__ import annotations

from uuid import UUID

from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal import users as user_store


def delete_flow_and_dependents(user_id: UUID, flow_id: UUID) -> bool:
    """Delete a flow and everything that belongs to it; False when the user has no such flow."""
    deleted = flow_store.delete_flow(user_id, flow_id)
    if deleted:
        # Executions are keyed by flow alone, so only the owner's successful deletion may remove them; a
        # half-done removal is finished by their TTL, and reads never show them without their flow.
        execution_store.delete_flow_executions(str(flow_id))
    return deleted


def delete_user_and_dependents(user_id: UUID) -> None:
    """Delete every flow of the user (with its dependents), then every remaining item of the user."""
    item_keys = user_store.owned_item_keys(user_id)
    flow_prefix = "FLOW#"
    for item_key in item_keys:
        sort_key = item_key["SK"]["S"]
        if sort_key.startswith(flow_prefix):
            delete_flow_and_dependents(user_id, UUID(sort_key[len(flow_prefix) :]))
    user_store.delete_items(user_store.owned_item_keys(user_id))
