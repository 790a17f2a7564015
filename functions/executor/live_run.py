"""A claimed run as others see it while it goes: its log records are stored as they come, so a client can follow
it, and an end recorded elsewhere (a cancel, the sweeper) stops it at its next step. A quick run does neither: its
records wait for the batch's one log write, and nobody is asked about it (docs/executions.md, "Operating runs").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import executions as execution_store
from bloxserver.engine import EngineLog
from bloxserver.observability import logger

from bloxserver.run_logs import STORED_AS_EMITTED, log_item, log_items

# A record is stored at the run's first step at least this long after it was emitted (a step comes at every
# listener's start and end, and every engine STEP_SECONDS while a call waits): a follower sees it within about
# this plus a step, and a run quicker than this stores nothing before its end.
LIVE_LOG_DELAY = timedelta(seconds=0.5)
# How often a run asks whether its execution was ended elsewhere (one small read, of its running marker); the first
# time one such period into the run, so a quick run never asks, however long it waited for its turn in the batch.
END_CHECK_SECONDS = 1.0


class LiveRun:
    """One claimed execution's run, from now on."""

    def __init__(self, claim: execution_store.Claim) -> None:
        self.claim = claim
        self.checked_at = time.monotonic()
        self.ended_elsewhere = False
        self.stored_records = 0
        self.stored_items = 0  # items written (or attempted: an item number is never used twice)

    def cancelled(self) -> bool:
        """Whether the execution was ended elsewhere: a cancel, or the sweeper past the claim's deadline. Its
        running marker is then gone (only this run moves it while it runs); read at most every END_CHECK_SECONDS."""
        now = time.monotonic()
        if self.ended_elsewhere or now - self.checked_at < END_CHECK_SECONDS:
            return self.ended_elsewhere
        self.checked_at = now
        execution_id = self.claim.execution["id"]
        try:
            self.ended_elsewhere = not execution_store.marker_exists(execution_id, self.claim.marker_sk)
        except Exception:  # the run goes on; the next check asks again
            logger.warning("Could not check whether the execution was cancelled", exc_info=True)
        return self.ended_elsewhere

    def store_progress(self, logs: Sequence[EngineLog]) -> None:
        """Store the records not stored yet once the oldest has waited LIVE_LOG_DELAY. Only those the stored log
        keeps whatever happens later (bloxserver.run_logs.STORED_AS_EMITTED), so the end adds to them and never rewrites."""
        pending = logs[self.stored_records : STORED_AS_EMITTED]
        if not pending or datetime.now(UTC) - pending[0].timestamp < LIVE_LOG_DELAY:  # the engine's clock
            return
        items = self._items([log_item(record) for record in pending])
        self.stored_items += len(log_store.chunked(items))
        try:
            log_store.put_many([items])
        except Exception:  # best effort, as at the end: the records are stored with the run's end instead
            logger.warning("Could not store the run's records so far", exc_info=True)
            return
        self.stored_records += len(pending)

    def final_items(self, logs: list[EngineLog]) -> log_store.LogItems:
        """The run's records not stored yet, as its stored log ends (bloxserver.run_logs.log_items)."""
        return self._items(log_items(logs)[self.stored_records :])

    def _items(self, records: list[dict[str, Any]]) -> log_store.LogItems:
        execution = self.claim.execution
        return log_store.LogItems(
            execution["flowId"], execution["id"], records, execution["expiresAt"], first_chunk=self.stored_items
        )
