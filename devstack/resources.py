"""Create the template's stateful resources in an AWS endpoint (moto, embedded or in server mode).

Tables are built from their `AWS::DynamoDB::Table` definitions in template.yaml, so tests and the local stack
cannot drift from what `sam deploy` creates.
"""

from __future__ import annotations

from typing import Any

import boto3

from devstack.template import resources_of_type

# The physical names the local stack and tests give the template's resources (env vars point functions at them).
PHYSICAL_NAMES = {
    "AppTable": "bloxserver-app",
    "IdempotencyTable": "bloxserver-idempotency",
}


def table_definitions() -> dict[str, dict[str, Any]]:
    return resources_of_type("AWS::DynamoDB::Table")


def create_tables(dynamodb: Any | None = None) -> dict[str, str]:
    """Create every table of the template; returns logical id → physical name."""
    dynamodb = dynamodb or boto3.client("dynamodb")
    created = {}
    for logical_id, resource in table_definitions().items():
        props = resource["Properties"]
        name = PHYSICAL_NAMES[logical_id]
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created[logical_id] = name
    return created


def create_all(endpoint_url: str | None = None) -> dict[str, str]:
    """Create every stateful resource of the template the local stack emulates.

    Returns logical id → what `Ref` gives for it in CloudFormation (a table's name), which is how the local
    stack resolves the template's environment variables. Add new resource types here.
    """
    return create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url))


def environment() -> dict[str, str]:
    """Environment variables that point the functions at the locally created resources."""
    return {
        "TABLE_NAME": PHYSICAL_NAMES["AppTable"],
        "IDEMPOTENCY_TABLE_NAME": PHYSICAL_NAMES["IdempotencyTable"],
    }
