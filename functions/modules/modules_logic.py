"""WASM module rules: ownership, the tier's module limit, presigned uploads, validation of what was uploaded, and
deletion only while no running flow uses the module (docs/wasm.md)."""

from __future__ import annotations

import hashlib
import operator
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from bloxserver import clock, keys
from bloxserver.auth import Principal
from bloxserver.contract import (
    CreateWasmModuleRequest,
    PaginatedResponse,
    Tier,
    UpdateWasmModuleRequest,
    WasmModule,
    WasmModuleStatus,
    WasmModuleSummary,
    WasmUpload,
)
from bloxserver.dal import module_objects
from bloxserver.dal import modules as module_store
from bloxserver.dal import users as user_store
from bloxserver.errors import InvalidState, NotFound, ValidationFailed
from bloxserver.limits import MAX_WASM_MODULE_BYTES, limit_reached, limits_by_tier
from bloxserver.observability import logger
from bloxserver.pagination import PageRequest, counted_page
from bloxserver.wasm_modules import flows_running_with, store_version

MODULE_LIMIT = operator.attrgetter("wasm_modules")
UPLOAD_EXPIRES_SECONDS = 15 * 60
# A WIT text describes a few interfaces; this keeps a module item far below DynamoDB's 400 KB.
MAX_WIT_INTERFACE_CHARS = 64 * 1024
# Attributes describing the bytes validated, cleared while a new upload is pending.
VALIDATION_FIELDS = {"status": WasmModuleStatus.PENDING.value, "error": None, "sha256": None, "exports": [],
                     "imports": [], "sizeBytes": 0}


def module_not_found() -> NotFound:
    """Absent and someone else's are the same answer."""
    return NotFound("WASM module not found")


def _check_wit_interface(wit_interface: str | None) -> None:
    if wit_interface is not None and len(wit_interface) > MAX_WIT_INTERFACE_CHARS:
        raise ValidationFailed(
            "witInterface is too long", {"body.witInterface": f"at most {MAX_WIT_INTERFACE_CHARS} characters"}
        )


def _upload(user_id: UUID | str, module_id: UUID | str, upload_id: str) -> WasmUpload:
    url, fields = module_objects.presigned_upload(
        keys.module_upload_key(user_id, module_id, upload_id), MAX_WASM_MODULE_BYTES, UPLOAD_EXPIRES_SECONDS
    )
    expires_at = clock.iso(clock.utc_now() + timedelta(seconds=UPLOAD_EXPIRES_SECONDS))
    return WasmUpload(url=url, fields=fields, expires_at=expires_at)


def _owned(user_id: UUID, module_id: UUID) -> dict[str, Any]:
    item = module_store.get_module(user_id, module_id)
    if item is None:
        raise module_not_found()
    return item


def create_module(principal: Principal, request: CreateWasmModuleRequest) -> WasmModule:
    _check_wit_interface(request.wit_interface)
    now = clock.now_iso()
    module = {
        "id": str(uuid.uuid4()),
        "userId": str(principal.user_id),
        "name": request.name,
        "description": request.description,
        "witInterface": request.wit_interface,
        **VALIDATION_FIELDS,
        "uploadId": uuid.uuid4().hex,
        "createdAt": now,
        "updatedAt": now,
    }
    try:
        module_store.create_module(
            module,
            principal.provisioned_profile(now),
            limits_by_tier(MODULE_LIMIT),
            principal.tier_claim.value if principal.tier_claim else None,
            Tier.FREE.value,
        )
    except user_store.LimitFull as full:
        raise limit_reached("WASM module", "modules", MODULE_LIMIT, principal.tier_claim, full.stored_tier) from full
    answer = WasmModule.model_validate(module)
    answer.upload = _upload(principal.user_id, module["id"], module["uploadId"])
    return answer


def list_modules(principal: Principal, page: PageRequest) -> PaginatedResponse[WasmModuleSummary]:
    return counted_page(
        user_store.counted(principal.user_id, user_store.MODULE_COUNTER),
        page,
        lambda limit: [
            WasmModuleSummary.model_validate(item) for item in module_store.list_module_summaries(principal.user_id, limit)
        ],
    )


def get_module(principal: Principal, module_id: UUID) -> WasmModule:
    return WasmModule.model_validate(_owned(principal.user_id, module_id))


def update_module(principal: Principal, module_id: UUID, request: UpdateWasmModuleRequest) -> WasmModule:
    _check_wit_interface(request.wit_interface)
    provided = request.model_dump(exclude_unset=True, by_alias=True, mode="json")
    # name cannot be empty: null there means "leave as is"; null clears description and witInterface.
    changes = {field: value for field, value in provided.items() if value is not None or field != "name"}
    if not changes:
        return get_module(principal, module_id)
    try:
        item = module_store.update_module(principal.user_id, module_id, changes, clock.now_iso())
    except module_store.ModuleConditionFailed as failed:
        raise module_not_found() from failed
    return WasmModule.model_validate(item)


def new_upload(principal: Principal, module_id: UUID) -> WasmUpload:
    """A fresh presigned POST; the module is pending until its bytes arrive (running flows keep their version)."""
    current = _owned(principal.user_id, module_id)
    upload_id = uuid.uuid4().hex
    try:
        module_store.update_module(
            principal.user_id, module_id, {**VALIDATION_FIELDS, "uploadId": upload_id}, clock.now_iso()
        )
    except module_store.ModuleConditionFailed as failed:
        raise module_not_found() from failed
    _forget_upload(keys.module_upload_key(principal.user_id, module_id, current["uploadId"]))
    return _upload(principal.user_id, module_id, upload_id)


