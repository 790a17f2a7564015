"""One execution: the trigger payload enters the entry listener, results travel to peers breadth-first, and the run
ends with the terminal results, an error or a timeout. `run_flow` never raises for anything the flow does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable

from bloxserver import jsonvalues
from bloxserver.engine.expressions import MAX_MESSAGE_BYTES
from bloxserver.engine.base import HandlerResult, ListenerFailed, ListenerTimedOut
from bloxserver.engine.context import FlowContext, RunServices
from bloxserver.engine.llm import ResolvedLlm, resolve_llm_choice
from bloxserver.engine.loader import load_organism
from bloxserver.engine.model import EngineLog, EngineResult, Listener, LogLevel, Organism, OrganismError, RunStatus
from bloxserver.engine.redaction import Redactor
from bloxserver.engine.settings import EngineSettings, get_engine_settings

# What all the results of one run may add up to: a run holds them at once (queued, terminal, logged), and a batch of
# runs shares the executor's 1 GB; far above what real flows pass on.
MAX_RUN_MESSAGE_BYTES = 32 * MAX_MESSAGE_BYTES
# While a blocking call waits, the run takes a step (RunServices: progress handed over, cancellation asked) this often.
STEP_SECONDS = 0.25
CANCELLED_MESSAGE = "execution cancelled"


class RunStopped(Exception):
    """Ends the run unless an agent absorbs it; `listener` names where it happened."""

    status: RunStatus = "error"

    def __init__(self, message: str, listener: str | None, owner: Invocation | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.listener = listener
        # The invocation this concerns alone (its handler failed, its timeout_seconds ran out); None: the whole run.
        self.owner = owner


class ListenerError(RunStopped):
    """A listener's handler failed: the run ends as `error`, unless the listener was an agent's tool."""


class DeadlineExceeded(RunStopped):
    """A listener's, the flow's or the executor's deadline passed: the run ends as `timeout`."""

    status = "timeout"


class RunCancelled(RunStopped):
    """The caller cancelled the run (RunServices.cancelled): it ends as `error` at its next step."""


class Invocation:
    """One listener handling one message: its deadline, its log records, blocking calls, tool calls, token spend."""

    def __init__(self, run: Run, listener: Listener, parent: Invocation | None) -> None:
        self.run = run
        self.listener = listener
        self.spec = listener.spec
        own_deadline = time.monotonic() + self.spec.timeout_seconds
        outer_deadline, outer_owner = (parent.deadline, parent.deadline_owner) if parent else (run.deadline, None)
        if own_deadline < outer_deadline:
            self.deadline, self.deadline_owner = own_deadline, self
        else:
            self.deadline, self.deadline_owner = outer_deadline, outer_owner

    @property
    def settings(self) -> EngineSettings:
        return self.run.settings

    @property
    def secrets(self) -> dict[str, str]:
        return self.run.secrets

    @property
    def llm_choice(self) -> ResolvedLlm:
        return resolve_llm_choice(self.run.settings, self.run.organism.llm, self.spec.llm)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, level: LogLevel, message: str, **metadata: Any) -> None:
        self.run.log(level, message, self.spec.name, **metadata)

    def check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise self._deadline_exceeded()

    def _deadline_exceeded(self) -> DeadlineExceeded:
        owner = self.deadline_owner
        if owner is None:
            message = f"execution timed out while listener '{self.spec.name}' was running"
        else:
            message = f"listener '{owner.spec.name}' timed out after {owner.spec.timeout_seconds:g} s"
        return DeadlineExceeded(message, self.spec.name, owner)

    def call_blocking(self, function: Callable[..., Any], *args: Any, within: float | None = None) -> Any:
        """Runs a blocking call (network I/O) in a worker thread and stops waiting at this invocation's deadline, or
        after `within` seconds when that comes first (the call then fails the listener).

        A call still running after that is abandoned; the I/O clients also get the remaining time as their own
        timeout, so the thread ends soon after.
        """
        remaining = self.remaining()
        if remaining <= 0:
            raise self._deadline_exceeded()
        own_limit = within is not None and within < remaining
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = function(*args)
            except BaseException as exc:  # handed to the calling thread below
                outcome["error"] = exc

        worker = threading.Thread(target=target, name=f"listener-{self.spec.name}", daemon=True)
        worker.start()
        gives_up_at = time.monotonic() + (within if own_limit else remaining)
        while worker.is_alive() and (left := gives_up_at - time.monotonic()) > 0:
            worker.join(min(left, STEP_SECONDS))
            if worker.is_alive():
                self.run.step()
        if worker.is_alive():
            if own_limit:
                raise ListenerFailed(f"the call took longer than {within:g} s")
            raise self._deadline_exceeded()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def spend_tokens(self, tokens: int) -> None:
        self.run.tokens_used += tokens
        quota = self.run.services.token_quota
        if quota is not None:
            quota.spend(tokens)
        budget = self.run.organism.max_tokens_per_thread
        if self.run.tokens_used > budget:
            raise RunStopped(
                f"token budget of {budget} tokens per execution exceeded in listener '{self.spec.name}'", self.spec.name
            )
        self.check_token_quota()

    def check_token_quota(self) -> int | None:
        """The owner's LLM tokens left this month (None: no quota applies); stops the run when none are left."""
        quota = self.run.services.token_quota
        if quota is None:
            return None
        left = quota.left()
        if left <= 0:
            raise RunStopped(f"{quota.description} reached in listener '{self.spec.name}'", self.spec.name)
        return left

    def invoke_tool(self, name: str, message: Any) -> tuple[Any, bool]:
        """Runs peer `name` as this agent's tool and returns (result, is_error); its own peers are not involved.

        A tool's own failure or timeout goes back to the model as an error result; run-level stops propagate.
        """
        if name not in self.spec.peers:
            return f"'{name}' is not one of this agent's tools", True
        invocation = self.run.begin(self.run.organism.listeners[name], message, parent=self)
        try:
            return self.run.execute(invocation, message).value, False
        except (ListenerError, DeadlineExceeded) as exc:
            if exc.owner is not invocation:
                raise
            self.log("warning", f"tool call failed, returned to the model: {exc.message}", tool=name)
            return exc.message, True


