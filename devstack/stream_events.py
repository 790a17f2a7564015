"""The DynamoDB stream event sources of template.yaml (a function's `Type: DynamoDB` event), delivered locally.

moto records a table's stream (GetRecords works) but invokes no function on it. A worker per event reads the
stream from where it stood when the worker started (the template's StartingPosition is LATEST), keeps the records
that pass the event's FilterCriteria (Lambda's filter rules, for the operators the template uses), and invokes
the function with them in batches of BatchSize, as Lambda's event source mapping does. An invocation that fails is
logged and not retried (Lambda would retry it MaximumRetryAttempts times). Records every reader of a table has read
are then dropped from moto's memory (moto keeps them for ever).
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.embedded_aws import drop_stream_records_before
from devstack.gateway import LocalFunction
from devstack.resources import LOCAL_ACCOUNT_ID, LOCAL_REGION, PHYSICAL_NAMES
from devstack.template import FunctionSpec, functions, resources_of_type

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class StreamMapping:
    function: str
    table: str  # the table's logical id
    batch_size: int
    starting_position: str
    filters: tuple[dict[str, Any], ...]  # FilterCriteria patterns; a record passes if any matches (none: all pass)


def stream_mappings() -> list[StreamMapping]:
    """Every DynamoDB stream event of every function in the template."""
    mappings = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "DynamoDB":
                continue
            props = event["Properties"]
            stream = props["Stream"]["Fn::GetAtt"]
            table = stream[0] if isinstance(stream, list) else stream.split(".")[0]
            patterns = tuple(
                json.loads(entry["Pattern"]) for entry in props.get("FilterCriteria", {}).get("Filters", [])
            )
            mappings.append(
                StreamMapping(logical_id, table, int(props.get("BatchSize", 100)), props["StartingPosition"], patterns)
            )
    return mappings


def _value_matches(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        if set(rule) == {"prefix"}:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if set(rule) == {"exists"}:
            return (value is not None) == rule["exists"]
        raise ValueError(f"filter operator {sorted(rule)} is not emulated locally: add it to devstack/stream_events.py")
    return value == rule


def matches(pattern: dict[str, Any], record: dict[str, Any] | None) -> bool:
    """Lambda's event filtering: every key of the pattern must match; an object recurses, a list matches when one
    of its rules does (a value, {"prefix": ...} or {"exists": ...})."""
    for name, rule in pattern.items():
        value = record.get(name) if isinstance(record, dict) else None
        if isinstance(rule, dict):
            if not matches(rule, value):
                return False
        elif not any(_value_matches(entry, value) for entry in rule):
            return False
    return True


def passes(mapping: StreamMapping, record: dict[str, Any]) -> bool:
    return not mapping.filters or any(matches(pattern, record) for pattern in mapping.filters)


class StreamReader:
    """Reads a table's stream from where it stands when created, shard by shard (moto keeps one per table)."""

    def __init__(self, table_name: str, endpoint_url: str | None = None) -> None:
        self._streams = boto3.client("dynamodbstreams", endpoint_url=endpoint_url, region_name=LOCAL_REGION)
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=LOCAL_REGION)
        self.stream_arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self._iterators: dict[str, str] = {}
        self.next_sequence_number = 0  # after the last record read (0: none read yet)
        self._discover("LATEST")

    def _discover(self, position: str) -> None:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType=position
                )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """The records written since the last read, as Lambda passes them (with eventSourceARN)."""
        self._discover("TRIM_HORIZON")  # a shard that appeared since is read from its start
        records = []
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator)
            records.extend({**record, "eventSourceARN": self.stream_arn} for record in response.get("Records", []))
            self._iterators[shard_id] = response.get("NextShardIterator") or iterator
        if records:
            self.next_sequence_number = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1
        return records


def deliver(mapping: StreamMapping, records: list[dict[str, Any]], function: LocalFunction) -> int:
    """Invoke `function` with the records that pass the mapping's filters, BatchSize at a time; returns how many."""
    kept = [record for record in records if passes(mapping, record)]
    for start in range(0, len(kept), mapping.batch_size):
        try:
            function.invoke({"Records": kept[start : start + mapping.batch_size]})
        except Exception:
            print(f"{mapping.function}: stream batch failed:\n{traceback.format_exc()}", file=sys.stderr)
    return len(kept)


def poll_stream(
    mapping: StreamMapping, function: LocalFunction, reader: StreamReader, readers_of_table: list[StreamReader]
):
    table = PHYSICAL_NAMES[mapping.table]

    def run(stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                deliver(mapping, reader.read(), function)
                # The embedded AWS runs in this process: what every reader of the table has read is forgotten.
                oldest = min(other.next_sequence_number for other in readers_of_table)
                drop_stream_records_before(table, oldest, LOCAL_ACCOUNT_ID, LOCAL_REGION)
            except Exception:  # the embedded AWS stopping under us, or a transient error: keep polling
                stop.wait(POLL_SECONDS)

    return run


def start_workers(stack: Any, specs: dict[str, FunctionSpec] | None = None) -> None:
    """Register, on a local stack, one stream reader per DynamoDB stream event source (from now: LATEST)."""
    specs = specs or functions()
    readers: dict[str, list[StreamReader]] = {}
    mappings = []
    for mapping in stream_mappings():
        if mapping.starting_position != "LATEST":
            raise ValueError(f"{mapping.function}: only StartingPosition LATEST is emulated locally")
        reader = StreamReader(PHYSICAL_NAMES[mapping.table], stack.aws.endpoint_url)
        readers.setdefault(mapping.table, []).append(reader)
        mappings.append((mapping, reader))
    for mapping, reader in mappings:
        stack.add_worker(
            poll_stream(mapping, LocalFunction(specs[mapping.function]), reader, readers[mapping.table]),
            name=f"stream-{mapping.function}",
        )
