"""Users' secrets: one item per secret in its owner's partition (SK SECRET#<name>), its value encrypted by KMS.

Each value is encrypted directly with KMS Encrypt under the template's SecretsKey (values are at most 4 KiB, KMS's
plaintext limit), with the owner and the name as encryption context: a ciphertext copied to another user's or
another name's item does not decrypt. Plain text never reaches DynamoDB, and reads that list secrets never ask KMS.
The owner's count is kept on a counter item, in the same transaction as each insert and delete.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from bloxserver import keys
from bloxserver.dal import aws
from bloxserver.dal.table import (
    cancellation_codes,
    client,
    delete_counted,
    deserialize,
    error_code,
    key,
    query_items,
    serialize,
    table_name,
    transact_write,
)
from bloxserver.settings import get_settings

BATCH_GET_LIMIT = 100
SUMMARY_FIELDS = ("name", "hint", "createdAt", "updatedAt")
# An insert that races a delete of the same name is tried again this many times.
PUT_ATTEMPTS = 3


class SecretLimitFull(Exception):
    """The owner already has as many secrets as the tier allows."""


def _secret_key(user_id: UUID | str, name: str) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.secret_sk(name))


def _count_key(user_id: UUID | str) -> dict[str, Any]:
    return key(keys.user_pk(user_id), keys.SECRET_COUNT_SK)


def _encryption_context(user_id: UUID | str, name: str) -> dict[str, str]:
    return {"userId": str(user_id), "secretName": name}


def _kms() -> Any:
    return aws.client("kms")


def put_secret(user_id: UUID, name: str, value: str, hint: str, now: str, limit: int) -> dict[str, Any]:
    """Store `value` under `name` (created, or replaced keeping its createdAt); returns the stored summary.

    Raises SecretLimitFull when `name` is new and the owner already has `limit` secrets."""
    ciphertext = _kms().encrypt(
        KeyId=get_settings().secrets_key_id,
        Plaintext=value.encode(),
        EncryptionContext=_encryption_context(user_id, name),
    )["CiphertextBlob"]
    item = {
        **_secret_key(user_id, name),
        **serialize({"entity": "secret", "name": name, "hint": hint, "createdAt": now, "updatedAt": now}),
        "ciphertext": {"B": ciphertext},
    }
    for _ in range(PUT_ATTEMPTS):
        try:
            transact_write(
                [
                    {
                        "Put": {
                            "TableName": table_name(),
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": table_name(),
                            "Key": _count_key(user_id),
                            "UpdateExpression": "ADD #count :one",
                            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                            "ExpressionAttributeNames": {"#count": "count"},
                            "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
                        }
                    },
                ]
            )
            return {field: item_value for field, item_value in deserialize(item).items() if field in SUMMARY_FIELDS}
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            codes = cancellation_codes(exc)
            if codes[0] != "ConditionalCheckFailed":
                if codes[1] == "ConditionalCheckFailed":
                    raise SecretLimitFull() from exc
                raise
        replaced = _replace(user_id, name, ciphertext, hint, now)
        if replaced is not None:
            return replaced
    raise RuntimeError(f"secret {name!r} kept being created and deleted concurrently")


def _replace(user_id: UUID, name: str, ciphertext: bytes, hint: str, now: str) -> dict[str, Any] | None:
    """Replace an existing secret's value; None when it was deleted meanwhile."""
    try:
        response = client().update_item(
            TableName=table_name(),
            Key=_secret_key(user_id, name),
            UpdateExpression="SET ciphertext = :ciphertext, hint = :hint, updatedAt = :now",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={":ciphertext": {"B": ciphertext}, ":hint": {"S": hint}, ":now": {"S": now}},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    stored = deserialize(response["Attributes"])
    return {field: stored[field] for field in SUMMARY_FIELDS}


def list_secrets(user_id: UUID) -> list[dict[str, Any]]:
    """Every secret's summary (name, hint, times), in name order; never a value."""
    return query_items(
        {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": keys.user_pk(user_id)},
                ":prefix": {"S": keys.SECRET_SK_PREFIX},
            },
            "ProjectionExpression": "#name, hint, createdAt, updatedAt",
            "ExpressionAttributeNames": {"#name": "name"},
            "ConsistentRead": True,
        }
    )


def secret_names(user_id: UUID | str) -> frozenset[str]:
    """The names of the owner's secrets (what validation checks references against)."""
    return frozenset(summary["name"] for summary in list_secrets(user_id))


def delete_secret(user_id: UUID, name: str) -> bool:
    """Delete the secret and uncount it; False when there was none."""
    return delete_counted(_secret_key(user_id, name), _count_key(user_id), "count")


def get_secret_values(user_id: UUID | str, names: frozenset[str]) -> dict[str, str]:
    """The decrypted values of the owner's secrets named (one BatchGetItem, one KMS Decrypt per secret); names
    the owner has no secret for are absent."""
    wanted = [_secret_key(user_id, name) for name in sorted(names)]
    found: list[dict[str, Any]] = []
    while wanted:
        chunk, wanted = wanted[:BATCH_GET_LIMIT], wanted[BATCH_GET_LIMIT:]
        request: dict[str, Any] = {
            table_name(): {
                "Keys": chunk,
                "ConsistentRead": True,
                "ProjectionExpression": "#name, ciphertext",
                "ExpressionAttributeNames": {"#name": "name"},
            }
        }
        while request:
            response = client().batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(table_name(), []))
            request = response.get("UnprocessedKeys") or {}
    values = {}
    for raw in found:
        name = raw["name"]["S"]
        plaintext = _kms().decrypt(
            CiphertextBlob=raw["ciphertext"]["B"], EncryptionContext=_encryption_context(user_id, name)
        )["Plaintext"]
        values[name] = plaintext.decode()
    return values