class Run:
    def __init__(
        self,
        organism: Organism,
        settings: EngineSettings,
        execution_id: str,
        deadline: float,
        services: RunServices = RunServices(),
    ) -> None:
        self.organism = organism
        self.settings = settings
        self.services = services
        self.execution_id = execution_id
        self.deadline = min(deadline, time.monotonic() + organism.timeout_seconds)
        self.logs: list[EngineLog] = []
        self.iterations = 0
        self.tokens_used = 0
        self.message_bytes = 0  # of every result so far: they may all be held at once (pending, terminal, logged)
        self.secrets: dict[str, str] = {}  # the values of the secrets the flow references, from the run's start

    def log(self, level: LogLevel, message: str, listener: str | None, **metadata: Any) -> None:
        metadata = {"executionId": self.execution_id, "listener": listener, **metadata}
        self.logs.append(EngineLog(datetime.now(timezone.utc), level, message, metadata))

    def step(self) -> None:
        """A point where the caller sees the run: its records so far are handed over, and a cancellation stops it."""
        if self.services.log_progress is not None:
            self.services.log_progress(self.logs)
        if self.services.cancelled is not None and self.services.cancelled():
            raise RunCancelled(CANCELLED_MESSAGE, None)

    def count_iteration(self, listener: str) -> None:
        limit = self.organism.max_iterations
        if self.iterations == limit:
            raise RunStopped(f"max_iterations ({limit}) exceeded at listener '{listener}'", listener)
        self.iterations += 1

    def begin(self, listener: Listener, message: Any, parent: Invocation | None) -> Invocation:
        self.step()
        self.count_iteration(listener.name)
        invocation = Invocation(self, listener, parent)
        invocation.check_deadline()
        details: dict[str, Any] = {"handler": listener.spec.handler_name, "iteration": self.iterations}
        if self.organism.log_payloads:
            details["payload"] = message
        invocation.log("info", f"listener '{listener.name}' invoked", **details)
        return invocation

    def execute(self, invocation: Invocation, message: Any) -> HandlerResult:
        name = invocation.spec.name
        try:
            result = invocation.listener.handler.run(message, invocation)
        except RunStopped:
            raise
        except ListenerTimedOut as exc:
            raise DeadlineExceeded(f"listener '{name}' timed out: {exc}", name, invocation) from exc
        except ListenerFailed as exc:
            raise ListenerError(f"listener '{name}' failed: {exc}", name, invocation) from exc
        except Exception as exc:
            raise ListenerError(f"listener '{name}' failed: {type(exc).__name__}: {exc}", name, invocation) from exc
        invocation.check_deadline()
        size, problem = jsonvalues.measure(result.value, MAX_MESSAGE_BYTES)
        if problem is not None:
            raise ListenerError(f"listener '{name}' produced a message with {problem}", name, invocation)
        self.message_bytes += size
        if self.message_bytes > MAX_RUN_MESSAGE_BYTES:
            raise RunStopped(
                f"the execution's messages exceed {MAX_RUN_MESSAGE_BYTES} bytes in all, at listener '{name}'", name
            )
        if self.organism.log_payloads:
            invocation.log("debug", f"listener '{invocation.spec.name}' result", result=result.value)
        self.step()
        return result

    def deliver(self, message: Any) -> dict[str, list[Any]]:
        """Runs the flow breadth-first from the entry; returns terminal results by listener name."""
        listeners = self.organism.listeners
        pending: deque[tuple[Listener, Any]] = deque([(listeners[self.organism.entry], message)])
        terminal_results: dict[str, list[Any]] = {}
        while pending:
            listener, message = pending.popleft()
            result = self.execute(self.begin(listener, message, parent=None), message)
            if listener.is_terminal:
                terminal_results.setdefault(listener.name, []).append(result.value)
                continue
            targets = listener.spec.onward if result.route is None else result.route
            if not targets:
                self.log("info", f"listener '{listener.name}' routed its message nowhere", listener.name)
            pending.extend((listeners[target], result.value) for target in targets)
        return terminal_results


