"""Ending what nothing else will: an execution still unclaimed 10 minutes after its start is queued once more (its
message may never have been sent), and executions still running past their deadline become `timeout`.

The running markers are sorted by deadline, so each sweep reads only the overdue ones (no scan).
"""

from __future__ import annotations

from datetime import datetime

from bloxserver import clock
from bloxserver.dal import executions as execution_store
from bloxserver.executions import end_as_read, queued_deadline, requeue
from bloxserver.observability import logger

MARKERS_PER_QUERY = 100
MAX_PER_SWEEP = 1000  # bounds one invocation; the next sweep continues
# Shared out by shard, so a backlog in one shard never starves the others.
MAX_PER_SHARD = MAX_PER_SWEEP // execution_store.RUNNING_MARKER_SHARDS


def sweep(now: datetime) -> int:
    """Queue once more every execution still unclaimed REQUEUE_AFTER_SECONDS after its start, and end every
    overdue one as timeout; returns how many it ended."""
    now_iso = clock.iso(now)
    ended = 0
    for shard in range(execution_store.RUNNING_MARKER_SHARDS):
        handled = 0
        while handled < MAX_PER_SHARD:
            wanted = min(MARKERS_PER_QUERY, MAX_PER_SHARD - handled)
            markers = execution_store.overdue_markers(shard, now_iso, wanted)
            for marker in markers:
                handled += 1
                execution = execution_store.get_execution(marker["flowId"], marker["executionId"])
                if execution is None or execution["status"] != "running":
                    execution_store.delete_marker(marker)  # its execution ended or its flow was deleted
                    continue
                if execution.get("runningMarker") != marker["SK"]:
                    # Moved since this sweep read it (an overlapping sweep requeued it, or it was claimed): the
                    # execution's own marker decides, when it is due. Not deleted: a released claim may make it the
                    # execution's marker again; once the execution ends, a sweep deletes it above.
                    continue
                if not execution.get("claimedAt") and marker["deadlineAt"] < queued_deadline(execution["startedAt"]):
                    if requeue(execution):
                        logger.warning("Unclaimed execution queued again", extra={"executionId": execution["id"]})
                    continue
                reason = (
                    f"Execution timed out: no result by its deadline ({marker['deadlineAt']})"
                    if execution.get("claimedAt")
                    else f"Execution timed out: never picked up from the queue by {marker['deadlineAt']}"
                )
                if end_as_read(execution, "timeout", reason, now):
                    ended += 1
                    logger.warning("Execution timed out", extra={"executionId": execution["id"]})
                else:
                    execution_store.delete_marker(marker)
            if len(markers) < wanted:
                break
    return ended
