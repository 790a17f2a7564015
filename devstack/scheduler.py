"""EventBridge Scheduler, run locally: fires the schedules that schedule triggers create in the embedded AWS.

moto stores schedules but never fires them. This worker polls the application's schedule group every few seconds,
works out when each ENABLED schedule next runs by evaluating its `cron(...)` expression in its time zone with
bloxserver.cron (the same evaluator, with the Scheduler's DST rules, that previews `nextRunTimes`), and at that
time invokes the schedule's target function with the schedule's Input, placeholders substituted as the Scheduler
does. Like the Scheduler, it does not catch up: a time missed while the worker was not running (the dev server
down, the schedule disabled) is skipped, and the schedule next fires at its first time after it was seen again.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from bloxserver.clock import utc_now
from bloxserver.cron import CronError, next_aws_fire_time

POLL_SECONDS = 2.0

Invoke = Callable[[str, dict[str, Any]], Any]  # (target function ARN, event) → the function's result


@dataclass(frozen=True)
class _Timing:
    """What decides a schedule's fire times; a change of any of these restarts its timing from now."""

    expression: str
    timezone: str


def scheduler_time(moment: datetime) -> str:
    """<aws.scheduler.scheduled-time> as the Scheduler fills it in: ISO 8601 UTC to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def target_event(schedule: dict[str, Any], scheduled_time: datetime, execution_id: str) -> dict[str, Any]:
    """The schedule's Input with the Scheduler's context attributes substituted, as the target receives it."""
    text = schedule["Target"].get("Input") or "{}"
    for placeholder, value in {
        "<aws.scheduler.schedule-arn>": schedule["Arn"],
        "<aws.scheduler.scheduled-time>": scheduler_time(scheduled_time),
        "<aws.scheduler.execution-id>": execution_id,
        "<aws.scheduler.attempt-number>": "1",
    }.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


class LocalScheduler:
    """Fires due schedules on each `tick()`; `run(stop)` ticks every POLL_SECONDS until `stop` is set.

    `clock` is injectable so tests can move time instead of waiting for it.
    """

    def __init__(
        self,
        group_name: str,
        invoke: Invoke,
        scheduler: Any | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.group_name = group_name
        self.invoke = invoke
        self.clock = clock
        self._scheduler = scheduler
        self._next: dict[str, tuple[_Timing, datetime | None]] = {}  # enabled schedule name → timing, next run

    @property
    def scheduler(self) -> Any:
        if self._scheduler is None:
            self._scheduler = boto3.client("scheduler")  # AWS_ENDPOINT_URL points it at the embedded AWS
        return self._scheduler

    def _enabled_schedules(self) -> list[dict[str, Any]]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"GroupName": self.group_name, "State": "ENABLED"}
        while True:
            page = self.scheduler.list_schedules(**kwargs)
            names.extend(summary["Name"] for summary in page.get("Schedules", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        found = []
        for name in names:  # the summaries carry no expression, time zone or input
            try:
                found.append(self.scheduler.get_schedule(Name=name, GroupName=self.group_name))
            except self.scheduler.exceptions.ResourceNotFoundException:
                continue  # deleted since it was listed
        return [schedule for schedule in found if schedule.get("State") == "ENABLED"]

    def tick(self) -> list[dict[str, Any]]:
        """Fire every enabled schedule whose next time has come; returns the events sent, in firing order."""
        now = self.clock()
        sent = []
        seen = set()
        for schedule in self._enabled_schedules():
            name = schedule["Name"]
            seen.add(name)
            timing = _Timing(schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC")
            known = self._next.get(name)
            if known is None or known[0] != timing:
                self._next[name] = (timing, self._next_time(timing, after=now))
                continue
            due = known[1]
            if due is None or due > now:
                continue
            event = target_event(schedule, due, str(uuid.uuid4()))
            try:
                self.invoke(schedule["Target"]["Arn"], event)
            except Exception:  # the Scheduler invokes asynchronously: a failing target does not stop the clock
                print(f"schedule {name}: target failed:\n{traceback.format_exc()}", file=sys.stderr)
            sent.append(event)
            self._next[name] = (timing, self._next_time(timing, after=max(now, due)))
        for name in set(self._next) - seen:  # disabled or deleted: timing restarts if it is enabled again
            del self._next[name]
        return sent

    @staticmethod
    def _next_time(timing: _Timing, after: datetime) -> datetime | None:
        try:
            return next_aws_fire_time(timing.expression, timing.timezone, after)
        except CronError:  # an expression the Scheduler would have refused: it never fires
            return None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the embedded AWS stopping under us, or a transient error: keep polling
                pass
            stop.wait(POLL_SECONDS)


def start_worker(stack: Any, group_name: str) -> LocalScheduler:
    """Register the local scheduler on a local stack; targets are the template's functions, by ARN."""
    from devstack.gateway import LocalFunction
    from devstack.resources import function_arn
    from devstack.template import functions

    targets = {function_arn(logical_id): LocalFunction(spec) for logical_id, spec in functions().items()}

    def invoke(arn: str, event: dict[str, Any]) -> Any:
        return targets[arn].invoke(event)

    local_scheduler = LocalScheduler(group_name, invoke)
    stack.add_worker(local_scheduler.run, name="scheduler")
    return local_scheduler
