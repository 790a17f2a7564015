"""`bloxserver invoke <LogicalId> -e events/...`: a function of template.yaml runs on an event against a running
local stack's embedded AWS, with the template's environment for it, and prints what `sam local invoke` prints."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from devstack.invoke import invoke
from devstack.server import start_local_stack
from devstack.template import ROOT
from tests.integration.test_events import EVENTS, SEEDS, documented_rows


@pytest.fixture(scope="module")
def stack():
    saved = dict(os.environ)
    with start_local_stack(port=0) as running:
        yield running
    os.environ.clear()  # invoke gives this process each function's own environment
    os.environ.update(saved)


def test_given_every_event_file_when_invoked_against_the_stack_then_each_reaches_its_documented_status(stack):
    seeded: set[str] = set()
    for event_file, function, expected, seed in documented_rows():
        if seed and seed not in seeded:
            SEEDS[seed]()  # into the stack's embedded AWS: this process's environment points there
            seeded.add(seed)
        log = io.StringIO()

        result = invoke(function, EVENTS / event_file, stack.port, log=log)

        status = result.get("statusCode", 200) if isinstance(result, dict) else 200
        assert status == expected, f"{event_file}: {status} {result}\n{log.getvalue()}"
        assert "START RequestId:" in log.getvalue() and "REPORT RequestId:" in log.getvalue()


def test_the_command_prints_the_result_on_stdout_and_the_logs_and_report_on_stderr(stack):
    done = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "invoke", "HealthFunction", "-e", "events/health/get-health.json",
         "--port", str(stack.port)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statusCode"] == 200 and json.loads(result["body"])["status"] == "healthy"
    lines = done.stderr.splitlines()
    assert lines[0] == "Invoking health_handler.handler (python3.12)"
    assert lines[1].startswith("START RequestId: ") and lines[1].endswith(" Version: $LATEST")
    assert any(line.startswith("END RequestId: ") for line in lines)
    report = next(line for line in lines if line.startswith("REPORT RequestId: "))
    assert "\tDuration: " in report and "\tMemory Size: 512 MB" in report


def test_the_function_runs_with_the_environment_the_template_gives_it(stack):
    environment = stack.function_environment("UsersFunction")

    assert environment["POWERTOOLS_SERVICE_NAME"] == "users"  # its own, which no other function shares
    assert environment["CLERK_WEBHOOK_SECRET"] == stack.webhook_secret
    assert environment["AWS_ENDPOINT_URL"] == stack.aws.endpoint_url


def test_without_a_running_stack_the_command_says_to_start_one():
    done = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "invoke", "HealthFunction", "-e", "events/health/get-health.json",
         "--port", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 1 and "make dev" in done.stderr and not done.stdout
