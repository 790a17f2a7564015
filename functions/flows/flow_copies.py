"""Copies of flows: duplicate one in the caller's account, export one as a portable document, import such a
document (docs/api.md, "Duplicate, export and import"). Each new flow is written with its first version and its
triggers in the transaction that counts it against the caller's flow limit (bloxserver.flow_rules.insert_flow)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bloxserver import flow_rules
from bloxserver import triggers as trigger_rules
from bloxserver.auth import Principal
from bloxserver.contract import FLOW_EXPORT_FORMAT, FLOW_EXPORT_FORMAT_VERSION, Flow, FlowExport, TriggerType
from bloxserver.dal import triggers as trigger_store
from bloxserver.display_text import check_display_text
from bloxserver.errors import ValidationFailed
from bloxserver.observability import logger
from bloxserver.ownership import owned_flow
from bloxserver.secrets import referenced_name


COPY_SUFFIX = " (copy)"
MAX_NAME_LENGTH = 100  # CreateFlowRequest.name


def _copy_name(name: str) -> str:
    return name[: MAX_NAME_LENGTH - len(COPY_SUFFIX)] + COPY_SUFFIX


def _triggers_in_order(principal: Principal, flow_id: UUID) -> list[dict[str, Any]]:
    return sorted(trigger_store.list_triggers(principal.user_id, flow_id), key=lambda item: item["createdAt"])


def _create_schedules(triggers: list[dict[str, Any]]) -> None:
    """The (disabled: the new flow is stopped) schedules of a new flow's schedule triggers. A failure leaves the
    trigger without one until the flow's start, which creates every missing schedule of its triggers."""
    for trigger in triggers:
        if trigger["type"] != TriggerType.SCHEDULE.value:
            continue
        try:
            trigger_rules.create_trigger_schedule(trigger, False)
        except Exception:
            logger.exception("Creating a copied trigger's schedule failed", extra={"triggerId": trigger["id"]})


def duplicate_flow(principal: Principal, flow_id: UUID) -> Flow:
    """A stopped copy named "<name> (copy)" with the flow's definition and copies of its triggers (new ids and
    tokens; schedules disabled until the copy starts)."""
    source = owned_flow(principal.user_id, flow_id)
    copies = [
        {"type": item["type"], "name": item["name"], "config": item["config"], "enabled": trigger_rules.is_enabled(item)}
        for item in _triggers_in_order(principal, flow_id)
    ]
    flow, triggers = flow_rules.insert_flow(
        principal,
        _copy_name(source["name"]),
        source.get("description"),
        source["organismYaml"],
        source.get("canvasState"),
        copies,
    )
    _create_schedules(triggers)
    return Flow.model_validate(flow)


def _portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trigger's config without secrets: a verification secret given as a literal (not a secret('NAME')
    reference) is left out, so the importer must supply one."""
    verify = config.get("verify")
    if not verify:
        return config
    field = "value" if verify["scheme"] == "header" else "secret"
    if referenced_name(verify[field]) is not None:
        return config
    return {**config, "verify": {name: value for name, value in verify.items() if name != field}}


def export_flow(principal: Principal, flow_id: UUID) -> dict[str, Any]:
    flow = owned_flow(principal.user_id, flow_id)
    return {
        "format": FLOW_EXPORT_FORMAT,
        "formatVersion": FLOW_EXPORT_FORMAT_VERSION,
        "name": flow["name"],
        "description": flow.get("description"),
        "organismYaml": flow["organismYaml"],
        "canvasState": flow.get("canvasState"),
        "triggers": [
            {"type": item["type"], "name": item["name"], "config": _portable_config(item["config"])}
            for item in _triggers_in_order(principal, flow_id)
        ],
    }


def import_flow(principal: Principal, document: FlowExport) -> Flow:
    """A new stopped flow from an export document, its triggers created as on POST .../triggers (checked the same
    way, each with a fresh token)."""
    if document.format != FLOW_EXPORT_FORMAT:
        raise ValidationFailed(
            f"format must be {FLOW_EXPORT_FORMAT!r}", {"body.format": f"must be {FLOW_EXPORT_FORMAT!r}"}
        )
    if document.format_version != FLOW_EXPORT_FORMAT_VERSION:
        raise ValidationFailed(
            f"Unknown formatVersion {document.format_version}; this server reads {FLOW_EXPORT_FORMAT_VERSION}",
            {"body.formatVersion": f"must be {FLOW_EXPORT_FORMAT_VERSION}"},
        )
    check_display_text({"body.name": document.name}, {"body.description": document.description})
    flow_rules.check_definition(document.organism_yaml, document.canvas_state)
    if len(document.triggers) > trigger_rules.MAX_TRIGGERS_PER_FLOW:
        raise ValidationFailed(
            f"A flow has at most {trigger_rules.MAX_TRIGGERS_PER_FLOW} triggers",
            {"body.triggers": f"at most {trigger_rules.MAX_TRIGGERS_PER_FLOW}"},
        )
    specs = []
    for index, trigger in enumerate(document.triggers):
        where = f"body.triggers.{index}"
        trigger_rules.check_trigger_name(trigger.name, where)
        config = trigger_rules.checked_config(principal, trigger.type.value, trigger.config, where)
        specs.append({"type": trigger.type.value, "name": trigger.name, "config": config})
    flow, triggers = flow_rules.insert_flow(
        principal,
        document.name,
        document.description,
        document.organism_yaml,
        flow_rules.canvas_json(document.canvas_state),
        specs,
    )
    _create_schedules(triggers)
    return Flow.model_validate(flow)
