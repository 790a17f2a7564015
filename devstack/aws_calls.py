"""Counting the AWS API calls (round trips) code makes: `with count_aws_calls() as calls: ...` then
calls["dynamodb.TransactWriteItems"], calls["sqs.SendMessage"], ... Tests use it to pin the round trips of a
request; the benchmark reports them.

Clients copy their event hooks when created, and the shared layer caches its clients, so a hook registered on a
session later would miss them: the count is taken in BaseClient._make_api_call instead, which every client of
the process goes through (botocore's own retries of one call count once).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient

_lock = threading.Lock()
_active: list[Counter] = []
_unpatched = BaseClient._make_api_call


def _counting_make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    with _lock:
        for counter in _active:
            counter[f"{self.meta.service_model.service_name}.{operation_name}"] += 1
    return _unpatched(self, operation_name, api_params)


@contextmanager
def count_aws_calls() -> Iterator[Counter]:
    """A Counter of "service.Operation" → calls made (by any thread of this process) inside the block."""
    counter: Counter = Counter()
    with _lock:
        _active.append(counter)
        BaseClient._make_api_call = _counting_make_api_call  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        with _lock:
            _active.remove(counter)
            if not _active:
                BaseClient._make_api_call = _unpatched  # type: ignore[method-assign]
