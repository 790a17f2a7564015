"""`make bench`: cold start of every API function against the FastAPI + Mangum + boto3 floor, then the flow
engine's CPU and AWS round trips per execution (devstack/bench/pipeline.py), then AWS calls per project memory
operation (devstack/bench/memory.py), then WASM calls (devstack/bench/wasm.py), then DynamoDB reads per marketplace
page (devstack/bench/marketplace.py), then each function's package and the layer, unzipped, against Lambda's 250 MB
limit (devstack/bench/package_size.py, from `sam build`'s output).

Each sample is a fresh Python process that imports one handler module and serves its first request against the
embedded AWS (moto server mode, tables from template.yaml). Targets are interleaved run by run so machine noise
hits all of them alike; the table reports medians and the ratio to the baseline's median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from devstack import embedded_aws, resources, template
from devstack.bench import ratio_table

HERE = Path(__file__).resolve().parent
BASELINE = "baseline (FastAPI + Mangum + boto3, one GetItem)"


def _first_request(function: str) -> tuple[str, str, str]:
    """A representative first request: the function's first GET route (any route if it has no GET)."""
    routes = [r for r in template.http_routes() if r.function == function and r.path != "/$default"]
    if not routes:
        return "GET", "/health", "$default"
    route = next((r for r in routes if r.method == "GET"), routes[0])
    path = "/".join(str(uuid.uuid4()) if s.startswith("{") else s for s in route.path.split("/"))
    return route.method, path, route.route_key


DELIVERY = "IngressFunction, webhook delivery (unknown token)"
DELIVERY_FROM_SOURCE = "IngressFunction, webhook delivery (unknown token), our code without bytecode"


def _targets() -> dict[str, list[str]]:
    targets = {BASELINE: [str(HERE), "baseline_app", "handler", "GET", f"/api/v1/flows/{uuid.uuid4()}", "GET /api/v1/flows/{flow_id}"]}
    http_functions = {route.function for route in template.http_routes()}
    for logical_id, spec in sorted(template.functions().items()):
        if logical_id in http_functions:
            targets[logical_id] = [str(spec.code_dir), spec.module, spec.attribute, *_first_request(logical_id)]
    # The route webhook senders call: an unknown token's 404 answers after one GetItem, as the floor's route does.
    ingress = template.functions()["IngressFunction"]
    delivery = ["POST", f"/webhooks/{uuid.uuid4().hex}", "POST /webhooks/{token}"]
    targets[DELIVERY] = [str(ingress.code_dir), ingress.module, ingress.attribute, *delivery]
    targets[DELIVERY_FROM_SOURCE] = targets[DELIVERY]
    return targets


