"""Flow-scoped routes start here: the caller's flow, or 404; and the caller's tier, for the limits routes apply."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bloxserver.auth import Principal
from bloxserver.contract import Tier
from bloxserver.dal import flows as flow_store
from bloxserver.dal import users as user_store
from bloxserver.errors import flow_not_found
from bloxserver.limits import stored_tier


def owned_flow(user_id: UUID, flow_id: UUID) -> dict[str, Any]:
    """The flow item when `user_id` owns `flow_id`; NotFound otherwise (one consistent GetItem)."""
    item = flow_store.get_flow(user_id, flow_id)
    if item is None:
        raise flow_not_found()
    return item


def caller_tier(principal: Principal) -> Tier:
    """A `tier` claim wins (it is as fresh as the token); otherwise the stored tier (one GetItem)."""
    return principal.tier_claim or stored_tier(user_store.get_user(principal.user_id))
