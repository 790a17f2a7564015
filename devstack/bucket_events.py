"""The S3 event notifications of template.yaml (a function's `Type: S3` event), delivered locally.

moto in server mode does not invoke functions on object-created events, so a worker lists each notified bucket's
objects under the event's prefix filter every POLL_SECONDS and invokes the function once for each object it has
not seen with that ETag, with the event S3 sends. The bucket's objects there are few (module uploads are removed
once validated), so a listing stays small. Object-created only: the template subscribes to nothing else.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3

from devstack.gateway import LocalFunction
from devstack.resources import LOCAL_REGION
from devstack.template import FunctionSpec, functions, resources_of_type

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class BucketNotification:
    function: str
    bucket: str  # the bucket's logical id
    prefix: str


def bucket_notifications() -> list[BucketNotification]:
    """Every S3 event of every function in the template, with its key prefix filter ("" when none)."""
    found = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function").items():
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "S3":
                continue
            props = event["Properties"]
            rules = props.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            prefix = next((rule["Value"] for rule in rules if rule["Name"].lower() == "prefix"), "")
            found.append(BucketNotification(logical_id, props["Bucket"]["Ref"], prefix))
    return found


def object_created_event(bucket: str, item: dict[str, Any]) -> dict[str, Any]:
    """The notification S3 sends for one new object (keys URL-encoded, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": LOCAL_REGION,
                "eventTime": item["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(item["Key"], safe="/"), "size": item["Size"], "eTag": item["ETag"].strip('"')},
                },
            }
        ]
    }


def deliver_new_objects(s3: Any, bucket: str, prefix: str, function: LocalFunction, seen: dict[str, str]) -> int:
    """Invoke `function` for each object under `prefix` not in `seen` (key → ETag) yet; returns how many."""
    listed: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        listed.update((item["Key"], item) for item in page.get("Contents", []))
    for key in set(seen) - set(listed):
        del seen[key]
    delivered = 0
    for key, item in listed.items():
        if seen.get(key) == item["ETag"]:
            continue
        seen[key] = item["ETag"]
        try:
            function.invoke(object_created_event(bucket, item))
        except Exception:  # S3 retries asynchronous invocations; locally `complete` remains the way to retry
            pass
        delivered += 1
    return delivered


def poll_bucket(bucket: str, prefix: str, function: LocalFunction, endpoint_url: str | None):
    def run(stop: threading.Event) -> None:
        s3 = boto3.client("s3", endpoint_url=endpoint_url)
        seen: dict[str, str] = {}
        while not stop.wait(POLL_SECONDS):
            try:
                deliver_new_objects(s3, bucket, prefix, function, seen)
            except Exception:  # the embedded AWS stopping under us, or a transient error: keep polling
                time.sleep(POLL_SECONDS)

    return run


def start_workers(stack: Any, bucket_names: dict[str, str], specs: dict[str, FunctionSpec] | None = None) -> None:
    """Register, on a local stack, one poller per S3 event source. `bucket_names`: logical id → name."""
    specs = specs or functions()
    for notification in bucket_notifications():
        stack.add_worker(
            poll_bucket(
                bucket_names[notification.bucket],
                notification.prefix,
                LocalFunction(specs[notification.function]),
                stack.aws.endpoint_url,
            ),
            name=f"s3-{notification.function}",
        )
