"""Log records of executions: one small item each under the flow's log partition, written in batches."""

from __future__ import annotations

from typing import Any

from bloxserver import keys
from bloxserver.dal.table import client, deserialize, serialize, table_name

BATCH_WRITE_LIMIT = 25
PAGES_PER_READ = 10  # a filtered read stops after this many 1 MB pages: bounded cost whatever the match rate


def put_records(flow_id: str, execution_id: str, records: list[dict[str, Any]], expires_at: int) -> None:
    """Store `records` (timestamp, level, message, metadataJson) in order, expiring with their execution."""
    put_many([(flow_id, execution_id, records, expires_at)])


def put_many(logs: list[tuple[str, str, list[dict[str, Any]], int]]) -> None:
    """Store the records of several executions (flowId, executionId, records, expiresAt each, as put_records),
    packed 25 to a BatchWriteItem whatever execution they belong to."""
    items = [
        {
            "PutRequest": {
                "Item": serialize(
                    {
                        "PK": keys.flow_logs_pk(flow_id),
                        "SK": keys.log_record_sk(execution_id, sequence),
                        "entity": "log",
                        "executionId": execution_id,
                        "expiresAt": expires_at,
                        **record,
                    }
                )
            }
        }
        for flow_id, execution_id, records, expires_at in logs
        for sequence, record in enumerate(records)
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
    placeholders = []
    for index, level in enumerate(levels):
        values[f":level{index}"] = {"S": level}
        placeholders.append(f":level{index}")
    kwargs: dict[str, Any] = {
        "TableName": table_name(),
        "KeyConditionExpression": condition,
        "FilterExpression": f"expiresAt > :now AND #level IN ({', '.join(placeholders)})",
        "ExpressionAttributeNames": {"#level": "level"},
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    found: list[dict[str, Any]] = []
    for _ in range(PAGES_PER_READ):
        response = client().query(**kwargs)
        found.extend(deserialize(item) for item in response.get("Items", []))
        if len(found) >= limit or "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found[:limit]
