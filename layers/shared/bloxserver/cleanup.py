"""Removing what a flow or a user owns. Used by flow deletion and by Clerk's user.deleted event."""

from __future__ import annotations

from uuid import UUID

from bloxserver import triggers
from bloxserver.dal import executions as execution_store
from bloxserver.dal import flows as flow_store
from bloxserver.dal import memory as memory_store
from bloxserver.dal import users as user_store


def delete_flow_and_dependents(user_id: UUID, flow_id: UUID) -> bool:
    """Delete a flow and everything that belongs to it; False when the user has no such flow."""
    # Triggers first (each with its schedule: see triggers.remove_trigger), so nothing fires for a flow being
    # deleted; then the flow; then once more for a trigger created meanwhile (creating one needs the flow item, so
    # none can follow; a creation that wrote its item before and its schedule after a sweep deletes that schedule
    # itself when it finds its item gone). The sweeps run even when the flow is already gone, so repeating a
    # half-done deletion finishes it.
    triggers.remove_flow_triggers(user_id, flow_id)
    deleted = flow_store.delete_flow(user_id, flow_id)
    triggers.remove_flow_triggers(user_id, flow_id)
    # Project memory is keyed by owner and flow, so it is the caller's own whatever `deleted` says; removed after the
    # flow, as nothing enables memory on a flow that is gone (PATCH checks the flow in its write).
    memory_store.delete_all(user_id, flow_id)
    flow_store.delete_versions(user_id, flow_id)  # in the owner's partition too: the caller's whatever `deleted` says
    if deleted:
        # Executions are keyed by flow alone, so only the owner's successful deletion may remove them; a
        # half-done removal is finished by their TTL, and reads never show them without their flow.
        execution_store.delete_flow_executions(str(flow_id))
    return deleted


def delete_user_and_dependents(user_id: UUID) -> None:
    """Delete every flow of the user (with its dependents), then every remaining item of the user."""
    item_keys = user_store.owned_item_keys(user_id)
    flow_prefix = "FLOW#"
    swept_flow_ids: set[str] = set()
    for item_key in item_keys:
        sort_key = item_key["SK"]["S"]
        if sort_key.startswith(flow_prefix):
            delete_flow_and_dependents(user_id, UUID(sort_key[len(flow_prefix) :]))
            swept_flow_ids.add(sort_key[len(flow_prefix) :])
        elif sort_key.startswith("TRIGGER#"):
            # A trigger left by an interrupted flow deletion: its schedule and token item go with it.
            flow_id = sort_key.split("#")[1]
            if flow_id not in swept_flow_ids:
                triggers.remove_flow_triggers(user_id, UUID(flow_id))
                swept_flow_ids.add(flow_id)
    user_store.delete_owned_items(user_id)
