"""What a run's caller lends it (RunServices): it sees the records as the run goes, and a cancel stops the run at
its next step, between listeners or while a call waits."""

from __future__ import annotations

import textwrap
import threading
import time

from engine_fakes import LocalServer, Reply

from bloxserver.engine import EngineSettings, RunServices, run_flow

LOCAL_ONLY = EngineSettings(allowed_private_cidrs=("127.0.0.1/32",))

THREE_STEPS = textwrap.dedent("""
    organism: {name: steps}
    listeners:
      - name: first
        description: one
        handler: transform
        config: {expression: "{n: `1`}"}
        peers: [second]
      - name: second
        description: two
        handler: transform
        config: {expression: "{n: `2`}"}
        peers: [third]
      - name: third
        description: three
        handler: output
""")


def calling(url: str) -> str:
    return textwrap.dedent(f"""
        organism: {{name: caller}}
        listeners:
          - name: call
            description: a slow peer
            handler: http
            config: {{url: "{url}/slow", timeout_seconds: 30}}
            peers: [done]
          - name: done
            description: the end
            handler: output
    """)


def run(yaml_text: str, services: RunServices, seconds: float = 30.0):
    return run_flow(
        yaml_text, "{}", execution_id="exec-1", deadline=time.monotonic() + seconds, settings=LOCAL_ONLY,
        services=services,
    )


def test_given_progress_wanted_then_the_caller_sees_the_records_at_every_listeners_start_and_end():
    seen: list[list[str]] = []
    result = run(THREE_STEPS, RunServices(log_progress=lambda logs: seen.append([log.message for log in logs])))
    assert result.status == "success"
    # before each listener and after each one: the records grow step by step, each view a prefix of the final log
    assert len(seen) == 6
    final = [log.message for log in result.logs]
    assert all(view == final[: len(view)] for view in seen)
    assert [len(view) for view in seen] == sorted(len(view) for view in seen)
    assert "listener 'second' invoked" in seen[3] and "listener 'third' invoked" not in seen[3]


def test_given_a_cancel_between_listeners_then_the_run_stops_before_the_next_one():
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) >= 3  # before first, after first, then before second

    result = run(THREE_STEPS, RunServices(cancelled=cancelled))
    assert (result.status, result.error) == ("error", "execution cancelled")
    messages = [log.message for log in result.logs]
    assert "listener 'first' invoked" in messages and "listener 'second' invoked" not in messages
    assert messages[-2:] == ["execution cancelled", "execution finished: error"]


def test_given_a_cancel_while_an_http_call_waits_then_the_run_stops_without_waiting_for_the_answer():
    answer = threading.Event()
    cancel = threading.Event()

    def respond(_request):
        cancel.set()  # the call is under way: cancel now
        answer.wait(10)
        return Reply(body="late")

    with LocalServer(respond) as server:
        result = run(calling(server.url), RunServices(cancelled=cancel.is_set))
        answered_before_the_run_ended = answer.is_set()
        answer.set()
    assert (result.status, result.error) == ("error", "execution cancelled")
    assert not answered_before_the_run_ended
    assert not any(log.message.startswith("http GET") for log in result.logs)


def test_given_no_services_then_a_run_goes_as_before():
    result = run(THREE_STEPS, RunServices())
    assert result.status == "success"
