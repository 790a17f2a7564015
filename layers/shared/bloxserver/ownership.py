"""Flow-scoped routes start here: the caller's flow, or 404."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bloxserver.dal import flows as flow_store
from bloxserver.errors import flow_not_found


def owned_flow(user_id: UUID, flow_id: UUID) -> dict[str, Any]:
    """The flow item when `user_id` owns `flow_id`; NotFound otherwise (one consistent GetItem)."""
    item = flow_store.get_flow(user_id, flow_id)
    if item is None:
        raise flow_not_found()
    return item
