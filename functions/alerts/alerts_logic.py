"""Failure alerts (docs/alerts.md): for each execution that ended failing, if its flow asks for alerts of that kind
and none went out in the last minute, one POST signed as Standard Webhooks do, through the SSRF guard, retried
with back-off; a delivery that fails for good is recorded in the execution's logs."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bloxserver import clock
from bloxserver import secrets as secret_rules
from bloxserver.alerts import ALERT_INTERVAL_SECONDS, failure_kind
from bloxserver.dal import alerts as alert_store
from bloxserver.dal import execution_logs as log_store
from bloxserver.dal import flows as flow_store
from bloxserver.observability import logger

ATTEMPT_TIMEOUT_SECONDS = 5.0
RETRY_DELAYS_SECONDS = (1.0, 5.0, 25.0)  # after the first attempt, after the second, after the third
USER_AGENT = "BloxServer-Alerts/1"


@dataclass(frozen=True)
class Alert:
    execution: dict[str, Any]
    url: str
    secret: str  # secret('NAME') of the flow's owner
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    attempts: int
    problem: str | None  # why the last attempt failed; None once delivered


def shown_url(url: str) -> str:
    """The URL as logs show it: without its query string, which may carry a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def payload(execution: dict[str, Any], suppressed_count: int) -> dict[str, Any]:
    return {
        "flowId": execution["flowId"],
        "executionId": execution["id"],
        "status": execution["status"],
        "cancelled": bool(execution.get("cancelled")),
        "errorMessage": execution.get("errorMessage"),
        "startedAt": execution["startedAt"],
        "durationMs": int(execution["durationMs"]) if execution.get("durationMs") is not None else None,
        "flowVersion": int(execution["flowVersion"]) if execution.get("flowVersion") is not None else None,
        "suppressedCount": suppressed_count,
    }


def alert_for(execution: dict[str, Any], now: datetime) -> Alert | None:
    """The alert to send for an ended execution, or None: it did not fail, its flow is gone or does not ask for
    this kind of failure, or the flow's last alert went out less than a minute ago (then it is counted into the next
    one)."""
    kind = failure_kind(execution)
    if kind is None:
        return None
    flow = flow_store.get_flow(execution["userId"], execution["flowId"])
    alerts = (flow or {}).get("alerts")
    if not alerts or kind not in alerts["on"]:
        return None
    suppressed = alert_store.claim_alert(execution["flowId"], int(now.timestamp()), ALERT_INTERVAL_SECONDS)
    if suppressed is None:
        logger.info("Alert held back by the per-flow limit", extra={"flowId": execution["flowId"]})
        return None
    return Alert(execution, alerts["url"], alerts["secret"], payload(execution, suppressed))


def _attempt(url: str, body: str, headers: dict[str, str]) -> tuple[str | None, bool]:
    """One POST through the SSRF guard: what went wrong (None on a 2xx answer) and whether trying again may help
    (not for an address the guard refuses). The answer's body is not read."""
    import httpx

    from bloxserver.engine.httpguard import AddressGuard, AddressRefused, GuardedTransport
    from bloxserver.engine.settings import get_engine_settings

    settings = get_engine_settings()
    guard = AddressGuard(settings.allow_private_network, settings.allowed_private_cidrs)
    deadline = time.monotonic() + ATTEMPT_TIMEOUT_SECONDS
    try:
        with httpx.Client(transport=GuardedTransport(guard, deadline), timeout=None, trust_env=False) as client:
            response = client.send(client.build_request("POST", url, content=body, headers=headers), stream=True)
            response.close()
    except AddressRefused as refused:
        return str(refused), False
    except httpx.TimeoutException:
        return f"no answer within {ATTEMPT_TIMEOUT_SECONDS:g} s", True
    except httpx.HTTPError as failed:
        return f"{type(failed).__name__}: {failed}", True
    return (None, False) if 200 <= response.status_code < 300 else (f"answered HTTP {response.status_code}", True)


def back_off(seconds: float) -> None:
    """The wait between two attempts of a delivery."""
    time.sleep(seconds)


def deliver(alert: Alert) -> Delivery:
    """POST the alert, signed anew for each attempt (a fresh webhook-timestamp, the same webhook-id so a receiver
    can tell a retry), retried after each of RETRY_DELAYS_SECONDS; an address the guard refuses is not retried."""
    from svix.webhooks import Webhook

    try:
        signer = Webhook(secret_rules.resolve(alert.execution["userId"], alert.secret))
    except secret_rules.MissingSecret as missing:
        return Delivery(0, f"{missing}: the alert cannot be signed")
    except Exception:  # the secret's value changed to something that is not a signing secret
        return Delivery(0, "the alert's secret is not a Standard Webhooks signing secret (whsec_ followed by base64)")
    body = json.dumps(alert.payload, separators=(",", ":"))
    message_id = f"alert_{alert.execution['id']}"
    problem: str | None = None
    for attempt, delay in enumerate((*RETRY_DELAYS_SECONDS, None), start=1):
        sent_at = clock.utc_now()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signer.sign(message_id, sent_at, body),
        }
        problem, retryable = _attempt(alert.url, body, headers)
        if not retryable or delay is None:
            return Delivery(attempt, problem)
        back_off(delay)
    return Delivery(len(RETRY_DELAYS_SECONDS) + 1, problem)


def record_failure(alert: Alert, delivery: Delivery, now: datetime) -> None:
    """The failed delivery, as an error record at the end of the execution's logs (GET /flows/{id}/logs)."""
    execution = alert.execution
    attempts = f"{delivery.attempts} attempt{'' if delivery.attempts == 1 else 's'}"
    message = f"failure alert to {shown_url(alert.url)} not delivered ({attempts}): {delivery.problem}"
    record = {
        "timestamp": clock.iso(now),
        "level": "error",
        "message": message,
        "metadataJson": json.dumps({"executionId": execution["id"], "listener": None, "alert": True}),
    }
    log_store.append_records(execution["flowId"], execution["id"], [record], int(execution["expiresAt"]))
    logger.warning("Alert not delivered", extra={"flowId": execution["flowId"], "problem": delivery.problem})


def send_alerts(ended: list[dict[str, Any]], now: datetime) -> list[Delivery]:
    """Send the alerts these ended executions call for, concurrently (a slow receiver holds up no other flow's
    alert); returns each delivery's outcome."""
    alerts = [alert for alert in (alert_for(execution, now) for execution in ended) if alert is not None]
    if not alerts:
        return []
    with ThreadPoolExecutor(max_workers=len(alerts)) as pool:
        deliveries = list(pool.map(deliver, alerts))
    for alert, delivery in zip(alerts, deliveries):
        if delivery.problem is not None:
            record_failure(alert, delivery, clock.utc_now())
    return deliveries
