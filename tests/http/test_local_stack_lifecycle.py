"""Starting and stopping the local stack: workers, the environment it borrows, the dev issuer's key.

A module of its own: a stack resets the process's embedded AWS, so it must not run beside another module's stack.
"""

from __future__ import annotations

import os
import stat
import threading
import urllib.request

from devstack.issuer import DevIssuer
from devstack.server import start_local_stack


def test_workers_run_until_the_stack_stops_and_the_environment_is_given_back(tmp_path):
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    running = threading.Event()
    stopped = []

    def worker(stop: threading.Event) -> None:
        running.set()
        stop.wait()
        stopped.append(True)

    stack = start_local_stack(key_path=tmp_path / "key.pem")
    stack.add_worker(worker, name="test-worker")
    assert running.wait(10)
    assert os.environ["AWS_ENDPOINT_URL"] == stack.aws.endpoint_url
    with urllib.request.urlopen(f"{stack.url}/health") as reply:
        assert reply.status == 200

    stack.stop()

    assert stopped == [True]
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before


def test_the_signing_key_is_created_once_private_and_shared_by_later_issuers(tmp_path):
    key_path = tmp_path / "dev" / "key.pem"

    first = DevIssuer("http://127.0.0.1:3000", key_path)
    second = DevIssuer("http://127.0.0.1:3000", key_path)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert first.jwks() == second.jwks()


def test_a_developers_own_blox_settings_win_over_the_templates_defaults(tmp_path, monkeypatch):
    # given a developer who points agents at their own OpenAI-compatible endpoint before `make dev`
    monkeypatch.setenv("BLOX_LLM_PROVIDER", "openai")
    monkeypatch.setenv("BLOX_OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    # when the stack starts (the template's LlmProvider default is bedrock)
    with start_local_stack(key_path=tmp_path / "key.pem") as stack:
        # then the functions see the developer's values, and the template's own for the rest
        assert os.environ["BLOX_LLM_PROVIDER"] == "openai"
        assert os.environ["BLOX_OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
        assert os.environ["BLOX_BEDROCK_MODEL_ID"] == stack.resource_refs["BedrockModelId"]
    assert os.environ["BLOX_LLM_PROVIDER"] == "openai"