def _without_bytecode(env: dict[str, str], argv: list[str], scratch: Path) -> tuple[dict[str, str], list[str]]:
    """The target with our code (the layer's package, the function's directory) copied where no bytecode exists
    and none is written: every import of it compiles its source, as in Lambda, where a SAM-built zip dates every file
    1980-01-01 so that no timestamp-checked .pyc validates (the libraries' are compared alike, in every target)."""
    layer, code = scratch / "layer", scratch / Path(argv[0]).name
    if not layer.exists():
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(template.ROOT / "layers" / "shared" / "bloxserver", layer / "bloxserver", ignore=ignore)
        shutil.copytree(argv[0], code, ignore=ignore)
    pythonpath = os.pathsep.join([str(layer), str(template.ROOT)])
    return {**env, "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}, [str(code), *argv[1:]]


def _environment(endpoint_url: str) -> dict[str, str]:
    layer = template.ROOT / "layers" / "shared"
    return {
        **os.environ,
        **embedded_aws.FAKE_CREDENTIALS,
        **resources.environment(),
        "AWS_ENDPOINT_URL": endpoint_url,
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_METRICS_NAMESPACE": "BloxServer",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(layer), str(template.ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "0",
    }


def measure(runs: int) -> dict[str, list[float]]:
    os.environ.update(embedded_aws.FAKE_CREDENTIALS)
    aws = embedded_aws.EmbeddedAws()
    try:
        resources.create_all(aws.endpoint_url)
        env = _environment(aws.endpoint_url)
        targets = _targets()
        samples: dict[str, list[float]] = {name: [] for name in targets}
        scratch = Path(tempfile.mkdtemp(prefix="bench-source-"))
        for run in range(runs + 1):  # run 0 warms the file cache and writes bytecode; it is not counted
            for name, argv in targets.items():
                target_env = env
                if name == DELIVERY_FROM_SOURCE:
                    target_env, argv = _without_bytecode(env, argv, scratch)
                output = subprocess.run(
                    [sys.executable, str(HERE / "cold_start_child.py"), *argv],
                    env=target_env, capture_output=True, text=True, check=True,
                ).stdout
                result = json.loads(output.strip().splitlines()[-1])
                if result["status"] >= 500:
                    raise RuntimeError(f"{name} answered {result['status']}")
                if run:
                    samples[name].append(result["total_ms"])
        shutil.rmtree(scratch)
        return samples
    finally:
        aws.stop()


def report(samples: dict[str, list[float]]) -> str:
    return "\n".join(ratio_table("| function | median CPU ms, import + first request", samples, BASELINE, 0))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--memory-operations", type=int, default=20, help="repetitions of each memory operation")
    parser.add_argument("--wasm-calls", type=int, default=300, help="warm WASM calls per round and target")
    parser.add_argument(
        "--only",
        choices=["cold-start", "pipeline", "memory", "wasm", "marketplace", "package-size"],
        help="run one of the benchmarks",
    )
    parser.add_argument(
        "--peer-bench",
        type=Path,
        help="the peer benchmark's folder (n8n installed there, its README says how): measure n8n's CPU per "
        "execution and webhook latency in the same run, beside ours (with the pipeline)",
    )
    parser.add_argument("--peer-requests", type=int, default=1000, help="requests per concurrency, n8n's and ours")
    args = parser.parse_args()
    if args.only in (None, "cold-start"):
        print(f"Cold start, median of {args.runs} fresh processes per target, {sys.version.split()[0]}:\n")
        print(report(measure(args.runs)), flush=True)
    if args.only in (None, "pipeline"):
        from devstack.bench import peer, pipeline

        concurrencies = [8, 1]
        if args.peer_bench:
            print(f"\nn8n, {args.peer_requests} requests per concurrency ({_load()})", flush=True)
            n8n = peer.n8n(args.peer_bench, args.peer_requests, concurrencies)
        print(f"\nExecutions, {args.executions} per flow, webhook → fast path, or → queue → executor (CPU in our "
              f"handlers only; {_load()}):\n")
        results = pipeline.measure(args.executions)
        print(pipeline.report(results), flush=True)
        if args.peer_bench:
            print(f"\nOur webhook latency, {args.peer_requests} requests per concurrency ({_load()})", flush=True)
            ours = peer.our_latency(args.peer_bench, args.peer_requests, concurrencies)
            fast = pipeline.cpu_ms_per_execution(results[pipeline.FAST_PATH])
            print(f"\nSide by side with n8n ({_load()}):\n\n{peer.report(n8n, ours, fast)}", flush=True)
    if args.only in (None, "memory"):
        from devstack.bench import memory

        print(f"\nProject memory, {args.memory_operations} of each operation, against the AWS emulator:\n")
        print(memory.report(memory.measure(args.memory_operations)), flush=True)
    if args.only in (None, "wasm"):
        from devstack.bench import wasm

        print(f"\nWASM calls: warm, {args.wasm_calls} per round and target; first calls, {args.runs} fresh processes each:\n")
        print(wasm.report(wasm.measure_warm(args.wasm_calls), wasm.measure_first_calls(args.runs)), flush=True)
    if args.only in (None, "marketplace"):
        from devstack.bench import marketplace

        print("\nMarketplace, DynamoDB reads per page as the table grows, against the AWS emulator:\n")
        print(marketplace.report(marketplace.measure()), flush=True)
    if args.only in (None, "package-size"):
        from devstack.bench import package_size

        print("\nPackages, unzipped, as `sam build` made them (.aws-sam/build), against Lambda's 250 MB limit:\n")
        if package_size.BUILD_DIR.is_dir():
            print(package_size.report(package_size.measure()))
        else:
            print("No .aws-sam/build: run `make build` (sam build, no Docker, needs python3.12) first.")


if __name__ == "__main__":
    main()
