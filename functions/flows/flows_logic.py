"""Flow rules: ownership, the tier's flow limit, what may be edited when, versions of the definition, and the
start/stop lifecycle."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bloxserver import alerts, clock
from bloxserver.auth import Principal
from bloxserver.contract import (
    CreateFlowRequest,
    Flow,
    FlowStatus,
    FlowSummary,
    FlowVersion,
    FlowVersionSummary,
    PaginatedResponse,
    UpdateFlowRequest,
)
from bloxserver.dal import flows as flow_store
from bloxserver.display_text import check_display_text
from bloxserver.flow_rules import canvas_json, check_definition, insert_flow, listed_issues, version_record
from bloxserver.dal import secrets as secret_store
from bloxserver.dal import users as user_store
from bloxserver.errors import (
    InvalidFlow,
    InvalidState,
    NotFound,
    ServiceUnavailable,
    flow_not_found,
)
from bloxserver.observability import logger
from bloxserver.limits import effective_tier
from bloxserver.ownership import owned_flow
from bloxserver.pagination import PageRequest, counted_page, to_page

if TYPE_CHECKING:
    from bloxserver.engine import FlowContext

EDITABLE_STATUSES = (FlowStatus.STOPPED.value, FlowStatus.ERROR.value)
STARTABLE_STATUSES = (FlowStatus.STOPPED.value, FlowStatus.ERROR.value)
STOPPABLE_STATUSES = (FlowStatus.RUNNING.value, FlowStatus.STARTING.value, FlowStatus.ERROR.value)
# Stored versions of a flow's definition: the newest this many (writing version n deletes version n − 50).
RETAINED_VERSIONS = 50
# A definition write whose version was taken by a concurrent one reads the flow again this many times.
DEFINITION_WRITE_ATTEMPTS = 3


def _default_organism_yaml() -> str:
    from bloxserver.engine import DEFAULT_ORGANISM_YAML

    return DEFAULT_ORGANISM_YAML


def create_flow(principal: Principal, request: CreateFlowRequest) -> Flow:
    check_display_text({"body.name": request.name}, {"body.description": request.description})
    organism_yaml = request.organism_yaml if request.organism_yaml is not None else _default_organism_yaml()
    check_definition(organism_yaml, request.canvas_state)
    flow, _ = insert_flow(principal, request.name, request.description, organism_yaml, canvas_json(request.canvas_state))
    return Flow.model_validate(flow)


def list_flows(principal: Principal, page: PageRequest) -> PaginatedResponse[FlowSummary]:
    return counted_page(
        user_store.counted(principal.user_id, user_store.FLOW_COUNTER),
        page,
        lambda limit: [FlowSummary.model_validate(item) for item in flow_store.list_flow_summaries(principal.user_id, limit)],
    )


def _get_item(principal: Principal, flow_id: UUID) -> dict[str, Any]:
    return owned_flow(principal.user_id, flow_id)


def get_flow(principal: Principal, flow_id: UUID) -> Flow:
    return Flow.model_validate(_get_item(principal, flow_id))


def update_flow(principal: Principal, flow_id: UUID, request: UpdateFlowRequest) -> Flow:
    check_display_text({"body.name": request.name}, {"body.description": request.description})
    check_definition(request.organism_yaml, request.canvas_state)
    provided = request.model_dump(exclude_unset=True, by_alias=True, mode="json")
    # name and organismYaml cannot be empty: a null there means "leave as is"; description, canvasState and alerts
    # clear.
    changes = {
        field: value
        for field, value in provided.items()
        if value is not None or field in ("description", "canvasState", "alerts")
    }
    if request.alerts is not None:
        changes["alerts"] = alerts.checked_alerts(principal.user_id, request.alerts)
    if not changes:
        return get_flow(principal, flow_id)
    touches_definition = "organismYaml" in changes or "canvasState" in changes
    if "organismYaml" in changes:  # a start refused the old YAML (status error): that verdict no longer applies
        changes.update(status=FlowStatus.STOPPED.value, errorMessage=None)
    if touches_definition:
        return Flow.model_validate(_write_definition(principal, flow_id, changes, always_new_version=False))
    try:
        item = flow_store.update_flow(
            principal.user_id,
            flow_id,
            changes,
            clock.now_iso(),
            required_statuses=EDITABLE_STATUSES if touches_definition else (),
        )
    except flow_store.FlowConditionFailed as failed:
        if failed.current is None:
            raise flow_not_found() from failed
        raise InvalidState(
            f"Cannot change organismYaml or canvasState of a {failed.current['status']} flow; stop it first",
            {"status": failed.current["status"]},
        ) from failed
    return Flow.model_validate(item)


def _not_editable(status: str) -> InvalidState:
    return InvalidState(
        f"Cannot change organismYaml or canvasState of a {status} flow; stop it first", {"status": status}
    )


def _write_definition(
    principal: Principal,
    flow_id: UUID,
    changes: dict[str, Any],
    always_new_version: bool,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply `changes` (they hold organismYaml and/or canvasState) to an editable flow. A definition that differs
    from the flow's (or any, with `always_new_version`) becomes the next version: the flow's update (conditional on
    the version read), the new version's item and the deletion of the one leaving the retained window are one
    transaction. `current`: the flow as just read, if it was. Returns the flow item as written."""
    for _ in range(DEFINITION_WRITE_ATTEMPTS):
        current = current or _get_item(principal, flow_id)
        if current["status"] not in EDITABLE_STATUSES:
            raise _not_editable(current["status"])
        organism_yaml = changes.get("organismYaml", current["organismYaml"])
        canvas = changes["canvasState"] if "canvasState" in changes else current.get("canvasState")
        version = int(current.get("version", 1))
        unchanged = organism_yaml == current["organismYaml"] and canvas == current.get("canvasState")
        together: list[dict[str, Any]] = []
        written = dict(changes)
        now = clock.now_iso()
        if always_new_version or not unchanged:
            new = version + 1
            written["version"] = new
            together.append(flow_store.version_put(principal.user_id, flow_id, version_record(new, organism_yaml, canvas, now)))
            if new > RETAINED_VERSIONS:
                together.append(flow_store.version_delete(principal.user_id, flow_id, new - RETAINED_VERSIONS))
            if "version" not in current:  # stored before versions existed: its definition becomes version 1 now
                first = version_record(1, current["organismYaml"], current.get("canvasState"), current["updatedAt"])
                together.append(flow_store.version_put(principal.user_id, flow_id, first))
        try:
            return flow_store.update_flow(
                principal.user_id,
                flow_id,
                written,
                now,
                required_statuses=EDITABLE_STATUSES,
                expected_updated_at=current["updatedAt"],  # unchanged since read: the answer is `current` + `written`
                expected_version=version,
                together_with=together or None,
                written_over=current,
            )
        except flow_store.FlowConditionFailed as failed:
            if failed.current is None:
                raise flow_not_found() from failed
            if failed.current["status"] not in EDITABLE_STATUSES:
                raise _not_editable(failed.current["status"]) from failed
        except flow_store.TogetherFailed:
            pass
        current = None  # changed since it was read (another edit, a version taken concurrently): read it again
    raise ServiceUnavailable("The flow kept changing while being saved; try again")


