"""A batch's runs side by side: their waits are network waits (HTTP requests, LLM calls), so one owner's slow runs
never hold up another owner's. At most a given number of one owner's runs at once (their tier's
`concurrent_runs`), so one owner's burst cannot take the whole batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any


class RunPool:
    def __init__(self, workers: int) -> None:
        self._threads = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="execution")
        self._running: dict[Future, tuple[str, Any]] = {}  # a run → (its owner, the caller's key for it)
        self._per_owner: Counter[str] = Counter()

    def has_room(self, owner: str, limit: int) -> bool:
        return self._per_owner[owner] < limit

    def start(self, owner: str, key: Any, run: Callable[[], Any]) -> None:
        self._running[self._threads.submit(run)] = (owner, key)
        self._per_owner[owner] += 1

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def finished(self, timeout: float | None) -> list[tuple[Any, Future]]:
        """Waits at most `timeout` seconds (None: no limit) for a run to end; returns (key, future) of every run
        that has ended since the last call."""
        done, _ = wait(self._running, timeout=timeout, return_when=FIRST_COMPLETED)
        ended = []
        for future in done:
            owner, key = self._running.pop(future)
            self._per_owner[owner] -= 1
            ended.append((key, future))
        return ended

    def close(self) -> None:
        """Runs still going are left to finish on their own (their claims stay: the sweeper ends them)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
