"""The engine's values: a loaded organism, validation issues, log records and the result of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from bloxserver.errors import InvalidFlow

if TYPE_CHECKING:
    from bloxserver.engine.base import Handler

Severity = Literal["error", "warning", "info"]
LogLevel = Literal["debug", "info", "warning", "error"]
RunStatus = Literal["success", "error", "timeout"]


@dataclass(frozen=True)
class ValidationIssue:
    code: str
    message: str
    listener: str | None = None
    severity: Severity = "error"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "listener": self.listener, "severity": self.severity}


class OrganismError(InvalidFlow):
    """The organism YAML has errors; `issues` lists every finding (errors, warnings and infos)."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        errors = [issue for issue in issues if issue.severity == "error"]
        summary = errors[0].message if errors else "invalid organism"
        if len(errors) > 1:
            summary += f" (and {len(errors) - 1} more)"
        super().__init__(summary, {"issues": [issue.as_dict() for issue in issues]})
        self.issues = issues


@dataclass(frozen=True)
class LlmChoice:
    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ListenerSpec:
    name: str
    description: str
    handler_name: str
    config: dict[str, Any]
    peers: tuple[str, ...]
    agent: bool = False
    prompt: str = ""
    next: tuple[str, ...] = ()
    timeout_seconds: float = 30.0
    llm: LlmChoice = LlmChoice()

    @property
    def onward(self) -> tuple[str, ...]:
        """Where this listener's result goes: an agent's `next`, anyone else's peers (an agent's peers are tools)."""
        return self.next if self.agent else self.peers


@dataclass(frozen=True)
class Listener:
    spec: ListenerSpec
    handler: Handler

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_terminal(self) -> bool:
        return not self.spec.onward


@dataclass(frozen=True)
class Organism:
    name: str
    entry: str
    listeners: dict[str, Listener]
    max_iterations: int = 100
    timeout_seconds: float = 300.0
    max_tokens_per_thread: int = 100_000
    log_payloads: bool = False
    llm: LlmChoice = LlmChoice()
    issues: tuple[ValidationIssue, ...] = ()
    # Every secret('NAME') its listeners reference: a run is given these values when it starts.
    secret_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EngineLog:
    timestamp: datetime
    level: LogLevel
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineResult:
    status: RunStatus
    output: str | None
    error: str | None
    logs: list[EngineLog]
    tokens_used: int = 0  # LLM tokens the run's agents used (input and output)
