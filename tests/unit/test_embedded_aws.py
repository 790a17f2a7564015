"""The emulator's DynamoDB keeps DynamoDB's all-or-nothing transactions while rolling back only what they name, and
sizes an updated item as DynamoDB does."""

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.resources import environment


@pytest.fixture
def dynamodb(aws):
    return boto3.client("dynamodb"), environment()["TABLE_NAME"]


def _put(client, table, sk, **attributes):
    item = {"PK": {"S": "P"}, "SK": {"S": sk}, **{name: {"N": str(value)} for name, value in attributes.items()}}
    client.put_item(TableName=table, Item=item)


def _items(client, table):
    response = client.query(
        TableName=table, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "P"}}
    )
    return {item["SK"]["S"]: item.get("n", {}).get("N") for item in response["Items"]}


def test_given_a_transaction_whose_last_condition_fails_then_its_updates_puts_and_deletes_are_undone(dynamodb):
    client, table = dynamodb
    _put(client, table, "updated", n=1)
    _put(client, table, "deleted", n=2)
    _put(client, table, "bystander", n=3)
    key = lambda sk: {"PK": {"S": "P"}, "SK": {"S": sk}}  # noqa: E731

    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": key("updated"), "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Delete": {"TableName": table, "Key": key("deleted")}},
            {"Put": {"TableName": table, "Item": {**key("created"), "n": {"N": "9"}}}},
            {"ConditionCheck": {"TableName": table, "Key": key("bystander"), "ConditionExpression": "n = :zero",
                                "ExpressionAttributeValues": {":zero": {"N": "0"}}}},
        ])

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _items(client, table) == {"updated": "1", "deleted": "2", "bystander": "3"}


def test_given_a_transaction_that_commits_then_every_write_stays(dynamodb):
    client, table = dynamodb
    _put(client, table, "updated", n=1)
    key = {"PK": {"S": "P"}, "SK": {"S": "updated"}}

    client.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": table, "Item": {"PK": {"S": "P"}, "SK": {"S": "created"}, "n": {"N": "9"}}}},
    ])

    assert _items(client, table) == {"updated": "2", "created": "9"}


def _big(client, table):
    item = client.get_item(TableName=table, Key={"PK": {"S": "P"}, "SK": {"S": "big"}})["Item"]
    return item["text"]["S"], item["other"]["S"]


def test_given_a_large_item_when_a_large_attribute_is_replaced_by_one_of_its_size_then_the_update_succeeds(dynamodb):
    client, table = dynamodb
    item = {"PK": {"S": "P"}, "SK": {"S": "big"}, "text": {"S": "a" * 140_000}, "other": {"S": "o" * 130_000}}
    client.put_item(TableName=table, Item=item)

    client.update_item(
        TableName=table, Key={"PK": {"S": "P"}, "SK": {"S": "big"}}, UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "text"}, ExpressionAttributeValues={":t": {"S": "b" * 140_000}},
    )

    assert _big(client, table) == ("b" * 140_000, "o" * 130_000)


def test_given_an_update_past_400_kb_then_it_fails_and_the_item_keeps_its_value(dynamodb):
    client, table = dynamodb
    item = {"PK": {"S": "P"}, "SK": {"S": "big"}, "text": {"S": "a" * 140_000}, "other": {"S": "o" * 130_000}}
    client.put_item(TableName=table, Item=item)

    with pytest.raises(ClientError) as refused:
        client.update_item(
            TableName=table, Key={"PK": {"S": "P"}, "SK": {"S": "big"}}, UpdateExpression="SET #t = :t",
            ExpressionAttributeNames={"#t": "text"}, ExpressionAttributeValues={":t": {"S": "b" * 300_000}},
        )

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert _big(client, table) == ("a" * 140_000, "o" * 130_000)
