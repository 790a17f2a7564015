"""Flow rules more than one function applies: the caps of a flow's definition, creating a flow (its first
version, its triggers) within the owner's tier limit (the flows function, and a marketplace template's use), and
how validation findings are listed."""

from __future__ import annotations

import hashlib
import operator
import uuid
from typing import Any

from bloxserver import clock, jsonvalues
from bloxserver.auth import Principal
from bloxserver.contract import CanvasState, FlowStatus, Tier
from bloxserver.dal import flows as flow_store
from bloxserver.dal import users as user_store
from bloxserver.errors import ValidationFailed
from bloxserver.limits import limit_reached, limits_by_tier

MAX_ORGANISM_YAML_BYTES = 128 * 1024
MAX_CANVAS_STATE_BYTES = 192 * 1024  # with the YAML cap, keeps a flow under DynamoDB's 400 KB item limit
# Validation findings listed in an answer (a YAML of many listeners can have tens of thousands of findings, mostly
# `cycle_detected`): the most severe first, then one `issues_truncated` entry counting the rest.
MAX_LISTED_ISSUES = 200
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

FLOW_LIMIT = operator.attrgetter("flows")


def check_definition(organism_yaml: str | None, canvas_state: CanvasState | None, where: str = "body") -> None:
    """The caps of a flow's definition (`where` prefixes the field names in the 422's details)."""
    if organism_yaml is not None and not organism_yaml.strip():
        raise ValidationFailed("organismYaml cannot be empty", {f"{where}.organismYaml": "empty"})
    if organism_yaml is not None and len(organism_yaml.encode()) > MAX_ORGANISM_YAML_BYTES:
        raise ValidationFailed(
            "organismYaml is too large",
            {f"{where}.organismYaml": f"at most {MAX_ORGANISM_YAML_BYTES} bytes"},
        )
    if canvas_state is not None:
        # Pydantic lets a float be infinite or NaN, and node data be anything JSON's parser accepts (so deep that
        # Pydantic's own serialiser gives up): the free-form parts are checked before anything serialises them.
        free_form = [canvas_state.viewport, *(node.position for node in canvas_state.nodes)]
        problem = jsonvalues.size_problem([*free_form, *(node.data for node in canvas_state.nodes)], MAX_CANVAS_STATE_BYTES)
        if problem is None and len(canvas_state.model_dump_json(by_alias=True).encode()) > MAX_CANVAS_STATE_BYTES:
            problem = f"more than {MAX_CANVAS_STATE_BYTES} bytes"
        if problem is not None:
            raise ValidationFailed(f"canvasState has {problem}", {f"{where}.canvasState": problem})


def canvas_json(canvas_state: CanvasState | None) -> dict[str, Any] | None:
    """A canvas as stored and answered (camelCase JSON)."""
    return canvas_state.model_dump(mode="json", by_alias=True) if canvas_state is not None else None


def version_record(number: int, organism_yaml: str, canvas_state: dict[str, Any] | None, created_at: str) -> dict[str, Any]:
    """A stored version of a flow's definition, numbered `number`."""
    return {
        "version": number,
        "createdAt": created_at,
        "sha256": hashlib.sha256(organism_yaml.encode()).hexdigest(),
        "organismYaml": organism_yaml,
        "canvasState": canvas_state,
    }


def insert_flow(
    principal: Principal,
    name: str,
    description: str | None,
    organism_yaml: str,
    canvas_state: dict[str, Any] | None,
    triggers: list[dict[str, Any]] | None = None,
    together_with: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A new stopped flow at version 1 (stored) and its triggers (`triggers`: checked {type, name, config, enabled},
    each made a new trigger with a fresh id and token), written in one transaction that counts the flow against the
    caller's flow limit: 403 limit_reached at the limit, nothing written. `together_with`: more actions of that
    transaction, written last (a marketplace use counts its download; their failure is raised as the ClientError).
    Returns the flow and trigger items. Schedules of schedule triggers are the caller's to create."""
    from bloxserver import triggers as trigger_rules
    from bloxserver.dal import triggers as trigger_store

    now = clock.now_iso()
    flow_id = str(uuid.uuid4())
    flow = {
        "id": flow_id,
        "userId": str(principal.user_id),
        "name": name,
        "description": description,
        "organismYaml": organism_yaml,
        "canvasState": canvas_state,
        "status": FlowStatus.STOPPED.value,
        "version": 1,
        "createdAt": now,
        "updatedAt": now,
    }
    items = []
    for spec in triggers or []:
        item = trigger_rules.new_trigger(flow_id, principal.user_id, spec["type"], spec["name"], spec["config"])
        items.append({**item, "enabled": spec.get("enabled", True)})
    trigger_actions = [action for item in items for action in trigger_store.trigger_puts(item)]
    if items:
        flow["triggerCount"] = len(items)
    try:
        flow_store.create_flow(
            {key: value for key, value in flow.items() if value is not None},
            principal.provisioned_profile(now),
            limits_by_tier(FLOW_LIMIT),
            principal.tier_claim.value if principal.tier_claim else None,
            Tier.FREE.value,
            version_record(1, organism_yaml, canvas_state, now),
            trigger_actions + (together_with or []),
        )
    except user_store.LimitFull as full:
        raise limit_reached("Flow", "flows", FLOW_LIMIT, principal.tier_claim, full.stored_tier) from full
    return flow, items


def listed_issues(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_LISTED_ISSUES findings, errors first (a stable sort keeps their order otherwise), then, if any
    were left out, an `issues_truncated` entry saying how many."""
    if len(issues) <= MAX_LISTED_ISSUES:
        return issues
    ordered = sorted(issues, key=lambda issue: SEVERITY_ORDER.get(issue["severity"], len(SEVERITY_ORDER)))
    left_out = len(issues) - MAX_LISTED_ISSUES
    note = {
        "code": "issues_truncated",
        "message": f"{left_out} more issues not listed (the first {MAX_LISTED_ISSUES} are)",
        "listener": None,
        "severity": "info",
        "omitted": left_out,
    }
    return [*ordered[:MAX_LISTED_ISSUES], note]
