"""What a finished engine run records, wherever it ran (the executor, or the door for the fast path): its status,
its result fields and its log records, so both paths record the same execution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bloxserver import clock
from bloxserver.engine import EngineLog, EngineResult
from bloxserver.jsonvalues import storable_text

MAX_ERROR_MESSAGE_CHARS = 4000  # an engine error may quote its input: cut, so the execution item stays under 400 KB
MAX_OUTPUT_BYTES = 128 * 1024  # with a webhook's 256 KB input, keeps the execution under the 400 KB item limit


@dataclass(frozen=True)
class RecordedOutcome:
    status: str
    fields: dict[str, Any]  # outputPayload, or errorMessage
    logs: list[EngineLog]  # the engine's records, closed by the recorder's own verdict when it has one


def recorded_outcome(result: EngineResult, execution_id: str) -> RecordedOutcome:
    """The execution's end as recorded: the engine's result, except an output over MAX_OUTPUT_BYTES (an error, which
    then closes the log too) and an error message cut to MAX_ERROR_MESSAGE_CHARS."""
    if result.status == "success":
        if result.output is None or len(result.output.encode()) <= MAX_OUTPUT_BYTES:
            return RecordedOutcome("success", {"outputPayload": result.output}, result.logs)
        message = f"Output exceeds {MAX_OUTPUT_BYTES} bytes"
        closing = EngineLog(clock.utc_now(), "error", message, {"executionId": execution_id, "listener": None})
        return RecordedOutcome("error", {"errorMessage": message}, [*result.logs, closing])
    message = result.error or f"Execution ended: {result.status}"
    return RecordedOutcome(result.status, {"errorMessage": storable_text(message[:MAX_ERROR_MESSAGE_CHARS])}, result.logs)
