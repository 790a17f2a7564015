"""Log records of executions, packed: an execution's records are stored in order as JSON in as few items as fit
(usually one), under the flow's log partition, written in batches. One attribute per item instead of one item
per record keeps the executor's writes to one BatchWriteItem per SQS batch."""

from __future__ import annotations

import json
from typing import Any

from bloxserver import keys
from bloxserver.dal.table import client, deserialize, serialize, table_name

BATCH_WRITE_LIMIT = 25
PAGES_PER_READ = 10  # a filtered read stops after this many 1 MB pages: bounded cost whatever the match rate
CHUNK_CHARS = 300_000  # records' JSON per item, within DynamoDB's 400 KB item limit


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
    put_many([(flow_id, execution_id, records, expires_at)])


def put_many(logs: list[tuple[str, str, list[dict[str, Any]], int]]) -> None:
    """Store the records of several executions (flowId, executionId, records, expiresAt each, as put_records),
    their items packed 25 to a BatchWriteItem whatever execution they belong to."""
    items = [
        {
            "PutRequest": {
                "Item": serialize(
                    {
                        "PK": keys.flow_logs_pk(flow_id),
                        "SK": keys.log_chunk_sk(execution_id, chunk_index),
                        "entity": "log",
                        "executionId": execution_id,
                        "expiresAt": expires_at,
                        "levels": {record["level"] for record in chunk},
                        "records": json.dumps(chunk),
                    }
                )
            }
        }
        for flow_id, execution_id, records, expires_at in logs
        if records
        for chunk_index, chunk in enumerate(_chunks(records))
    ]
    for start in range(0, len(items), BATCH_WRITE_LIMIT):
        pending: dict[str, Any] = {table_name(): items[start : start + BATCH_WRITE_LIMIT]}
        while pending:
            response = client().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


def newest_records(
    flow_id: str, execution_id: str | None, levels: tuple[str, ...], limit: int, now_epoch: int
) -> list[dict[str, Any]]:
    """Up to `limit` unexpired records of the flow (of one execution if given) with a level in `levels`, newest
    execution first and newest record first within it."""
    values: dict[str, Any] = {":pk": {"S": keys.flow_logs_pk(flow_id)}, ":now": {"N": str(now_epoch)}}
    condition = "PK = :pk"
    if execution_id is not None:
        condition += " AND begins_with(SK, :prefix)"
        values[":prefix"] = {"S": keys.execution_logs_prefix(execution_id)}
    level_checks = []
    for index, level in enumerate(levels):
        values[f":level{index}"] = {"S": level}
        level_checks.append(f"contains(levels, :level{index})")
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "KeyConditionExpression": condition,
        "FilterExpression": f"expiresAt > :now AND ({' OR '.join(level_checks)})",
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,  # every item that passes the filter holds at least one wanted record
    }
    found: list[dict[str, Any]] = []
    for _ in range(PAGES_PER_READ):
        response = client().query(**kwargs)
        for item in response.get("Items", []):
            records = json.loads(deserialize(item)["records"])
            found.extend(record for record in reversed(records) if record["level"] in levels)
        if len(found) >= limit or "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found[:limit]
