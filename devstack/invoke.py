"""`bloxserver invoke <LogicalId> -e events/<group>/<file>.json`: what `sam local invoke` does, without Docker.

The function's handler, as template.yaml names it, runs in this process on the event, against the running
`make dev`'s embedded AWS and with the environment the template gives that function (the stack hands both out).
As `sam local invoke` does, the function's logs and the START/END/REPORT lines go to stderr and the handler's
result, as JSON, to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

from devstack import template
from devstack.events import LambdaContext, run_handler
from devstack.issuer import issuer_url


class StackNotRunning(RuntimeError):
    pass


def stack_environment(port: int, logical_id: str) -> dict[str, str]:
    """The environment the local stack on `port` gives `logical_id`."""
    url = f"{issuer_url(port)}/_local/functions/{logical_id}/environment"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.load(reply)
    except (urllib.error.URLError, OSError) as exc:
        raise StackNotRunning(
            f"No local stack answers at {issuer_url(port)} ({getattr(exc, 'reason', exc)}): start it with `make dev` "
            "(or pass --port)"
        ) from None


def invoke(logical_id: str, event_path: Path, port: int, log: TextIO = sys.stderr) -> Any:
    # Powertools' logger writes to the stdout it finds at import: the function's logs go to `log`, as SAM's do.
    with contextlib.redirect_stdout(log):
        return _invoke(logical_id, event_path, port, log)


def _invoke(logical_id: str, event_path: Path, port: int, log: TextIO) -> Any:
    specs = template.functions()
    if logical_id not in specs:
        raise KeyError(f"template.yaml has no function {logical_id!r}; it has: {', '.join(sorted(specs))}")
    spec = specs[logical_id]
    event = json.loads(event_path.read_text())
    os.environ.update(stack_environment(port, logical_id))
    _forget_cached_clients()
    print(f"Invoking {spec.module}.{spec.attribute} ({_runtime(logical_id)})", file=log, flush=True)
    started = time.perf_counter()
    handler = getattr(spec.import_module(), spec.attribute)
    init_ms = (time.perf_counter() - started) * 1000
    context = LambdaContext(logical_id, spec.timeout_seconds, spec.memory_mb)
    print(f"START RequestId: {context.aws_request_id} Version: $LATEST", file=log, flush=True)
    started = time.perf_counter()
    result = run_handler(handler, event, context)
    duration_ms = (time.perf_counter() - started) * 1000
    max_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kilobytes on Linux
    print(f"END RequestId: {context.aws_request_id}", file=log)
    print(
        f"REPORT RequestId: {context.aws_request_id}\tInit Duration: {init_ms:.2f} ms\tDuration: {duration_ms:.2f} ms"
        f"\tBilled Duration: {int(duration_ms) + 1} ms\tMemory Size: {spec.memory_mb} MB"
        f"\tMax Memory Used: {max_memory_mb} MB\t",
        file=log,
        flush=True,
    )
    return result


def _runtime(logical_id: str) -> str:
    resource_properties = template.resources_of_type("AWS::Serverless::Function")[logical_id]["Properties"]
    runtime = resource_properties.get("Runtime")
    return runtime or template.load_template().get("Globals", {}).get("Function", {}).get("Runtime", "python")


def _forget_cached_clients() -> None:
    from devstack.server import forget_cached_clients

    forget_cached_clients()
