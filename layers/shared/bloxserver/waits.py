"""Answering a start with its execution's result (docs/executions.md, "Answering with the result"): the wait a caller
asks for with `Prefer: wait=<seconds>` (RFC 7240) or `?wait=<seconds>`, and the bounded reads that wait costs.

A run ended at the door (the fast path) answers at once; a queued one is read with a back-off until it ends or the
wait is over, so a wait costs at most `max_reads(seconds)` GetItems."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from bloxserver.dal import executions as execution_store
from bloxserver.errors import ValidationFailed

MIN_WAIT_SECONDS = 1
MAX_WAIT_SECONDS = 25  # within the HTTP API's 30 s and the functions' 28 s Timeout
FIRST_READ_SECONDS = 0.1  # a queued run needs at least its queue's poll and its batch's writes
READ_BACKOFF = 2.0
MAX_READ_INTERVAL_SECONDS = 1.0
_PREFER_WAIT = re.compile(r'(?:^|[,;])\s*wait\s*=\s*"?(\d{1,9})"?\s*(?=[,;]|$)', re.IGNORECASE)


def requested_wait(prefer: str | None, query_wait: str | None) -> int | None:
    """Seconds to wait for the execution's end, or None for no wait. `?wait=` must be a whole number from 1 to 25
    (else 422 naming query.wait); `Prefer: wait=` is a preference (RFC 7240): above 25 it is lowered to 25, and a
    value that is not a positive whole number is ignored. The query wins when both are given."""
    if query_wait is not None:
        if not query_wait.isdigit() or not MIN_WAIT_SECONDS <= int(query_wait) <= MAX_WAIT_SECONDS:
            raise ValidationFailed(
                f"wait must be a whole number of seconds from {MIN_WAIT_SECONDS} to {MAX_WAIT_SECONDS}",
                {"query.wait": query_wait},
            )
        return int(query_wait)
    match = _PREFER_WAIT.search(prefer or "")
    if match is None or int(match[1]) < MIN_WAIT_SECONDS:
        return None
    return min(int(match[1]), MAX_WAIT_SECONDS)


def read_delays(seconds: float) -> list[float]:
    """The pauses before each read of a wait of `seconds`: doubling from FIRST_READ_SECONDS up to
    MAX_READ_INTERVAL_SECONDS, the last one cut so the last read comes as the wait ends."""
    delays, waited, delay = [], 0.0, FIRST_READ_SECONDS
    while waited < seconds:
        step = min(delay, seconds - waited)
        delays.append(step)
        waited += step
        delay = min(delay * READ_BACKOFF, MAX_READ_INTERVAL_SECONDS)
    return delays


def max_reads(seconds: int, read_first: bool = False) -> int:
    """GetItems a wait of `seconds` costs at most (one more when the execution is read before the first pause)."""
    return len(read_delays(seconds)) + (1 if read_first else 0)


def wait_for_end(
    execution: dict[str, Any],
    seconds: int,
    *,
    read_first: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any] | None:
    """`execution` (id and flowId at least) as it ended, or None if it had not ended within `seconds`. An execution
    already ended (a run at the door) costs no read; a replayed delivery's (`read_first`) is read at once."""
    if execution.get("status") not in (None, "running"):
        return execution
    flow_id, execution_id = execution["flowId"], execution["id"]
    delays = read_delays(seconds)
    for delay in [0.0, *delays] if read_first else delays:
        sleep(delay)
        current = execution_store.get_execution(flow_id, execution_id)
        if current is None:
            return None
        if current["status"] != "running":
            return current
    return None


# The 200 a start that waited answers (result_body), for the routes' `responses=` (openapi.json).
WAITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The caller waited (`Prefer: wait=N` or `?wait=N`) and the execution ended: how it ended",
        "headers": {"Preference-Applied": {"schema": {"type": "string"}, "description": "wait=N, as applied"}},
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status", "executionId", "output", "errorMessage", "durationMs"],
                    "properties": {
                        "status": {"type": "string", "enum": ["success", "error", "timeout"]},
                        "executionId": {"type": "string", "format": "uuid"},
                        "output": {"description": "the flow's output as JSON (its text where it is not JSON)"},
                        "errorMessage": {"type": ["string", "null"]},
                        "durationMs": {"type": ["integer", "null"]},
                    },
                }
            }
        },
    }
}


def result_body(execution: dict[str, Any]) -> dict[str, Any]:
    """The 200 answer of a start that waited: how its execution ended, the output as JSON."""
    output = execution.get("outputPayload")
    if output is not None:
        try:
            output = json.loads(output)
        except ValueError:  # not JSON (the engine's output always is): the text as it is
            pass
    return {
        "status": execution["status"],
        "executionId": execution["id"],
        "output": output,
        "errorMessage": execution.get("errorMessage"),
        "durationMs": execution.get("durationMs"),
    }


def preference_applied(seconds: int) -> dict[str, str]:
    return {"Preference-Applied": f"wait={seconds}"}