def _entry_message(input_payload: str | None) -> Any:
    """A JSON input as its value; any other text (a form post, plain text) as a string."""
    if input_payload is None:
        return None
    try:
        message = jsonvalues.parse(input_payload)
    except ValueError:
        return input_payload
    problem = jsonvalues.size_problem(message, MAX_MESSAGE_BYTES)
    if problem is not None:
        raise RunStopped(f"the input has {problem}", None)
    return message


def _secret_values(organism: Organism, services: RunServices) -> dict[str, str]:
    names = organism.secret_names
    if not names:
        return {}
    if services.secret_values is None:
        raise RunStopped("secrets are not available to this run", None)
    try:
        values = dict(services.secret_values(names))
    except Exception as exc:  # the store's failure: the run cannot send what it was written to send
        raise RunStopped(f"the flow's secrets could not be read ({type(exc).__name__}); try again", None) from exc
    missing = sorted(names - values.keys())
    if missing:
        raise RunStopped(f"no secret named {', '.join(map(repr, missing))} exists", None)
    return values


def _redacted(result: EngineResult, secrets: dict[str, str]) -> EngineResult:
    if not secrets:
        return result
    redactor = Redactor(secrets.values())
    logs = [
        EngineLog(log.timestamp, log.level, redactor.text(log.message), redactor.value(log.metadata))
        for log in result.logs
    ]
    return EngineResult(result.status, redactor.text(result.output), redactor.text(result.error), logs)


def _output_text(terminal_results: dict[str, list[Any]]) -> str | None:
    if not terminal_results:
        return None
    by_listener = {name: values[0] if len(values) == 1 else values for name, values in terminal_results.items()}
    value = next(iter(by_listener.values())) if len(by_listener) == 1 else by_listener
    # Every part was measured as a listener's result (sizes within the run's budget, numbers and text JSON can carry),
    # and the executor caps what it stores.
    return jsonvalues.compact(value)


def run_flow(
    organism_yaml: str,
    input_payload: str | None,
    *,
    execution_id: str,
    deadline: float,
    settings: EngineSettings | None = None,
    context: FlowContext = FlowContext(),
    services: RunServices = RunServices(),
) -> EngineResult:
    """Runs one execution of `organism_yaml`, a flow in `context`, until `deadline` (a time.monotonic() value) at the
    latest, or until `services` says it was cancelled, with `services` as its ports to the world beyond its
    messages. No secret value appears in the result (redaction.py)."""
    started = time.monotonic()
    try:
        organism = load_organism(organism_yaml, context)
    except OrganismError as exc:
        log = EngineLog(
            datetime.now(timezone.utc),
            "error",
            f"invalid organism: {exc.message}",
            {"executionId": execution_id, "listener": None, "issues": exc.details["issues"]},
        )
        return EngineResult("error", None, f"invalid organism: {exc.message}", [log])

    run = Run(organism, settings or get_engine_settings(), execution_id, deadline, services)
    run.log("info", f"execution started: flow '{organism.name}', entry '{organism.entry}'", None)
    status: RunStatus = "success"
    output = error = None
    try:
        run.secrets = _secret_values(organism, services)
        output = _output_text(run.deliver(_entry_message(input_payload)))
    except RunStopped as exc:
        status, error = exc.status, exc.message
        run.log("error", exc.message, exc.listener)
    except Exception as exc:  # an engine bug: still a result, never an exception for the executor
        status, error = "error", f"internal engine error: {type(exc).__name__}: {exc}"
        run.log("error", error, None)
    run.log(
        "info",
        f"execution finished: {status}",
        None,
        status=status,
        iterations=run.iterations,
        tokensUsed=run.tokens_used,
        durationMs=round((time.monotonic() - started) * 1000, 3),
    )
    return _redacted(EngineResult(status, output, error, run.logs, run.tokens_used), run.secrets)

