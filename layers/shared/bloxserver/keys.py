"""The key schema of the single application table: every PK/SK/GSI1 value is built here and nowhere else.

See docs/architecture.md for the access patterns these keys serve.
"""

from __future__ import annotations

from uuid import UUID

PROFILE = "PROFILE"


def user_pk(user_id: UUID | str) -> str:
    return f"USER#{user_id}"


def flow_sk(flow_id: UUID | str) -> str:
    return f"FLOW#{flow_id}"


def flows_by_update_pk(user_id: UUID | str) -> str:
    """GSI1 partition holding one user's flows, sorted by `updatedAt` (newest last in key order)."""
    return f"USER#{user_id}#FLOWS"


def flows_by_update_sk(updated_at: str, flow_id: UUID | str) -> str:
    return f"{updated_at}#{flow_id}"


def usage_month_sk(moment_iso: str) -> str:
    """Executions started in a calendar month (UTC), e.g. USAGE#M#2026-11."""
    return f"USAGE#M#{moment_iso[:7]}"


def usage_day_sk(moment_iso: str) -> str:
    """Executions started on a UTC day, e.g. USAGE#D#2026-11-28."""
    return f"USAGE#D#{moment_iso[:10]}"


def trigger_sk(flow_id: UUID | str, trigger_id: UUID | str) -> str:
    """A trigger, in its owner's partition beside the flow, so one query lists a flow's triggers."""
    return f"{flow_triggers_prefix(flow_id)}{trigger_id}"


def flow_triggers_prefix(flow_id: UUID | str) -> str:
    """SK prefix (begins_with) of every trigger of one flow."""
    return f"TRIGGER#{flow_id}#"


WEBHOOK_SK = "WEBHOOK"


def webhook_pk(token: str) -> str:
    """The webhook token lookup item: its own partition, so ingress finds the trigger from the token alone."""
    return f"WEBHOOK#{token}"
