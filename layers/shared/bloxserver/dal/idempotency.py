"""The Powertools idempotency store (the idempotency table), created on first use."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from bloxserver.settings import get_settings


@cache
def persistence_store() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table_name)
