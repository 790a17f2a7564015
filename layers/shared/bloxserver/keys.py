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


def flow_version_sk(flow_id: UUID | str, version: int) -> str:
    """One stored version of a flow's definition, in its owner's partition beside the flow: zero-padded, so key order
    is version order and one query lists a flow's versions newest first."""
    return f"{flow_versions_prefix(flow_id)}{version:08d}"


def flow_versions_prefix(flow_id: UUID | str) -> str:
    """SK prefix (begins_with) of every stored version of one flow."""
    return f"VERSION#{flow_id}#"


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


SECRET_SK_PREFIX = "SECRET#"


def secret_sk(name: str) -> str:
    """A stored secret, in its owner's partition: one query lists a user's secrets, no one else's exist."""
    return f"{SECRET_SK_PREFIX}{name}"


SECRET_COUNT_SK = "SECRETCOUNT"  # the owner's number of secrets, counted with each insert and delete

WEBHOOK_SK = "WEBHOOK"


def webhook_pk(token: str) -> str:
    """The webhook token lookup item: its own partition, so ingress finds the trigger from the token alone."""
    return f"WEBHOOK#{token}"


# Executions, their per-day counters and the running markers the sweeper reads (docs/executions.md).


def flow_pk(flow_id: UUID | str) -> str:
    """A flow's own partition: its executions and their per-day counters."""
    return f"FLOW#{flow_id}"


EXECUTION_SK_PREFIX = "EXEC#"
ALERT_STATE_SK = "ALERTS"  # in the flow's partition: when its last alert went out, how many were held back since


def execution_sk(execution_id: UUID | str) -> str:
    """Execution ids are time-ordered UUIDs, so SK order is start order."""
    return f"{EXECUTION_SK_PREFIX}{execution_id}"


def executions_by_status_type_pk(flow_id: UUID | str, status: str, trigger_type: str) -> str:
    """GSI1 partition of a flow's executions in one status started by one trigger type (GSI1SK: execution_sk)."""
    return f"FLOW#{flow_id}#S#{status}#T#{trigger_type}"


def executions_by_owner_pk(user_id: UUID | str) -> str:
    """GSI2 partition of one user's executions across their flows (GSI2SK: execution_sk, so key order is start
    order): `GET /api/v1/executions` reads it newest first."""
    return f"USER#{user_id}#EXECS"


def execution_reason_sk(reason: str, trigger_type: str, execution_id: UUID | str) -> str:
    """A summary of an execution that ended for a recorded reason (dead letter, cancel), beside it in the flow's
    partition: one prefix per (reason, trigger type), as GSI1 has one partition per (status, trigger type)."""
    return f"{execution_reason_prefix(reason, trigger_type)}{execution_id}"


def execution_reason_prefix(reason: str, trigger_type: str) -> str:
    return f"REASON#{reason}#T#{trigger_type}#"


FLOW_STATS_SK_PREFIX = "STATS#"


def flow_stats_day_sk(day_iso: str) -> str:
    """Counters of the executions a flow started on one UTC day, e.g. STATS#2026-11-28."""
    return f"{FLOW_STATS_SK_PREFIX}{day_iso[:10]}"


def running_marker_pk(shard: int) -> str:
    """Markers of unfinished executions, in a few shards so no single partition takes every start."""
    return f"RUNNING#{shard}"


def running_marker_sk(deadline_iso: str, execution_id: UUID | str) -> str:
    """Sorted by deadline: the sweeper reads `SK <= now` and gets exactly the overdue ones."""
    return f"{deadline_iso}#{execution_id}"


def flow_logs_pk(flow_id: UUID | str) -> str:
    """The log records of a flow's executions."""
    return f"FLOWLOG#{flow_id}"


def log_chunk_sk(execution_id: UUID | str, chunk: int) -> str:
    """An execution's packed log records: grouped by execution (time-ordered id), chunks in emission order."""
    return f"{execution_id}#{chunk:05d}"


def execution_logs_prefix(execution_id: UUID | str) -> str:
    return f"{execution_id}#"


IDEMPOTENCY_SK = "IDEMPOTENCY"


def delivery_idempotency_pk(scope: UUID | str, delivery_key: str) -> str:
    """A remembered delivery (webhook Idempotency-Key, Scheduler execution id) within one trigger or flow."""
    return f"IDEMP#{scope}#{delivery_key}"


# WASM modules: an item in the owner's partition, listed newest first through GSI1; their bytes in ModuleBucket.


def module_sk(module_id: UUID | str) -> str:
    return f"MODULE#{module_id}"


def modules_by_creation_pk(user_id: UUID | str) -> str:
    """GSI1 partition holding one user's WASM modules, sorted by `createdAt`."""
    return f"USER#{user_id}#MODULES"


def modules_by_creation_sk(created_at: str, module_id: UUID | str) -> str:
    return f"{created_at}#{module_id}"


# Object keys in ModuleBucket. A browser's presigned POST writes one object per requested upload under UPLOADS_PREFIX
# (the bucket's object-created notification listens there only); validation keeps the bytes and the compiled
# artifact of every valid version under the module's prefix, by sha256, so a running flow's pinned version stays.
UPLOADS_PREFIX = "uploads/"


