"""The flow's input of a webhook delivery: its body as it came or, when the trigger's `config.include_request` is
true, the request as one object `{body, headers, query, method}` (docs/triggers.md, "Request context")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from bloxserver import jsonvalues

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Credentials a sender puts in headers: never handed to the flow (its input is stored and shown with the execution).
WITHHELD_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@dataclass(frozen=True)
class DeliveryRequest:
    method: str
    query: list[tuple[str, str]] = field(default_factory=list)


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Name → value, or → the values in order when a name is repeated (`a=1&a=2`)."""
    grouped: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name not in grouped:
            grouped[name] = value
        elif isinstance(grouped[name], list):
            grouped[name].append(value)
        else:
            grouped[name] = [grouped[name], value]
    return grouped


def _body(text: str | None, content_type: str) -> Any:
    """A form-encoded body as an object, JSON as its value, anything else as the text; no body is null."""
    if text is None:
        return None
    if content_type.split(";")[0].strip().lower() == FORM_CONTENT_TYPE:
        return _grouped(parse_qsl(text, keep_blank_values=True))
    try:
        return jsonvalues.parse(text)
    except ValueError:
        return text


def flow_input(
    target: dict[str, Any], text: str | None, headers: dict[str, str], request: DeliveryRequest | None
) -> str | None:
    """The execution's inputPayload for a delivery of `text` (None: no body) to the trigger `target` (the token's
    lookup item: its `includeRequest` and `verify`)."""
    if not target.get("includeRequest") or request is None:
        return text
    withheld = set(WITHHELD_HEADERS)
    verify = target.get("verify") or {}
    if verify.get("scheme") == "header":  # that header's value is the shared secret itself
        withheld.add(verify["header"].lower())
    lowered = {name.lower(): value for name, value in headers.items()}
    context = {
        "body": _body(text, lowered.get("content-type", "")),
        "headers": {name: value for name, value in lowered.items() if name not in withheld},
        "query": _grouped(request.query),
        "method": request.method,
    }
    return json.dumps(context, ensure_ascii=False)
