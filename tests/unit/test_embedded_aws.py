"""The emulator's DynamoDB keeps DynamoDB's all-or-nothing transactions while rolling back only what they name."""

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
