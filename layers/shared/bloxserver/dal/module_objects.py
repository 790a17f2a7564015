"""WASM module objects in ModuleBucket (S3): presigned POSTs for browser uploads, the uploaded bytes, and the
validated versions with their compiled artifacts. Object keys come from bloxserver.keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from bloxserver.dal import aws
from bloxserver.dal.table import error_code
from bloxserver.settings import get_settings

WASM_CONTENT_TYPE = "application/wasm"
MISSING = ("404", "NoSuchKey", "NotFound")


def _s3() -> Any:
    return aws.client("s3")


def _bucket() -> str:
    return get_settings().module_bucket_name


@dataclass(frozen=True)
class UploadedObject:
    size: int
    content_type: str | None


def presigned_upload(object_key: str, max_bytes: int, expires_seconds: int) -> tuple[str, dict[str, str]]:
    """(url, fields) of a presigned POST that may write `object_key` once, with 1..max_bytes bytes of
    application/wasm, for `expires_seconds`."""
    post = _s3().generate_presigned_post(
        Bucket=_bucket(),
        Key=object_key,
        Fields={"Content-Type": WASM_CONTENT_TYPE},
        Conditions=[{"Content-Type": WASM_CONTENT_TYPE}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=expires_seconds,
    )
    return post["url"], post["fields"]


def describe(object_key: str) -> UploadedObject | None:
    """Size and content type of an object; None when there is none."""
    try:
        head = _s3().head_object(Bucket=_bucket(), Key=object_key)
    except ClientError as exc:
        if error_code(exc) in MISSING or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    return UploadedObject(int(head["ContentLength"]), head.get("ContentType"))


def read(object_key: str, max_bytes: int | None = None) -> bytes | None:
    """An object's bytes (at most `max_bytes + 1` of them, so an oversized object shows without being read whole);
    None when there is none."""
    request: dict[str, Any] = {"Bucket": _bucket(), "Key": object_key}
    if max_bytes is not None:
        request["Range"] = f"bytes=0-{max_bytes}"
    try:
        response = _s3().get_object(**request)
    except ClientError as exc:
        if error_code(exc) in MISSING:
            return None
        if error_code(exc) == "InvalidRange":  # an empty object has no byte 0
            return b""
        raise
    return response["Body"].read()


def write(object_key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    _s3().put_object(Bucket=_bucket(), Key=object_key, Body=data, ContentType=content_type)


def copy(source_key: str, target_key: str) -> None:
    """A server-side copy within the bucket (the bytes never pass through the function)."""
    _s3().copy_object(Bucket=_bucket(), Key=target_key, CopySource={"Bucket": _bucket(), "Key": source_key})


def delete(object_key: str) -> None:
    _s3().delete_object(Bucket=_bucket(), Key=object_key)


def delete_prefix(prefix: str) -> None:
    """Delete every object whose key starts with `prefix`."""
    paginator = _s3().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=_bucket(), Prefix=prefix):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if objects:
            _s3().delete_objects(Bucket=_bucket(), Delete={"Objects": objects, "Quiet": True})
