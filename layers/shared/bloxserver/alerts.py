"""Failure alerts of a flow (docs/alerts.md): what a flow's `alerts` may say, and which endings they report.

The flows function checks a flow's alerts with `checked_alerts`; the alerts function (functions/alerts) reads the
ended executions from the table's stream and uses `failure_kind` to decide whether the flow asked to hear of it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from bloxserver import secrets as secret_rules
from bloxserver import signatures
from bloxserver.contract import AlertOn, FlowAlerts
from bloxserver.errors import ValidationFailed

# At most one alert per flow in this many seconds; the ones held back are counted into the next one sent.
ALERT_INTERVAL_SECONDS = 60


def failure_kind(execution: dict[str, Any]) -> str | None:
    """How an ended execution failed, as `alerts.on` names it (a cancelled run is recorded as an `error` with
    `cancelled`), or None when it did not fail."""
    if execution.get("cancelled"):
        return AlertOn.CANCELLED.value
    status = execution.get("status")
    return status if status in (AlertOn.ERROR.value, AlertOn.TIMEOUT.value) else None


def _refused(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"alerts.{field} {problem}", {f"body.alerts.{field}": problem})


def url_problem(url: str) -> str | None:
    """Why `url` cannot receive alerts, or None: https only (plain http too where a development switch lets
    requests reach private networks, for a local receiver), no credentials in it, and not an address the SSRF
    guard refuses on sight (every address is checked again when the alert is sent)."""
    from bloxserver.engine.httpguard import AddressGuard, static_refusal
    from bloxserver.engine.settings import get_engine_settings

    settings = get_engine_settings()
    local_receivers = settings.allow_private_network or bool(settings.allowed_private_cidrs)
    schemes = ("https", "http") if local_receivers else ("https",)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in schemes:
        return "must be an https:// URL"
    if not url.isprintable() or not parts.hostname:
        return "must name a host, in printable characters (encode others as %XX)"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@): alerts are signed with the secret instead"
    refusal = static_refusal(parts.hostname, AddressGuard(settings.allow_private_network, settings.allowed_private_cidrs))
    return None if refusal is None else f"is refused: {refusal}"


def checked_alerts(user_id: UUID, alerts: FlowAlerts) -> dict[str, Any]:
    """The alerts as the flow stores them, once they are usable: a receiving URL the guard allows, and a reference
    to one of the owner's secrets holding a Standard Webhooks signing secret. ValidationFailed (422) names the
    field otherwise."""
    problem = url_problem(alerts.url)
    if problem is not None:
        raise _refused("url", problem)
    name = secret_rules.referenced_name(alerts.secret)
    if name is None or not secret_rules.NAME_PATTERN.fullmatch(name):
        raise _refused("secret", "must be a reference to one of your secrets: secret('NAME')")
    value = secret_rules.secret_values(user_id, frozenset({name})).get(name)
    if value is None:
        raise _refused("secret", f"names no secret of yours: add it with PUT /api/v1/secrets/{name}")
    problem = signatures.secret_problem(value)
    if problem is not None:
        raise _refused("secret", f"names a secret that {problem}")
    return {
        "on": list(dict.fromkeys(kind.value for kind in alerts.on)),
        "url": alerts.url,
        "secret": f"secret('{name}')",
    }
