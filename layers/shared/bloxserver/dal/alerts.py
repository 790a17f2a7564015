"""The once-a-minute limit of a flow's failure alerts: one small item in the flow's partition (deleted with it)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal.table import client, error_code, key, table_name


def claim_alert(flow_id: str, now_epoch: int, interval_seconds: int) -> int | None:
    """Take the flow's alert slot if its last alert went out at least `interval_seconds` ago: returns how many alerts
    were held back since (and resets that count). Otherwise counts this one as held back and returns None. One
    conditional write either way, so concurrent endings never both send within the interval."""
    item_key = key(keys.flow_pk(flow_id), keys.ALERT_STATE_SK)
    try:
        response = client().update_item(
            TableName=table_name(),
            Key=item_key,
            UpdateExpression="SET lastSentAt = :now, suppressed = :zero",
            ConditionExpression="attribute_not_exists(lastSentAt) OR lastSentAt <= :due",
            ExpressionAttributeValues={
                ":now": {"N": str(now_epoch)},
                ":zero": {"N": "0"},
                ":due": {"N": str(now_epoch - interval_seconds)},
            },
            ReturnValues="UPDATED_OLD",
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        client().update_item(
            TableName=table_name(),
            Key=item_key,
            UpdateExpression="ADD suppressed :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        return None
    return int(response.get("Attributes", {}).get("suppressed", {}).get("N", "0"))
