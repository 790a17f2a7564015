"""Project memory: AWS calls (round trips) and wall time per operation, size accounting included.

Each operation runs against the AWS emulator in another process, through the run's memory port (what the `memory`
handler and WASM tools call) and through the API's handler. "Remembered" means this container saw the entry's
last write (its version and size are known); "written elsewhere" means another container wrote it since, so the
first attempt's assumption is wrong and the cancelled transaction's answer is used to write again. The baseline,
timed side by side, is one plain PutItem of an item of the same size without any accounting.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.aws_calls import count_aws_calls
from devstack.bench.pipeline import EmulatorProcess
from devstack.events import LambdaContext, http_api_event, run_handler
from devstack.server import configure_functions, local_template_refs

BASELINE = "baseline: one PutItem, no accounting"


@dataclass
class Operation:
    calls: Counter = field(default_factory=Counter)
    walls: list[float] = field(default_factory=list)
    count: int = 0


def _http(handler: Any, method: str, path: str, body: Any = None, claims: dict | None = None) -> int:
    return run_handler(handler, http_api_event(method, path, body=body, claims=claims), LambdaContext("bench"))[
        "statusCode"
    ]


def measure(repetitions: int) -> dict[str, Operation]:
    from bloxserver import project_memory
    from bloxserver.auth import user_id_for
    from bloxserver.dal.table import client, serialize, table_name

    emulator = EmulatorProcess()
    try:
        refs = local_template_refs("http://127.0.0.1:3000", "whsec_bench")
        configure_functions(emulator.url, refs, os.environ.update)
        for path in ("functions/flows", "functions/memory"):
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", path))
        import flows_handler
        import memory_handler

        sub = "bench_memory"
        claims = {"sub": sub, "email": f"{sub}@example.com", "tier": "pro"}
        created = run_handler(
            flows_handler.handler,
            http_api_event("POST", "/api/v1/flows", body={"name": "memory bench"}, claims=claims),
            LambdaContext("bench"),
        )
        flow_id = json.loads(created["body"])["id"]
        api = memory_handler.handler
        assert _http(api, "PATCH", f"/api/v1/flows/{flow_id}/memory", {"enabled": True}, claims) == 200
        port = project_memory.EngineMemory(user_id_for(sub), uuid.UUID(flow_id))
        # Another container's port: its writes are ones this container did not see.
        elsewhere = project_memory.EngineMemory(user_id_for(sub), uuid.UUID(flow_id))
        value = {"user": "ada", "visits": 41, "note": "x" * 200}
        port.set("warm", value, None)  # the owner's tier is now known to this container
        results: dict[str, Operation] = {}

        def timed(name: str, action: Callable[[], Any], prepare: Callable[[], Any] | None = None) -> None:
            operation = results.setdefault(name, Operation())
            for _ in range(repetitions):
                if prepare:
                    prepare()
                with count_aws_calls() as calls:
                    started = time.perf_counter()
                    action()
                    operation.walls.append(time.perf_counter() - started)
                operation.calls.update(calls)
                operation.count += 1

        def written_elsewhere(key: str) -> Callable[[], None]:
            def prepare() -> None:
                elsewhere.memory.put(key, "0", None)
                # This container never saw that write (the bench reaches into the container's memory to say so).
                project_memory._known_entries.forget(port.memory._cache_key(key))

            return prepare

        counter = iter(range(10**9))
        raw = {"PK": f"BENCH#{uuid.uuid4()}", "SK": "ITEM", "value": "x" * 230}
        timed(BASELINE, lambda: client().put_item(TableName=table_name(), Item=serialize(raw)))
        timed("port get", lambda: port.get("warm"))
        timed("port set, new key", lambda: port.set(f"new-{next(counter)}", value, None))
        timed("port set, remembered key", lambda: port.set("warm", value, None))
        timed("port set, key written elsewhere", lambda: port.set("shared", value, None), written_elsewhere("shared"))
        timed("port set with ttl_seconds", lambda: port.set("brief", value, 3600))
        port.set("count", 0, None)
        timed("port increment, remembered", lambda: port.increment("count", 1, None))
        timed(
            "port increment, written elsewhere", lambda: port.increment("count2", 1, None), written_elsewhere("count2")
        )
        timed("port delete, remembered", lambda: port.delete("gone"), lambda: port.set("gone", 1, None))
        timed("port delete, absent key", lambda: port.delete("never"))
        entry = f"/api/v1/flows/{flow_id}/memory/entries/api"
        timed(
            "API PUT entry, remembered (token with a tier claim)",
            lambda: _http(api, "PUT", entry, {"value": value}, claims),
        )
        timed("API GET entry", lambda: _http(api, "GET", entry, None, claims))
        timed(
            "API DELETE entry",
            lambda: _http(api, "DELETE", entry, None, claims),
            lambda: _http(api, "PUT", entry, {"value": 1}, claims),
        )
        described = f"/api/v1/flows/{flow_id}/memory"
        timed("API GET memory (state + keys)", lambda: _http(api, "GET", described, None, claims))
        return results
    finally:
        emulator.stop()


def report(results: dict[str, Operation]) -> str:
    floor = statistics.median(results[BASELINE].walls)
    lines = [
        "| operation | AWS calls per operation | median wall ms (emulator latency included) | ratio to baseline |",
        "|---|---|---:|---:|",
    ]
    for name, operation in results.items():
        per = ", ".join(f"{op} {n / operation.count:g}" for op, n in sorted(operation.calls.items()))
        median = statistics.median(operation.walls)
        lines.append(
            f"| {name} | {sum(operation.calls.values()) / operation.count:g} ({per}) | {median * 1000:.1f} "
            f"| {median / floor:.2f}× |"
        )
    return "\n".join(lines)
