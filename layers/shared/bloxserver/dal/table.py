"""The DynamoDB client and item (de)serialisation shared by every data-access module."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from bloxserver.dal import aws
from bloxserver.settings import get_settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

def client() -> Any:
    return aws.client("dynamodb")


def table_name() -> str:
    return get_settings().table_name


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """Plain dict → DynamoDB attribute values; None-valued attributes are left out."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def serialize_value(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_dynamo(value))


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def set_and_remove(fields: dict[str, Any], prefix: str) -> tuple[list[str], list[str], dict[str, str], dict[str, Any]]:
    """SET parts, REMOVE parts, names and values of an update writing `fields` (None removes the attribute), with
    placeholders #<prefix>N / :<prefix>N."""
    sets, removes, names, values = [], [], {}, {}
    for index, (field, value) in enumerate(fields.items()):
        names[f"#{prefix}{index}"] = field
        if value is None:
            removes.append(f"#{prefix}{index}")
        else:
            values[f":{prefix}{index}"] = value
            sets.append(f"#{prefix}{index} = :{prefix}{index}")
    return sets, removes, names, values


def update_expression(sets: list[str], removes: list[str]) -> str:
    parts = ["SET " + ", ".join(sets)] if sets else []
    return " ".join(parts + (["REMOVE " + ", ".join(removes)] if removes else []))


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-action reasons of a cancelled transaction ('None' for actions that did not fail)."""
    return [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]


def first_action_failed(exc: ClientError) -> bool:
    """A transaction cancelled because its first action's condition failed (by convention, the item the caller
    addresses: the flow, the trigger, the execution), as opposed to a conflict or another action's condition."""
    return error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[:1] == [
        "ConditionalCheckFailed"
    ]


def transact_write(items: list[dict[str, Any]], attempts: int = 5) -> None:
    """TransactWriteItems, retrying only cancellations caused by a concurrent transaction on the same items.

    Condition failures are not retried: they are answers (limit reached, wrong state), raised to the caller.
    """
    for attempt in range(attempts):
        try:
            client().transact_write_items(TransactItems=items)
            return
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            codes = cancellation_codes(exc)
            if "ConditionalCheckFailed" in codes or "TransactionConflict" not in codes or attempt == attempts - 1:
                raise


def get_item(item_key: dict[str, Any]) -> dict[str, Any] | None:
    """One item, strongly consistent (a write that just succeeded is always seen); None when absent."""
    item = client().get_item(TableName=table_name(), Key=item_key, ConsistentRead=True).get("Item")
    return deserialize(item) if item else None


# BatchGetItem's limit per request.
BATCH_GET_SIZE = 100


def batch_get(
    item_keys: list[dict[str, Any]], consistent: bool = False, projection: str | None = None,
    names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The items found among `item_keys` (absent ones left out), 100 keys a BatchGetItem, retrying what DynamoDB
    leaves unprocessed; `projection` (with its attribute `names`) limits the attributes returned."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(item_keys), BATCH_GET_SIZE):
        request: dict[str, Any] = {"Keys": item_keys[start : start + BATCH_GET_SIZE], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {table_name(): request}
        while pending:
            response = client().batch_get_item(RequestItems=pending)
            found.extend(deserialize(raw) for raw in response.get("Responses", {}).get(table_name(), []))
            pending = response.get("UnprocessedKeys") or {}
    return found


def query_items(request: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """The items of a Query, following its pages until done or until `limit` items were found."""
    request = {"TableName": table_name(), **request}
    found: list[dict[str, Any]] = []
    while limit is None or len(found) < limit:
        if limit is not None:
            request["Limit"] = limit - len(found)
        response = client().query(**request)
        found.extend(deserialize(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found if limit is None else found[:limit]


def partition_keys(pk: str) -> list[dict[str, Any]]:
    """The keys (as DynamoDB attribute values) of every item in one partition."""
    items = query_items(
        {
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "PK, SK",
            "ConsistentRead": True,
        }
    )
    return [key(item["PK"], item["SK"]) for item in items]


def delete_prefixed(pk: str, sk_prefix: str) -> None:
    """Delete every item of partition `pk` whose SK begins with `sk_prefix`."""
    items = query_items(
        {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
            "ProjectionExpression": "PK, SK",
            "ConsistentRead": True,
        }
    )
    delete_items([key(item["PK"], item["SK"]) for item in items])


def delete_items(item_keys: list[dict[str, Any]]) -> None:
    """Delete by key in batches of 25, retrying what DynamoDB leaves unprocessed."""
    for start in range(0, len(item_keys), 25):
        pending = {table_name(): [{"DeleteRequest": {"Key": k}} for k in item_keys[start : start + 25]]}
        while pending:
            response = client().batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


def uncount_action(counter_key: dict[str, Any], counter: str) -> dict[str, Any]:
    """The transaction action that takes 1 off `counter` on `counter_key`'s item, kept above 0 (with the deletion of
    what it counted)."""
    return {
        "Update": {
            "TableName": table_name(),
            "Key": counter_key,
            "UpdateExpression": "ADD #counter :minusOne",
            "ConditionExpression": "#counter > :zero",
            "ExpressionAttributeNames": {"#counter": counter},
            "ExpressionAttributeValues": {":minusOne": {"N": "-1"}, ":zero": {"N": "0"}},
        }
    }


def delete_counted(item_key: dict[str, Any], counter_key: dict[str, Any], counter: str) -> bool:
    """Delete an item and take 1 off its owner's `counter` (on `counter_key`'s item, kept above 0), in one
    transaction; False when there was no such item."""
    try:
        transact_write(
            [
                {"Delete": {"TableName": table_name(), "Key": item_key, "ConditionExpression": "attribute_exists(PK)"}},
                uncount_action(counter_key, counter),
            ]
        )
    except ClientError as exc:
        if first_action_failed(exc):
            return False
        raise
    return True
