"""The local stack's DynamoDB stream event sources (devstack/stream_events.py): the template's filters applied as
Lambda applies them, and records every reader has read forgotten by the embedded AWS."""

from __future__ import annotations

import boto3
import pytest

from devstack.embedded_aws import drop_stream_records_before
from devstack.resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, PHYSICAL_NAMES
from devstack.stream_events import StreamReader, matches, passes, stream_mappings


def record(event_name: str, sk: str, new_status: str | None, old_status: str | None = None) -> dict:
    images = {}
    if new_status is not None:
        images["NewImage"] = {"status": {"S": new_status}, "SK": {"S": sk}}
    if old_status is not None:
        images["OldImage"] = {"status": {"S": old_status}, "SK": {"S": sk}}
    return {"eventName": event_name, "dynamodb": {"Keys": {"PK": {"S": "FLOW#f"}, "SK": {"S": sk}}, **images}}


@pytest.fixture
def alerts_mapping():
    (mapping,) = [mapping for mapping in stream_mappings() if mapping.function == "AlertsFunction"]
    return mapping


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        (record("MODIFY", "EXEC#1", "error", "running"), True),
        (record("MODIFY", "EXEC#1", "timeout", "running"), True),
        (record("INSERT", "EXEC#1", "error"), True),  # recorded already ended
        (record("MODIFY", "EXEC#1", "success", "running"), False),
        (record("INSERT", "EXEC#1", "running"), False),
        (record("MODIFY", "EXEC#1", "error", "error"), False),  # an ended execution changed again (a retry's link)
        (record("MODIFY", "REASON#cancelled#T#manual#1", "error", "running"), False),
        (record("REMOVE", "EXEC#1", None, "error"), False),
    ],
)
def test_the_alerts_event_source_passes_only_executions_that_end_failing(alerts_mapping, given, passed):
    assert passes(alerts_mapping, given) is passed


def test_filter_rules_are_values_prefixes_and_existence_and_anything_else_is_refused():
    assert matches({"a": {"b": ["x", "y"]}}, {"a": {"b": "y"}})
    assert not matches({"a": {"b": ["x"]}}, {"a": {}})
    assert matches({"a": [{"prefix": "EX"}]}, {"a": "EXEC#1"})
    assert matches({"a": [{"exists": False}]}, {}) and not matches({"a": [{"exists": True}]}, {})
    with pytest.raises(ValueError, match="not emulated locally"):
        matches({"a": [{"numeric": [">", 1]}]}, {"a": 2})


def test_records_every_reader_has_read_are_dropped_and_later_ones_still_arrive(aws):
    table = PHYSICAL_NAMES["AppTable"]
    dynamodb = boto3.client("dynamodb")
    reader = StreamReader(table)
    for index in range(3):
        dynamodb.put_item(TableName=table, Item={"PK": {"S": "P"}, "SK": {"S": f"S{index}"}})
    assert [r["dynamodb"]["Keys"]["SK"]["S"] for r in reader.read()] == ["S0", "S1", "S2"]

    assert drop_stream_records_before(table, reader.next_sequence_number, LOCAL_ACCOUNT_ID, LOCAL_REGION) == 3
    dynamodb.put_item(TableName=table, Item={"PK": {"S": "P"}, "SK": {"S": "S3"}})
    assert [r["dynamodb"]["Keys"]["SK"]["S"] for r in reader.read()] == ["S3"]
    assert drop_stream_records_before(table, reader.next_sequence_number, LOCAL_ACCOUNT_ID, LOCAL_REGION) == 1
