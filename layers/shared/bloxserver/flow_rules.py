"""Flow rules more than one function applies: the caps of a flow's definition, creating a flow within the owner's
tier limit (the flows function, and a marketplace template's use), and how validation findings are listed."""

from __future__ import annotations

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


def check_definition(organism_yaml: str | None, canvas_state: CanvasState | None, location: str = "body") -> None:
    """The size caps of a flow's definition (what PATCH /flows and a marketplace template are held to); `location`
    is where the request holds the two fields."""
    if organism_yaml is not None and not organism_yaml.strip():
        raise ValidationFailed("organismYaml cannot be empty", {f"{location}.organismYaml": "empty"})
    if organism_yaml is not None and len(organism_yaml.encode()) > MAX_ORGANISM_YAML_BYTES:
        raise ValidationFailed(
            "organismYaml is too large",
            {f"{location}.organismYaml": f"at most {MAX_ORGANISM_YAML_BYTES} bytes"},
        )
    if canvas_state is not None:
        # Pydantic lets a float be infinite or NaN, and node data be anything JSON's parser accepts (so deep that
        # Pydantic's own serialiser gives up): the free-form parts are checked before anything serialises them.
        free_form = [canvas_state.viewport, *(node.position for node in canvas_state.nodes)]
        problem = jsonvalues.size_problem([*free_form, *(node.data for node in canvas_state.nodes)], MAX_CANVAS_STATE_BYTES)
        if problem is None and len(canvas_state.model_dump_json(by_alias=True).encode()) > MAX_CANVAS_STATE_BYTES:
            problem = f"more than {MAX_CANVAS_STATE_BYTES} bytes"
        if problem is not None:
            raise ValidationFailed(f"canvasState has {problem}", {f"{location}.canvasState": problem})


def create_flow_item(
    principal: Principal, fields: dict[str, Any], together_with: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A new stopped flow of the caller with `fields` (name, description, organismYaml, canvasState: checked by the
    caller), counted against their tier's flow limit in one transaction with the actions `together_with` (a
    failure of theirs is raised as the ClientError); 403 limit_reached at the limit. The flow item."""
    now = clock.now_iso()
    flow = {
        "id": str(uuid.uuid4()),
        "userId": str(principal.user_id),
        **fields,
        "status": FlowStatus.STOPPED.value,
        "createdAt": now,
        "updatedAt": now,
    }
    try:
        flow_store.create_flow(
            flow,
            principal.provisioned_profile(now),
            limits_by_tier(FLOW_LIMIT),
            principal.tier_claim.value if principal.tier_claim else None,
            Tier.FREE.value,
            together_with,
        )
    except user_store.LimitFull as full:
        raise limit_reached("Flow", "flows", FLOW_LIMIT, principal.tier_claim, full.stored_tier) from full
    return flow


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
