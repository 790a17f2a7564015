"""EventBridge Scheduler schedules: one per schedule trigger, in the application's schedule group.

Every write sends the whole definition (UpdateSchedule replaces a schedule; it has no partial update), so
`put_schedule` both creates and repairs, and `delete_schedule` treats an absent schedule as deleted: callers
can repeat either after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bloxserver.dal import aws
from bloxserver.dal.table import error_code
from bloxserver.settings import get_settings

# Scheduler retries a failed invocation of the target; an hour-old run is no longer worth starting.
RETRY_POLICY = {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}


def client() -> Any:
    return aws.client("scheduler")


@dataclass(frozen=True)
class ScheduleDefinition:
    name: str
    description: str
    expression: str  # cron(...) in EventBridge Scheduler syntax
    timezone: str  # IANA
    input_json: str  # the target's event, with <aws.scheduler.*> placeholders
    enabled: bool


def _request(definition: ScheduleDefinition) -> dict[str, Any]:
    settings = get_settings()
    return {
        "Name": definition.name,
        "GroupName": settings.schedule_group_name,
        "Description": definition.description,
        "ScheduleExpression": definition.expression,
        "ScheduleExpressionTimezone": definition.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": settings.schedule_function_arn,
            "RoleArn": settings.scheduler_role_arn,
            "Input": definition.input_json,
            "RetryPolicy": RETRY_POLICY,
        },
        "State": "ENABLED" if definition.enabled else "DISABLED",
    }


def put_schedule(definition: ScheduleDefinition) -> None:
    """Make the schedule exactly `definition`, creating it if it does not exist."""
    request = _request(definition)
    try:
        client().update_schedule(**request)
        return
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    try:
        client().create_schedule(**request)
    except ClientError as exc:
        if error_code(exc) != "ConflictException":  # created concurrently: make it ours
            raise
        client().update_schedule(**request)


def delete_schedule(name: str) -> None:
    """Delete the schedule; one that does not exist is already deleted."""
    try:
        client().delete_schedule(Name=name, GroupName=get_settings().schedule_group_name)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise

