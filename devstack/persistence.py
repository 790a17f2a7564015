"""A local stack that keeps its data across restarts, with moto's own recorder (docs/local-data.md).

moto keeps its state in memory only; what it offers to bring a state back is its recorder: every request it serves
can be appended to a file (`MOTO_RECORDER_FILEPATH`) and replayed into a fresh server. The local stack records the
requests that change something the API shows, and replays them on start, after creating the template's resources:

* recorded: writes to DynamoDB (users, flows, triggers and their webhook tokens, executions, logs, secrets, memory),
  S3 (module uploads and artifacts) and the Scheduler (a flow's schedules), in the order DynamoDB applied them
  (DynamoDB's are recorded under the lock that makes moto's DynamoDB atomic, embedded_aws.serialize_dynamodb);
* not recorded: reads, KMS (its only writes are the template's own key, made again at each start) and SQS: a queue
  message is transient work, and an execution still queued when the stack stopped is queued again by the sweeper
  10 minutes after its start, as when a message is lost in AWS;
* moto makes a KMS key's material at random and cannot import it, so the material of the template's keys is kept
  beside the recording, and moto's random numbers are seeded before the resources are made, so the keys get the
  same ids again: secrets encrypted before a restart still decrypt.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from moto.moto_api import recorder

RECORDING_FILE = "moto-recording.jsonl"
KEY_MATERIAL_FILE = "kms-key-material.json"
COMPACTED_MARKER_FILE = "moto-recording.compacted"  # the recording's size when last compacted
# Any fixed number: the same seed before the same resource creation gives the same ids.
RANDOM_SEED = 18
BATCH_WRITE_LIMIT = 25

# Requests of these services are never recorded (see the module's docstring).
UNRECORDED_SERVICES = frozenset({"sqs", "kms", "dynamodb", "dynamodbstreams"})  # dynamodb: recorded under its lock
READ_ACTION_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "TransactGet")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_record_lock = threading.Lock()  # one writer at a time: a line of a large request is written in several parts


def _service(headers: Any) -> str | None:
    """The AWS service a signed request is for (its SigV4 credential scope); None when unsigned (a presigned POST
    carries its policy in the form instead)."""
    authorization = headers.get("Authorization") or ""
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[3] if len(scope) > 3 else None


def changes_state(method: str, headers: Any) -> bool:
    """Whether a request may change what the emulator holds: not a read by its method or its JSON action name."""
    if method.upper() in READ_METHODS:
        return False
    action = (headers.get("X-Amz-Target") or "").rpartition(".")[2]
    return not action.startswith(READ_ACTION_PREFIXES)


def _install_filter() -> None:
    """Make moto's recorder keep only the requests replay needs (idempotent)."""
    if getattr(recorder._record_request, "filtered_by_devstack", False):
        return
    record_everything = recorder._record_request

    @functools.wraps(record_everything)
    def record_changes(request: Any, body: bytes | None = None) -> None:
        if _service(request.headers) in UNRECORDED_SERVICES or not changes_state(request.method, request.headers):
            return
        with _record_lock:
            record_everything(request, body)

    record_changes.filtered_by_devstack = True  # type: ignore[attr-defined]
    record_changes.unfiltered = record_everything  # type: ignore[attr-defined]
    recorder._record_request = record_changes  # type: ignore[method-assign]


def record_dynamodb_request(request: Any, body: bytes) -> None:
    """Record one DynamoDB request that changes data; called with the DynamoDB lock held, so the recording's order
    is the order DynamoDB applied them in."""
    if changes_state(request.method, request.headers):
        with _record_lock:
            getattr(recorder._record_request, "unfiltered", recorder._record_request)(request, body)


class LocalData:
    """The folder a persistent local stack keeps its data in."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.recording = folder / RECORDING_FILE
        self.key_material = folder / KEY_MATERIAL_FILE
        self.compacted_marker = folder / COMPACTED_MARKER_FILE
        self._size_at_start = 0  # of the recording, once replayed

    def reset(self) -> None:
        """Forget everything kept: the next start is empty. Only the files this class writes are removed, whatever
        else the folder holds (DEV_DATA_DIR may name any folder)."""
        compacting = self.recording.with_name(f"{RECORDING_FILE}.compacting")
        for kept in (self.recording, self.key_material, self.compacted_marker, compacting):
            kept.unlink(missing_ok=True)

    def seed(self, endpoint_url: str) -> None:
        """Seed moto's random numbers (its public /moto-api/seed), before the template's resources are made."""
        request = urllib.request.Request(f"{endpoint_url}/moto-api/seed?a={RANDOM_SEED}", method="POST")
        urllib.request.urlopen(request).close()

    def keep_key_material(self, key_ids: dict[str, str]) -> None:
        """Give the template's KMS keys (logical id → key id) the material they had before, or keep theirs now."""
        from moto.kms.models import kms_backends

        from devstack.resources import LOCAL_ACCOUNT_ID, LOCAL_REGION

        keys = kms_backends[LOCAL_ACCOUNT_ID][LOCAL_REGION].keys
        kept = json.loads(self.key_material.read_text()) if self.key_material.exists() else {}
        for logical_id, key_id in key_ids.items():
            if logical_id in kept:
                keys[key_id].key_material = base64.b64decode(kept[logical_id])
            else:
                kept[logical_id] = base64.b64encode(keys[key_id].key_material).decode()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key_material.write_text(json.dumps(kept, indent=2))

    def replay_and_record(self, endpoint_url: str) -> int:
        """Replay what was recorded into the emulator at `endpoint_url`, then record from now on; returns how many
        requests were replayed."""
        _install_filter()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.recording.touch()
        recorder._location = str(self.recording)
        with self.recording.open() as lines:
            replayed = sum(1 for _ in lines)
        recorder.replay_recording(target_host=endpoint_url)
        self._size_at_start = self.recording.stat().st_size
        recorder.start_recording()
        return replayed

    def compact(self, endpoint_url: str, table_names: list[str]) -> None:
        """Make the recording as short as the data, once nothing else writes (a clean stop): its DynamoDB writes (each
        run's many updates of the same items) become one BatchWriteItem per 25 items the tables hold now, recorded
        by the recorder as they are written again; its other lines (S3 objects, schedules: few) stay as they were.
        A stack killed before this replays its whole recording at the next start, and compacts at its stop. Nothing
        to do when nothing was recorded since the start (a compacted recording stays as it is)."""
        size = self.recording.stat().st_size
        if size == self._size_at_start and self._compacted_size() == size:
            return
        other_services = [
            line for line in self.recording.read_text().splitlines(keepends=True)
            if _service(json.loads(line)["headers"]) != "dynamodb"
        ]
        compacted = self.recording.with_name(f"{RECORDING_FILE}.compacting")
        compacted.write_text("")
        recorder._location = str(compacted)
        recorder.start_recording()
        try:
            dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url)
            for table in table_names:
                for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                    items = page.get("Items", [])
                    for start in range(0, len(items), BATCH_WRITE_LIMIT):
                        pending = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]}
                        while pending:
                            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        finally:
            recorder.stop_recording()
        with compacted.open("a") as file:
            file.writelines(other_services)
        os.replace(compacted, self.recording)  # at once: a crash leaves the old recording or the new one
        recorder._location = str(self.recording)
        self.compacted_marker.write_text(str(self.recording.stat().st_size))

    def _compacted_size(self) -> int | None:
        """The size of the recording as the last compaction left it (None: never compacted)."""
        return int(self.compacted_marker.read_text()) if self.compacted_marker.exists() else None

    @staticmethod
    def stop_recording() -> None:
        recorder.stop_recording()
