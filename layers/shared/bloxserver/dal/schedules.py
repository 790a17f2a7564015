"""EventBridge Scheduler schedules: one per schedule trigger, in the application's schedule group.

Every write sends the whole definition (UpdateSchedule replaces a schedule; it has no partial update). The three
writes differ in what they do to a missing schedule, which is what keeps schedules from outliving their triggers
(bloxserver/triggers.py): `update_schedule` never creates one (it reports it missing), `create_schedule` creates
(or, when it already exists, updates) and `delete_schedule` treats an absent schedule as deleted.
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


def update_schedule(definition: ScheduleDefinition) -> bool:
    """Make the existing schedule exactly `definition`; False (and nothing written) when it does not exist."""
    try:
        client().update_schedule(**_request(definition))
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        return False
    return True


def create_schedule(definition: ScheduleDefinition) -> None:
    """Create the schedule as `definition`; one that exists already (written concurrently) is updated to it."""
    request = _request(definition)
    try:
        client().create_schedule(**request)
        return
    except ClientError as exc:
        if error_code(exc) != "ConflictException":
            raise
    update_schedule(definition)  # deleted again meanwhile: then it is gone, as whoever deleted it meant


def delete_schedule(name: str) -> None:
    """Delete the schedule; one that does not exist is already deleted."""
    try:
        client().delete_schedule(Name=name, GroupName=get_settings().schedule_group_name)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise

