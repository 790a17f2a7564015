"""The flow engine in its pipeline: CPU and AWS round trips per execution of the reference flow.

A webhook delivery enters through the real ingress handler. By the queue path it is queued, and the real executor
handler runs it (batches of up to 10, as the event source mapping delivers them) through the engine, recording the
execution, its counters and its logs; by the fast path (docs/executions.md) the ingress runs it and its start's
transaction records it ended. CPU time is counted only inside our handlers, in this process; the AWS emulator
runs in another process, since in AWS that work happens in the managed services. The baseline, run side by
side, is the queue path serving a flow whose one listener only returns its input (as before the fast path): the
ratio isolates what the reference flow costs on top of recording an execution, and what the fast path saves.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

import boto3

from devstack.aws_calls import count_aws_calls
from devstack.events import LambdaContext, http_api_event, run_handler
from devstack.queue_worker import sqs_event
from devstack.server import configure_functions, local_template_refs

from bloxserver.contract import Tier
from bloxserver.dal.executions import delete_flow_executions
from bloxserver.limits import TIER_LIMITS
from bloxserver.settings import get_settings

BATCH = 10
BASELINE = "baseline: pass-through flow, queue path"
FAST_PATH = "reference flow, fast path"
FAST_PATH_BUDGET_MS = "50"  # template.yaml's
PASSTHROUGH_YAML = """\
organism: {name: passthrough}
listeners:
  - name: done
    description: Returns the webhook payload as it came
    handler: output
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmulatorProcess:
    """The AWS emulator in its own process, so its CPU is not counted as ours."""

    def __init__(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.bench.emulator", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:  # moto can take long to wind down after a large run
            self.process.kill()
            self.process.wait()


class Handlers:
    def __init__(self) -> None:
        import executor_handler
        import flows_handler
        import ingress_handler
        import triggers_handler

        self.flows, self.triggers = flows_handler.handler, triggers_handler.handler
        self.ingress, self.executor = ingress_handler.handler, executor_handler.handler


def _http(handler: Any, method: str, path: str, body: Any = None, claims: dict | None = None) -> dict:
    response = run_handler(handler, http_api_event(method, path, body=body, claims=claims), LambdaContext("bench"))
    return {"status": response["statusCode"], "body": json.loads(response.get("body") or "null")}


def _webhook_for(handlers: Handlers, organism_yaml: str, sub: str) -> tuple[str, str]:
    """A running flow of `organism_yaml` with a webhook trigger: (flow id, webhook token)."""
    claims = {"sub": sub, "email": f"{sub}@example.com", "tier": "enterprise"}
    flow = _http(handlers.flows, "POST", "/api/v1/flows", {"name": sub, "organismYaml": organism_yaml}, claims)
    flow_id = flow["body"]["id"]
    assert _http(handlers.flows, "POST", f"/api/v1/flows/{flow_id}/start", claims=claims)["status"] == 200
    # The benchmark sends webhooks as fast as it can: its trigger asks for the enterprise tier's whole rate.
    ceiling = TIER_LIMITS[Tier.ENTERPRISE].webhook_rate_ceiling
    rate_limit = {"per_second": ceiling.per_second, "burst": ceiling.burst}
    trigger = _http(
        handlers.triggers, "POST", f"/api/v1/flows/{flow_id}/triggers",
        {"type": "webhook", "name": "bench", "config": {"type": "webhook", "rate_limit": rate_limit}}, claims,
    )
    return flow_id, trigger["body"]["webhookToken"]


class Measurement:
    def __init__(self) -> None:
        self.cpu_ingress = 0.0
        self.cpu_executor = 0.0
        self.executions = 0
        self.calls_ingress: Counter = Counter()
        self.calls_executor: Counter = Counter()
        self.outputs: list[str] = []
        self.ingress_walls: list[float] = []  # seconds per webhook, the emulator's latency included


def _use_fast_path(on: bool) -> None:
    os.environ["FAST_PATH_BUDGET_MS"] = FAST_PATH_BUDGET_MS if on else "0"
    get_settings.cache_clear()


def _run_batch(handlers: Handlers, sqs: Any, queue_url: str, queue_arn: str, flow_id: str, token: str,
               payload: str, fast: bool, measurement: Measurement) -> None:
    _use_fast_path(fast)
    queued = 0
    for _ in range(BATCH):
        event = http_api_event("POST", f"/webhooks/{token}", body=payload)
        with count_aws_calls() as calls:
            started, wall_started = time.process_time(), time.perf_counter()
            response = run_handler(handlers.ingress, event, LambdaContext("ingress"))
            measurement.cpu_ingress += time.process_time() - started
            measurement.ingress_walls.append(time.perf_counter() - wall_started)
        assert response["statusCode"] == 202, response
        measurement.calls_ingress.update(calls)
        queued += calls["sqs.SendMessage"]
    measurement.executions += BATCH
    if not queued:  # every run ended at the door
        delete_flow_executions(flow_id)
        return
    # The queue path, or fast-path runs the budget cut (on a loaded machine): the executor runs them, counted here.
    received: list[dict] = []
    while len(received) < queued:
        received += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=queued - len(received)).get("Messages", [])
    with count_aws_calls() as calls:
        started = time.process_time()
        result = run_handler(handlers.executor, sqs_event(received, queue_arn), LambdaContext("executor", 900))
        measurement.cpu_executor += time.process_time() - started
    assert result == {"batchItemFailures": []}, result
    measurement.calls_executor.update(calls)
    sqs.delete_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
    )
    # Not measured: keep the emulator's table small. moto copies whole tables on every transaction, so its
    # latency grows with what the run has written, and a client's CPU per call grows with the time it waits
    # (caches gone cold while idle); DynamoDB answers in milliseconds whatever the table's size.
    delete_flow_executions(flow_id)


def measure(executions: int) -> dict[str, Measurement]:
    from bloxserver.engine import REFERENCE_FLOW_INPUT, REFERENCE_FLOW_YAML

    emulator = EmulatorProcess()
    try:
        refs = configure_functions(emulator.url, local_template_refs("http://127.0.0.1:3000", "whsec_bench"), os.environ.update)
        for path in ("functions/flows", "functions/triggers", "functions/ingress", "functions/executor"):
            sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", path))
        handlers = Handlers()
        sqs = boto3.client("sqs")
        queue_url = refs["ExecutionQueue"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cases = {
            FAST_PATH: (*_webhook_for(handlers, REFERENCE_FLOW_YAML, "bench_fast"), REFERENCE_FLOW_INPUT, True),
            "reference flow, queue path": (*_webhook_for(handlers, REFERENCE_FLOW_YAML, "bench_queued"), REFERENCE_FLOW_INPUT, False),
            BASELINE: (*_webhook_for(handlers, PASSTHROUGH_YAML, "bench_baseline"), REFERENCE_FLOW_INPUT, False),
        }
        warm = {name: Measurement() for name in cases}
        for name, case in cases.items():  # warm-up: first imports and the engine's parse cache
            _run_batch(handlers, sqs, queue_url, queue_arn, *case, warm[name])
        results = {name: Measurement() for name in cases}
        for _ in range(executions // BATCH):  # interleaved, so noise hits both alike
            for name, case in cases.items():
                _run_batch(handlers, sqs, queue_url, queue_arn, *case, results[name])
        return results
    finally:
        emulator.stop()


def cpu_ms_per_execution(measurement: Measurement) -> float:
    return (measurement.cpu_ingress + measurement.cpu_executor) / measurement.executions * 1000


def report(results: dict[str, Measurement]) -> str:
    baseline = results[BASELINE]
    base_cpu = (baseline.cpu_ingress + baseline.cpu_executor) / baseline.executions
    lines = [
        "| flow, path | CPU ms per execution (ingress + executor) | ingress | executor | ratio to baseline "
        "| AWS calls per webhook accepted | AWS calls per execution in the executor "
        "| median wall ms per webhook (emulator latency included) |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, m in results.items():
        cpu = (m.cpu_ingress + m.cpu_executor) / m.executions
        per_webhook = ", ".join(f"{op} {n / m.executions:g}" for op, n in sorted(m.calls_ingress.items()))
        per_execution = ", ".join(f"{op} {n / m.executions:g}" for op, n in sorted(m.calls_executor.items())) or "none"
        lines.append(
            f"| {name} | {cpu * 1000:.2f} | {m.cpu_ingress / m.executions * 1000:.2f} "
            f"| {m.cpu_executor / m.executions * 1000:.2f} | {cpu / base_cpu:.2f}× "
            f"| {sum(m.calls_ingress.values()) / m.executions:g} ({per_webhook}) "
            f"| {sum(m.calls_executor.values()) / m.executions:g} ({per_execution}) "
            f"| {statistics.median(m.ingress_walls) * 1000:.1f} |"
        )
    return "\n".join(lines)
