"""Dead-lettered executions: a message the executor failed on every delivery attempt leaves its execution
`error`, unless a run still holds a live claim on it (that run, or the sweeper at its deadline, ends it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bloxserver import clock
from bloxserver.contract import EndReason
from bloxserver.dal import executions as execution_store
from bloxserver.executions import CLAIM_GRACE_SECONDS, EXECUTOR_TIMEOUT_SECONDS, QUEUE_MAX_RECEIVES, end_as_read

DEAD_LETTER_MESSAGE = f"Execution failed: not processed after {QUEUE_MAX_RECEIVES} delivery attempts"
# No executor invocation outlives its timeout: a claim older than that (plus grace) belongs to a run that is gone.
LIVE_CLAIM = timedelta(seconds=EXECUTOR_TIMEOUT_SECONDS + CLAIM_GRACE_SECONDS)


def end_dead_lettered(message: dict[str, str], now: datetime) -> bool:
    """End the message's execution as error; False when it had ended, is gone, or a live run holds it."""
    execution = execution_store.get_execution(message["flowId"], message["executionId"])
    if execution is None or execution["status"] != "running":
        return False
    claimed_at = execution.get("claimedAt")
    if claimed_at is not None and claimed_at > clock.iso(now - LIVE_CLAIM):  # fixed-width ISO: sorts as time
        return False
    return end_as_read(execution, "error", DEAD_LETTER_MESSAGE, now, reason=EndReason.DEAD_LETTER.value)