def module_upload_key(user_id: UUID | str, module_id: UUID | str, upload_id: str) -> str:
    return f"{UPLOADS_PREFIX}{user_id}/{module_id}/{upload_id}.wasm"


def module_uploads_prefix(user_id: UUID | str, module_id: UUID | str) -> str:
    return f"{UPLOADS_PREFIX}{user_id}/{module_id}/"


def parse_module_upload_key(object_key: str) -> tuple[str, str, str] | None:
    """(user id, module id, upload id) of an upload object's key; None for any other key."""
    parts = object_key.removeprefix(UPLOADS_PREFIX).split("/")
    if not object_key.startswith(UPLOADS_PREFIX) or len(parts) != 3 or not parts[2].endswith(".wasm"):
        return None
    return parts[0], parts[1], parts[2].removesuffix(".wasm")


def module_versions_prefix(user_id: UUID | str, module_id: UUID | str) -> str:
    return f"modules/{user_id}/{module_id}/"


def module_source_key(user_id: UUID | str, module_id: UUID | str, sha256: str) -> str:
    return f"{module_versions_prefix(user_id, module_id)}{sha256}.wasm"


def module_artifact_key(user_id: UUID | str, module_id: UUID | str, sha256: str, wasmtime_version: str) -> str:
    """wasmtime's serialized compilation of one version: it loads only into the wasmtime version that wrote it."""
    return f"{module_versions_prefix(user_id, module_id)}{sha256}.wasmtime-{wasmtime_version}.cwasm"


# Project memory (docs/memory.md): one partition per flow, its owner in the key, so another user's flow has none.

MEMORY_STATE_SK = "STATE"
MEMORY_ENTRY_SK_PREFIX = "K#"


def memory_pk(user_id: UUID | str, flow_id: UUID | str) -> str:
    """A flow's memory: its state item (enabled, usedBytes) and its entries, sorted by key (UTF-8 byte order)."""
    return f"MEMORY#{user_id}#{flow_id}"


def memory_entry_sk(key: str) -> str:
    return f"{MEMORY_ENTRY_SK_PREFIX}{key}"


MEMORY_EXPIRY_SHARDS = 16


def memory_expiry_shard_pk(shard: int) -> str:
    """GSI1 partition of expiring memory entries (a few shards, by flow): the expiry sweep reads `GSI1SK <= now`."""
    return f"MEMEXP#{shard}"


def memory_expiry_pk(flow_id: UUID | str) -> str:
    return memory_expiry_shard_pk(UUID(str(flow_id)).int % MEMORY_EXPIRY_SHARDS)


def memory_expiry_sk(expires_at: int) -> str:
    """Epoch seconds, zero-padded so key order is time order."""
    return f"{expires_at:012d}"


# Marketplace (docs/marketplace.md): a listing's partition holds its summary, its content, and one item per user who
# downloaded or rated it; browse and search read index partitions kept on every write, never the listings.

LISTING_SK = "LISTING"
LISTING_CONTENT_SK = "CONTENT"
COUNT_SK = "COUNT"


def listing_pk(listing_id: UUID | str) -> str:
    return f"LISTING#{listing_id}"


def listing_download_sk(user_id: UUID | str) -> str:
    """One user used or installed the listing: the item that makes `downloads` count distinct users."""
    return f"DOWNLOAD#{user_id}"


def listing_rating_sk(user_id: UUID | str) -> str:
    return f"RATING#{user_id}"


def browse_pk(sort: str, term: str) -> str:
    """An index partition: the listings matching one browse term (a type/category/tag combination), in one sort
    order (GSI1PK is the same, GSI1SK the sort key); its item SK is the listing id."""
    return f"MKT#{sort}#{term}"


def browse_sk(sort_value: str, listing_id: UUID | str) -> str:
    return f"{sort_value}#{listing_id}"


def term_count_pk(term: str) -> str:
    """The number of live listings matching a browse term or a search word (a page's exact `total`)."""
    return f"MKTCOUNT#{term}"


def word_pk(word: str) -> str:
    """A search word's postings: one item per listing whose name, description or tags hold the word (SK: its id)."""
    return f"MKTWORD#{word}"


def tool_sk(listing_id: UUID | str) -> str:
    """A marketplace tool the user installed, in their partition; its flows name it `wasm:<listing id>`."""
    return f"TOOL#{listing_id}"


def tools_by_install_pk(user_id: UUID | str) -> str:
    """GSI1 partition holding one user's installed tools, sorted by install time."""
    return f"USER#{user_id}#TOOLS"


def listing_versions_prefix(listing_id: UUID | str) -> str:
    """ModuleBucket prefix of a tool listing's own copies of the module versions it pinned: installs run these, so
    the author can neither change nor delete them."""
    return f"listings/{listing_id}/"


def listing_source_key(listing_id: UUID | str, sha256: str) -> str:
    return f"{listing_versions_prefix(listing_id)}{sha256}.wasm"


def listing_artifact_key(listing_id: UUID | str, sha256: str, wasmtime_version: str) -> str:
    return f"{listing_versions_prefix(listing_id)}{sha256}.wasmtime-{wasmtime_version}.cwasm"
