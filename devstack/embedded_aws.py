"""AWS for the local stack: moto in server mode, in this process, on a free port of 127.0.0.1."""

from __future__ import annotations

import copy
import functools
import logging
import threading
import types
import urllib.request
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models import DynamoDBBackend, Table, dynamo_type
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api import recorder
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from devstack import persistence

# Environment that makes every boto3 client in this process talk to the embedded moto with fake credentials.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_dynamodb_lock = threading.Lock()


def serialize_dynamodb() -> None:
    """Run moto's DynamoDB requests one at a time, as DynamoDB's per-item atomicity requires.

    moto's server is threaded and its DynamoDB backend takes no lock: a conditional put checks the condition and
    then writes, so two concurrent requests can both pass the check (two "first" creates, a quota exceeded), and
    TransactWriteItems rolls back by restoring a deep copy of the table, wiping concurrent writes to other items.
    AWS makes each of these atomic. One lock around every DynamoDB action gives the same outcome; the local stack
    is small enough that the lost parallelism does not matter. Idempotent: the handler is wrapped once.
    """
    if getattr(DynamoHandler.call_action, "serialized_by_devstack", False):
        return
    unserialized = DynamoHandler.call_action

    @functools.wraps(unserialized)
    def call_action(self: DynamoHandler) -> Any:
        with _dynamodb_lock:
            response = unserialized(self)
            if recorder._user_enabled:  # a persistent local stack: recorded in the order applied
                persistence.record_dynamodb_request(self.normalized_request, self.raw_body)
            return response

    call_action.serialized_by_devstack = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _named_item(backend: DynamoDBBackend, action: dict[str, Any]) -> tuple[Table, DynamoType, DynamoType | None] | None:
    """The table and key a TransactWriteItems action names; None where moto will refuse the action anyway."""
    operation = next(iter(action.values()), {})
    table = backend.tables.get(operation.get("TableName"))
    if table is None:
        return None
    key = operation.get("Key") or operation.get("Item") or {}
    if table.hash_key_attr not in key or (table.range_key_attr and table.range_key_attr not in key):
        return None
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return table, DynamoType(key[table.hash_key_attr]), range_key


def _restore(table: Table, hash_key: DynamoType, range_key: DynamoType | None, saved: Any) -> None:
    items = table.items[hash_key] if range_key is not None else table.items
    index = range_key if range_key is not None else hash_key
    if saved is None:
        items.pop(index, None)
    else:
        items[index] = saved


def snapshot_transaction_rollback() -> None:
    """Roll a cancelled TransactWriteItems back by restoring the items it names, not deep copies of whole tables.

    moto deep-copies every table a transaction names, once per action, before running it, so its latency grows
    with everything the tables hold (about 40 ms for a webhook's start transaction in the benchmark, where
    DynamoDB answers in about 10). Saving just the named items keeps the all-or-nothing outcome at a cost independent of
    the table's size. Idempotent.
    """
    if getattr(DynamoDBBackend.transact_write_items, "patched_by_devstack", False):
        return
    # Tables pass through moto's deep copy unchanged, which makes its own rollback a no-op; items are still copied.
    dynamodb_models.copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )
    unpatched = DynamoDBBackend.transact_write_items

    @functools.wraps(unpatched)
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        named = [item for item in map(functools.partial(_named_item, self), transact_items) if item is not None]
        saved = [(table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)))
                 for table, hash_key, range_key in named]
        streamed = {id(table): (table, len(table.stream_shard.items)) for table, *_ in named if table.stream_shard}
        try:
            unpatched(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                _restore(table, hash_key, range_key, item)
            for table, records in streamed.values():
                del table.stream_shard.items[records:]
            raise

    transact_write_items.patched_by_devstack = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def size_replaced_attributes_once() -> None:
    """DynamoDB limits an item to 400 KB after an update; moto, replacing an attribute, counts its old value as well
    as its new one, so updating a large attribute of a large but valid item fails there (a 500 locally)."""
    limited = dynamo_type.LimitedSizeDict
    if getattr(limited.__setitem__, "patched_by_devstack", False):
        return
    set_counting_old_value = limited.__setitem__

    def __setitem__(self: dict[str, Any], key: str, value: Any) -> None:
        if key not in self:
            set_counting_old_value(self, key, value)
            return
        replaced = self[key]
        dict.__delitem__(self, key)  # moto then sizes the item without the value being replaced
        try:
            set_counting_old_value(self, key, value)
        except ItemSizeTooLarge:
            dict.__setitem__(self, key, replaced)
            raise

    __setitem__.patched_by_devstack = True  # type: ignore[attr-defined]
    limited.__setitem__ = __setitem__  # type: ignore[method-assign]


def drop_stream_records_before(table_name: str, sequence_number: int, account_id: str, region: str) -> int:
    """Forget a table's stream records before `sequence_number` (every reader is past them); returns how many.
    moto keeps a stream's records for ever (AWS, 24 hours), with both images of every write: a local stack that runs
    for days would hold every version of every item. Under the DynamoDB lock, so no write adds a record meanwhile."""
    from moto.dynamodb.models import dynamodb_backends

    with _dynamodb_lock:
        shard = dynamodb_backends[account_id][region].get_table(table_name).stream_shard
        count = min(sequence_number - shard.starting_sequence_number, len(shard.items))
        if count <= 0:
            return 0
        del shard.items[:count]
        shard.starting_sequence_number += count  # moto numbers records from it: later numbers stay as they were
        return count


def make_moto_dynamodb_faithful() -> None:
    """The corrections every emulator of this project applies to moto's DynamoDB (see each)."""
    serialize_dynamodb()
    snapshot_transaction_rollback()
    size_replaced_attributes_once()


class EmbeddedAws:
    def __init__(self) -> None:
        make_moto_dynamodb_faithful()
        # Werkzeug logs each of moto's requests at INFO; the gateway's own access log is the useful one.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")).close()

    def stop(self) -> None:
        self._server.stop()
