"""Side by side with n8n, in the same `make bench` run (`--peer-bench DIR`): the peer benchmark in DIR (a ruler
kept outside the project, with n8n installed as its README says) measures n8n's CPU per execution of the reference
flow and the latency of its "respond when last node finishes" webhook; here, with the same load generator, the
latency of our webhook waiting for the reference flow's result (`?wait=5`, the query form of `Prefer: wait=5`)
through the local stack that `make dev` runs.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from devstack.bench.pipeline import free_port
from devstack.issuer import DEFAULT_KEY_PATH, DevIssuer, issuer_url
from devstack.template import ROOT

N8N_SYNC = "sync (respond when last node finishes)"
N8N_WARMUP = 500
N8N_STEADY_ANSWERS = 20
N8N_STEADY_WITHIN_SECONDS = 180
WAIT_SECONDS = 5


def n8n(peer_dir: Path, requests: int, concurrencies: list[int]) -> dict[str, Any]:
    """n8n's "respond when last node finishes" webhook on the reference flow, measured with the peer benchmark's own
    code (imported from `peer_dir`, not copied): CPU of n8n's process tree per recorded execution, and the load
    generator's latencies, per concurrency. Its command line (bench.py --quick) probes as soon as its first endpoint
    answers once, and on a loaded machine n8n answers 404 again for a while after its first answer: here the
    measurement starts once the endpoint has answered steadily."""
    os.environ.setdefault("N8N_PORT", str(free_port()))  # n8n's default port may be another n8n's on a shared machine
    sys.path.insert(0, str(peer_dir))
    ruler = importlib.import_module("bench")
    product = ruler.N8n()
    url = product.endpoints[N8N_SYNC]
    product.prepare()
    product.start("fastpath-bench")
    try:
        ruler.wait_first_success(url, product.t_spawn, product.proc)
        _until_steady(ruler, url)
        ruler.loadgen(url, N8N_WARMUP, 8)  # the peer benchmark's warm-up
        ruler.loadgen(url, N8N_WARMUP // 2, 1)
        time.sleep(2)
        runs = [ruler.measured_run(product, url, requests, concurrency) for concurrency in concurrencies]
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        return {"version": product.version(), "node": node, "runs": runs}
    finally:
        product.stop()


def _until_steady(ruler: Any, url: str) -> None:
    answered, deadline = 0, time.monotonic() + N8N_STEADY_WITHIN_SECONDS
    while answered < N8N_STEADY_ANSWERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"n8n's webhook {url} did not answer steadily")
        answered = answered + 1 if ruler.post_ok(url) else 0
        time.sleep(0.1)


def _request(url: str, method: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


class LocalStack:
    """`make dev`'s command (`python -m devstack`) on a free port, stopped at the end."""

    def __enter__(self) -> LocalStack:
        env = {**os.environ, "PORT": "0", "PYTHONUNBUFFERED": "1"}
        env.pop("AWS_ENDPOINT_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        banner = []
        for line in self.process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        match = re.search(r"BloxServer local stack: (http://127\.0\.0\.1:(\d+))", "".join(banner))
        if match is None:
            self.__exit__()
            raise RuntimeError("the local stack did not start:\n" + "".join(banner))
        self.url, port = match[1], int(match[2])
        # The benchmark sends webhooks as fast as it can: an enterprise owner, whose trigger asks for its whole rate.
        self.token = DevIssuer(issuer_url(port), DEFAULT_KEY_PATH).token(
            sub="user_bench", email="bench@example.com", name="Bench", tier="enterprise"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)

    def reference_webhook(self) -> str:
        """A running reference flow's webhook URL."""
        from bloxserver.contract import Tier
        from bloxserver.engine import REFERENCE_FLOW_YAML
        from bloxserver.limits import TIER_LIMITS

        api = f"{self.url}/api/v1/flows"
        flow = _request(api, "POST", self.token, {"name": "reference", "organismYaml": REFERENCE_FLOW_YAML})
        _request(f"{api}/{flow['id']}/start", "POST", self.token)
        ceiling = TIER_LIMITS[Tier.ENTERPRISE].webhook_rate_ceiling
        trigger = _request(
            f"{api}/{flow['id']}/triggers", "POST", self.token,
            {"type": "webhook", "name": "bench", "config": {
                "type": "webhook", "rate_limit": {"per_second": ceiling.per_second, "burst": ceiling.burst}}},
        )
        return trigger["webhookUrl"]


def _loadgen(peer_dir: Path, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    argv = ["node", str(peer_dir / "loadgen.js"), "--url", url, "--n", str(requests), "--c", str(concurrency),
            "--expect", "200"]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def our_latency(peer_dir: Path, requests: int, concurrencies: list[int]) -> dict[int, dict[str, Any]]:
    """Our webhook with `?wait=5` on the reference flow through the local stack: the load generator's figures per
    concurrency (after a warm-up of each)."""
    with LocalStack() as stack:
        url = f"{stack.reference_webhook()}?wait={WAIT_SECONDS}"
        for concurrency in concurrencies:
            _loadgen(peer_dir, url, max(20, requests // 10), concurrency)
        return {concurrency: _loadgen(peer_dir, url, requests, concurrency) for concurrency in concurrencies}


def report(n8n_summary: dict[str, Any], ours: dict[int, dict[str, Any]], fast_path_cpu_ms: float) -> str:
    runs = n8n_summary["runs"]
    cheapest = min(run["cpu_ms_per_exec"] for run in runs if run.get("cpu_ms_per_exec"))
    lines = [
        f"n8n {n8n_summary['version']} (node {n8n_summary['node']}), CPU ms per execution of the reference flow, "
        "recorded, its webhook answering when the last node finishes: "
        + ", ".join(f"concurrency {run['c']}: {run['cpu_ms_per_exec']}" for run in runs)
        + f" ({sum(run['executions'] for run in runs)} executions recorded)",
        f"Ours by the fast path: {fast_path_cpu_ms:.2f} ms, {fast_path_cpu_ms / cheapest:.2f}× n8n's cheapest ({cheapest}).",
        "",
        "| webhook answering with the flow's result | concurrency | requests 200 / sent (other answers) | p50 ms | p99 ms "
        "| requests/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency, run in ours.items():
        lines.append(
            f"| ours, `?wait={WAIT_SECONDS}`, through the local stack | {concurrency} | {run['ok']} / {run['sent']}{_others(run)} "
            f"| {run['p50_ms']} | {run['p99_ms']} | {run['rps']} |"
        )
    for run in runs:
        lines.append(
            f"| n8n, respond when last node finishes | {run['c']} | {run['ok']} / {run['sent']}{_others(run)} "
            f"| {run['p50_ms']} | {run['p99_ms']} | {run['rps']} |"
        )
    return "\n".join(lines)


def _others(run: dict[str, Any]) -> str:
    others = {status: count for status, count in run.get("status", {}).items() if status != "200"}
    return f" ({', '.join(f'{count}× {status}' for status, count in others.items())})" if others else ""
