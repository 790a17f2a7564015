"""`make bench`: cold start of every API function against the FastAPI + Mangum + boto3 floor, then the flow
engine's CPU and AWS round trips per execution (devstack/bench/pipeline.py), then AWS calls per project memory
operation (devstack/bench/memory.py), then each function's package and the layer, unzipped, against Lambda's
250 MB limit (devstack/bench/package_size.py, from `sam build`'s output).

Each sample is a fresh Python process that imports one handler module and serves its first request against the
embedded AWS (moto server mode, tables from template.yaml). Targets are interleaved run by run so machine noise
hits all of them alike; the table reports medians and the ratio to the baseline's median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from devstack import embedded_aws, resources, template

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


def _targets() -> dict[str, list[str]]:
    targets = {BASELINE: [str(HERE), "baseline_app", "handler", "GET", f"/api/v1/flows/{uuid.uuid4()}", "GET /api/v1/flows/{flow_id}"]}
    http_functions = {route.function for route in template.http_routes()}
    for logical_id, spec in sorted(template.functions().items()):
        if logical_id in http_functions:
            targets[logical_id] = [str(spec.code_dir), spec.module, spec.attribute, *_first_request(logical_id)]
    return targets


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
        for run in range(runs + 1):  # run 0 warms the file cache and writes bytecode; it is not counted
            for name, argv in targets.items():
                output = subprocess.run(
                    [sys.executable, str(HERE / "cold_start_child.py"), *argv],
                    env=env, capture_output=True, text=True, check=True,
                ).stdout
                result = json.loads(output.strip().splitlines()[-1])
                if result["status"] >= 500:
                    raise RuntimeError(f"{name} answered {result['status']}")
                if run:
                    samples[name].append(result["total_ms"])
        return samples
    finally:
        aws.stop()


def report(samples: dict[str, list[float]]) -> str:
    floor = statistics.median(samples[BASELINE])
    lines = [
        "| function | median CPU ms, import + first request | ratio to baseline |",
        "|---|---:|---:|",
    ]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.0f} | {median / floor:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--memory-operations", type=int, default=20, help="repetitions of each memory operation")
    parser.add_argument("--only", choices=["cold-start", "pipeline", "memory", "package-size"], help="run one of the benchmarks")
    args = parser.parse_args()
    if args.only in (None, "cold-start"):
        print(f"Cold start, median of {args.runs} fresh processes per target, {sys.version.split()[0]}:\n")
        print(report(measure(args.runs)), flush=True)
    if args.only in (None, "pipeline"):
        from devstack.bench import pipeline

        print(f"\nExecutions, {args.executions} per flow, webhook → queue → executor (CPU in our handlers only):\n")
        print(pipeline.report(pipeline.measure(args.executions)), flush=True)
    if args.only in (None, "memory"):
        from devstack.bench import memory

        print(f"\nProject memory, {args.memory_operations} of each operation, against the AWS emulator:\n")
        print(memory.report(memory.measure(args.memory_operations)), flush=True)
    if args.only in (None, "package-size"):
        from devstack.bench import package_size

        print("\nPackages, unzipped, as `sam build` made them (.aws-sam/build), against Lambda's 250 MB limit:\n")
        if package_size.BUILD_DIR.is_dir():
            print(package_size.report(package_size.measure()))
        else:
            print("No .aws-sam/build: run `make build` (sam build, no Docker, needs python3.12) first.")


if __name__ == "__main__":
    main()
