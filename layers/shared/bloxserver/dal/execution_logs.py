"""Log records of executions, packed: an execution's records are stored in order as JSON in as few items as fit
(usually one), under the flow's log partition, written in batches. One attribute per item instead of one item
per record keeps the executor's writes to one BatchWriteItem per SQS batch. A long run stores its records in
several such writes as it goes; its items are numbered in emission order and never rewritten, so a reader's
position (item number, record within it) stays valid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bloxserver import keys
from bloxserver.dal.table import client, delete_prefixed, deserialize, serialize, table_name

BATCH_WRITE_LIMIT = 25
PAGES_PER_READ = 10  # a filtered read stops after this many 1 MB pages: bounded cost whatever the match rate
CHUNK_CHARS = 300_000  # records' JSON per item, within DynamoDB's 400 KB item limit
LAST_CHUNK = 99_999  # keys.log_chunk_sk's five digits


@dataclass(frozen=True)
class LogItems:
    """Records of one execution to store (timestamp, level, message, metadataJson each), in order, as its items
    numbered from `first_chunk` on, expiring with it."""

    flow_id: str
    execution_id: str
    records: list[dict[str, Any]]
    expires_at: int
    first_chunk: int = 0


def _chunks(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for record in records:
        record_size = len(json.dumps(record))
        if chunks[-1] and size + record_size > CHUNK_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += record_size
    return chunks


def put_records(flow_id: str, execution_id: str, records: list[dict[str, Any]], expires_at: int) -> None:
    """Store `records` (timestamp, level, message, metadataJson) in order, expiring with their execution."""
    put_many([LogItems(flow_id, execution_id, records, expires_at)])


def chunked(logs: LogItems) -> list[list[dict[str, Any]]]:
    """The records of `logs` as its items will hold them."""
    return _chunks(logs.records) if logs.records else []


def stored_items(logs: LogItems) -> list[dict[str, Any]]:
    """The items (serialized) that hold the records of `logs`."""
    return [
        serialize(
            {
                "PK": keys.flow_logs_pk(logs.flow_id),
                "SK": keys.log_chunk_sk(logs.execution_id, logs.first_chunk + index),
                "entity": "log",
                "executionId": logs.execution_id,
                "expiresAt": logs.expires_at,
                "levels": {record["level"] for record in chunk},
                "records": json.dumps(chunk),
            }
        )
        for index, chunk in enumerate(chunked(logs))
    ]


def put_many(logs: list[LogItems]) -> None:
    """Store the records of several executions, their items packed 25 to a BatchWriteItem whatever execution they
    belong to."""
    items = [{"PutRequest": {"Item": item}} for entry in logs for item in stored_items(entry)]
    for start in range(0, len(items), BATCH_WRITE_LIMIT):
        pending: dict[str, Any] = {table_name(): items[start : start + BATCH_WRITE_LIMIT]}
        while pending:
            response = client().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


@dataclass(frozen=True)
class Position:
    """A place in one execution's records: `offset` records into its item number `chunk`."""

    chunk: int = 0
    offset: int = 0


def _chunk_of(item: dict[str, Any]) -> int:
    return int(item["SK"].rpartition("#")[2])


def newest_records(
    flow_id: str, execution_id: str | None, levels: tuple[str, ...], limit: int, now_epoch: int
) -> tuple[list[dict[str, Any]], Position]:
    """Up to `limit` unexpired records of the flow (of one execution if given) with a level in `levels`, newest
    execution first and newest record first within it; and, for one execution, the position after its last
    record stored so far. A flow's read filters levels in DynamoDB (its items are many); an execution's items are
    few, and its newest one is needed for the position."""
    values: dict[str, Any] = {":pk": {"S": keys.flow_logs_pk(flow_id)}, ":now": {"N": str(now_epoch)}}
    condition = "PK = :pk"
    item_filter = "expiresAt > :now"
    if execution_id is not None:
        condition += " AND begins_with(SK, :prefix)"
        values[":prefix"] = {"S": keys.execution_logs_prefix(execution_id)}
    else:
        level_checks = []
        for index, level in enumerate(levels):
            values[f":level{index}"] = {"S": level}
            level_checks.append(f"contains(levels, :level{index})")
        item_filter += f" AND ({' OR '.join(level_checks)})"
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "KeyConditionExpression": condition,
        "FilterExpression": item_filter,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,  # every item that passes a flow's filter holds at least one wanted record
    }
    found: list[dict[str, Any]] = []
    end = Position()
    for _ in range(PAGES_PER_READ):
        response = client().query(**kwargs)
        for raw in response.get("Items", []):
            item = deserialize(raw)
            if end == Position():
                end = Position(_chunk_of(item) + 1)
            records = json.loads(item["records"])
            found.extend(record for record in reversed(records) if record["level"] in levels)
        if len(found) >= limit or "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found[:limit], end


def records_after(
    flow_id: str, execution_id: str, after: Position, levels: tuple[str, ...], limit: int, now_epoch: int
) -> tuple[list[dict[str, Any]], Position]:
    """Up to `limit` records of one execution stored after `after` with a level in `levels`, in emission order,
    and the position after the last record read (records of other levels are passed over, not read again). A
    strongly consistent read from `after`'s item on, at most PAGES_PER_READ pages."""
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "KeyConditionExpression": "PK = :pk AND SK BETWEEN :from AND :to",
        "FilterExpression": "expiresAt > :now",
        "ExpressionAttributeValues": {
            ":pk": {"S": keys.flow_logs_pk(flow_id)},
            ":from": {"S": keys.log_chunk_sk(execution_id, after.chunk)},
            ":to": {"S": keys.log_chunk_sk(execution_id, LAST_CHUNK)},
            ":now": {"N": str(now_epoch)},
        },
        "ConsistentRead": True,
        "Limit": limit,  # every item holds at least one record
    }
    found: list[dict[str, Any]] = []
    position = after
    for _ in range(PAGES_PER_READ):
        response = client().query(**kwargs)
        for raw in response.get("Items", []):
            item = deserialize(raw)
            chunk, records = _chunk_of(item), json.loads(item["records"])
            start = position.offset if chunk == position.chunk else 0
            for offset in range(start, len(records)):
                if len(found) == limit:
                    return found, Position(chunk, offset)
                if records[offset]["level"] in levels:
                    found.append(records[offset])
            position = Position(chunk + 1)
        if "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found, position


def append_records(flow_id: str, execution_id: str, records: list[dict[str, Any]], expires_at: int) -> None:
    """Store `records` after the ones an ended execution already has (as further numbered items), expiring with it."""
    _, end = newest_records(flow_id, execution_id, (), 1, 0)  # the position after its last item; no record wanted
    put_many([LogItems(flow_id, execution_id, records, expires_at, first_chunk=end.chunk)])


def delete_execution_records(flow_id: str, execution_id: str) -> None:
    """Every stored log item of one execution."""
    delete_prefixed(keys.flow_logs_pk(flow_id), keys.execution_logs_prefix(execution_id))