def list_versions(principal: Principal, flow_id: UUID, page: PageRequest) -> PaginatedResponse[FlowVersionSummary]:
    """The flow's stored versions, newest first: the last RETAINED_VERSIONS (fewer for a flow stored before versions
    existed and not changed since, which has none)."""
    current = _get_item(principal, flow_id)
    total = min(int(current["version"]), RETAINED_VERSIONS) if "version" in current else 0
    if total == 0:
        return to_page([], 0, page)
    newest_first = flow_store.list_version_summaries(principal.user_id, flow_id, page.read_limit)
    return to_page([FlowVersionSummary.model_validate(item) for item in newest_first], total, page)


def _stored_version(principal: Principal, flow_id: UUID, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The caller's flow (404) and its stored version `number` (404)."""
    flow = _get_item(principal, flow_id)
    stored = flow_store.get_version(principal.user_id, flow_id, number)
    if stored is None:
        raise NotFound(f"Flow version {number} not found (the last {RETAINED_VERSIONS} versions are kept)")
    return flow, stored


def get_version(principal: Principal, flow_id: UUID, number: int) -> FlowVersion:
    return FlowVersion.model_validate(_stored_version(principal, flow_id, number)[1])


def restore_version(principal: Principal, flow_id: UUID, number: int) -> Flow:
    """A new version holding version `number`'s definition, while the flow is editable (409 otherwise)."""
    flow, stored = _stored_version(principal, flow_id, number)
    changes = {
        "organismYaml": stored["organismYaml"],
        "canvasState": stored.get("canvasState"),
        "status": FlowStatus.STOPPED.value,
        "errorMessage": None,
    }
    return Flow.model_validate(_write_definition(principal, flow_id, changes, always_new_version=True, current=flow))


def delete_flow(principal: Principal, flow_id: UUID) -> None:
    from bloxserver import cleanup  # lazily: the trigger/schedule/execution cleanup chain (cold start)

    if not cleanup.delete_flow_and_dependents(principal.user_id, flow_id):
        raise flow_not_found()


def _transition(
    principal: Principal,
    flow_id: UUID,
    allowed_from: tuple[str, ...],
    changes: dict[str, Any],
    verb: str,
    expected_updated_at: str | None = None,
    together_with: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The flow item after the transition."""
    try:
        item = flow_store.update_flow(
            principal.user_id,
            flow_id,
            changes,
            clock.now_iso(),
            required_statuses=allowed_from,
            expected_updated_at=expected_updated_at,
            together_with=together_with,
        )
    except flow_store.FlowConditionFailed as failed:
        if failed.current is None:
            raise flow_not_found() from failed
        status = failed.current["status"]
        if status in allowed_from:
            raise InvalidState(f"Flow changed while trying to {verb} it; try again", {"status": status}) from failed
        raise InvalidState(f"Cannot {verb} flow in {status} state", {"status": status}) from failed
    except flow_store.TogetherFailed as failed:
        raise InvalidState(f"A WASM module of the flow was deleted while trying to {verb} it", {"status": "stopped"}) from failed
    if item is None:
        raise flow_not_found()
    return item


def _owner_context(principal: Principal, organism_yaml: str) -> FlowContext:
    """What validation knows of the flow's owner: its tier (the token's claim, else the stored one), whose ceilings
    the flow's settings must keep to (limits.RUN_LIMITS), the WASM modules the YAML names, and the names of the
    owner's secrets (read only when the YAML mentions a secret)."""
    from bloxserver import wasm_modules

    profile = None if principal.tier_claim else user_store.get_user(principal.user_id)
    tier = effective_tier(principal.tier_claim, profile).value
    context = wasm_modules.flow_context(principal.user_id, organism_yaml, tier)
    names = secret_store.secret_names(principal.user_id) if "secret(" in organism_yaml else frozenset()
    return replace(context, secret_names=names)


def start_flow(principal: Principal, flow_id: UUID) -> Flow:
    from bloxserver import triggers  # lazily: schedules are only touched on start/stop (cold start)
    from bloxserver import wasm_modules
    from bloxserver.engine import validate

    current = _get_item(principal, flow_id)
    if current["status"] not in STARTABLE_STATUSES:
        raise InvalidState(f"Cannot start flow in {current['status']} state", {"status": current["status"]})
    context = _owner_context(principal, current["organismYaml"])
    issues = [issue.as_dict() for issue in validate(current["organismYaml"], context)]
    errors = [issue for issue in issues if issue["severity"] == "error"]
    issues = listed_issues(issues)
    # Start only what was validated: the write fails if the flow was edited in between.
    expected = current["updatedAt"]
    if errors:
        message = "Flow is invalid: " + "; ".join(issue["message"] for issue in errors[:3])
        _transition(
            principal,
            flow_id,
            STARTABLE_STATUSES,
            {"status": FlowStatus.ERROR.value, "errorMessage": message},
            "start",
            expected,
        )
        raise InvalidFlow(message, {"issues": issues})
    # Runs use the module versions validated now, whatever is uploaded later; the modules record the flow as a
    # user in the same transaction, so none of them can be deleted while it runs.
    pins = wasm_modules.pins(context)
    flow = _transition(
        principal,
        flow_id,
        STARTABLE_STATUSES,
        {"status": FlowStatus.RUNNING.value, "errorMessage": None, wasm_modules.PINNED_MODULES: pins or None},
        "start",
        expected,
        wasm_modules.use_actions(principal.user_id, pins, flow_id),
    )
    try:
        triggers.set_flow_schedules_state(principal.user_id, flow_id, enabled=True)  # after the status is written
    except Exception as failure:
        logger.exception("Enabling schedules failed", extra={"flowId": str(flow_id)})
        raise ServiceUnavailable(
            "The flow is running, but its schedules could not be enabled; stop and start it to retry"
        ) from failure
    return Flow.model_validate(flow)


def validate_flow(principal: Principal, flow_id: UUID) -> list[dict[str, Any]]:
    from bloxserver.engine import validate

    organism_yaml = _get_item(principal, flow_id)["organismYaml"]
    return listed_issues([issue.as_dict() for issue in validate(organism_yaml, _owner_context(principal, organism_yaml))])


def stop_flow(principal: Principal, flow_id: UUID) -> Flow:
    from bloxserver import triggers  # lazily: schedules are only touched on start/stop (cold start)

    flow = _transition(
        principal, flow_id, STOPPABLE_STATUSES, {"status": FlowStatus.STOPPED.value, "errorMessage": None}, "stop"
    )
    _release_modules(principal, flow_id, flow)
    try:
        triggers.set_flow_schedules_state(principal.user_id, flow_id, enabled=False)
    except Exception:
        # The stop holds: the schedule function records nothing for a flow that is not running, and the next
        # start or stop puts every schedule again.
        logger.exception("Disabling schedules failed", extra={"flowId": str(flow_id)})
    return Flow.model_validate(flow)


def _release_modules(principal: Principal, flow_id: UUID, stopped: dict[str, Any]) -> None:
    """The stopped flow no longer uses its pinned modules and tools. Best effort: a module's delete (a tool's
    uninstall) checks its users again."""
    from bloxserver import wasm_modules

    pinned = stopped.get(wasm_modules.PINNED_MODULES) or {}
    if not pinned:
        return
    try:
        wasm_modules.release(principal.user_id, pinned, flow_id)
    except Exception:
        logger.exception("Releasing the flow's WASM modules failed", extra={"flowId": str(flow_id)})