def complete_upload(principal: Principal, module_id: UUID) -> WasmModule:
    """Validates the uploaded bytes now (idempotent: a module already validated is answered as it is)."""
    item = _owned(principal.user_id, module_id)
    if item["status"] == WasmModuleStatus.PENDING.value:
        validated = _validate_upload(item)
        if validated is None:
            raise InvalidState(
                "Nothing was uploaded yet: POST the file to the module's upload url first, then complete",
                {"status": item["status"]},
            )
        item = validated
    return WasmModule.model_validate(item)


def upload_arrived(object_key: str) -> None:
    """The bucket's object-created event: validate the upload it names, when it is the module's pending one;
    anything else under the uploads prefix (a superseded or repeated upload) is removed."""
    parsed = keys.parse_module_upload_key(object_key)
    if parsed is None:
        logger.warning("Object outside the upload layout ignored", extra={"key": object_key})
        return
    user_id, module_id, upload_id = parsed
    item = module_store.get_module(user_id, module_id)
    if item is None or item["uploadId"] != upload_id or item["status"] != WasmModuleStatus.PENDING.value:
        _forget_upload(object_key)
        return
    _validate_upload(item)


def _validate_upload(item: dict[str, Any]) -> dict[str, Any] | None:
    """Validates the pending upload of `item` and records the outcome; the module as it then is, or None when
    nothing was uploaded."""
    user_id, module_id, upload_id = item["userId"], item["id"], item["uploadId"]
    object_key = keys.module_upload_key(user_id, module_id, upload_id)
    uploaded = module_objects.describe(object_key)
    if uploaded is None:
        return None
    outcome = _check_upload(user_id, module_id, object_key, uploaded)
    try:
        item = module_store.update_module(
            user_id, module_id, outcome, clock.now_iso(), expected={"uploadId": upload_id, "status": "pending"}
        )
    except module_store.ModuleConditionFailed as failed:
        # Validated meanwhile (the event and `complete` raced), superseded by a new upload, or deleted.
        if failed.current is None:
            raise module_not_found() from failed
        item = failed.current
    _forget_upload(object_key)
    return item


def _check_upload(
    user_id: str, module_id: str, object_key: str, uploaded: module_objects.UploadedObject
) -> dict[str, Any]:
    """The validation fields for the uploaded object: ready with its facts (its version stored), or invalid."""
    # The POST policy limits size and type, but not every S3 emulator enforces policies: both are checked again.
    if uploaded.size > MAX_WASM_MODULE_BYTES:
        return _invalid(f"the module is {uploaded.size} bytes; the limit is {MAX_WASM_MODULE_BYTES} bytes", uploaded.size)
    if uploaded.content_type != module_objects.WASM_CONTENT_TYPE:
        return _invalid(
            f"the file was uploaded as {uploaded.content_type or 'no content type'}; send it as "
            f"{module_objects.WASM_CONTENT_TYPE}",
            uploaded.size,
        )
    data = module_objects.read(object_key, MAX_WASM_MODULE_BYTES) or b""
    sha256 = hashlib.sha256(data).hexdigest()
    from bloxserver.engine import wasm  # wasmtime: only where bytes are validated

    try:
        shape, artifact = wasm.validate(data)
    except wasm.InvalidModule as invalid:
        return {**_invalid(str(invalid), len(data)), "sha256": sha256}
    store_version(user_id, module_id, sha256, data, artifact)
    return {
        "status": WasmModuleStatus.READY.value,
        "error": None,
        "sha256": sha256,
        "exports": [f"handle_{name}" for name in shape.interfaces],
        "imports": [f"host.{name}" for name in shape.host_imports],
        "sizeBytes": len(data),
    }


def _invalid(error: str, size: int) -> dict[str, Any]:
    return {**VALIDATION_FIELDS, "status": WasmModuleStatus.INVALID.value, "error": error, "sizeBytes": size}


def _forget_upload(object_key: str) -> None:
    """Uploads are read once; their bytes live on as the validated version. Best effort: a leftover is harmless."""
    try:
        module_objects.delete(object_key)
    except Exception:
        logger.warning("Could not delete an upload object", exc_info=True, extra={"key": object_key})


def delete_module(principal: Principal, module_id: UUID) -> None:
    """Deletes the module and its objects; 409 while a running flow uses it."""
    # A start that pins the module meanwhile makes the conditional delete fail: look again.
    for _ in range(3):
        module = _owned(principal.user_id, module_id)
        running = flows_running_with(
            principal.user_id, module["id"], module["usedBy"],
            lambda flow_id: module_store.release(principal.user_id, [module["id"]], flow_id),
        )
        if running:
            raise InvalidState(
                "The module is used by running flows; stop them first", {"flowIds": running}
            )
        try:
            if not module_store.delete_module(principal.user_id, module_id):
                raise module_not_found()
        except module_store.ModuleConditionFailed:
            continue
        remove_objects(principal.user_id, module_id)
        return
    raise InvalidState("The module is being started with a flow; try again")


def remove_objects(user_id: UUID | str, module_id: UUID | str) -> None:
    module_objects.delete_prefix(keys.module_uploads_prefix(user_id, module_id))
    module_objects.delete_prefix(keys.module_versions_prefix(user_id, module_id))
