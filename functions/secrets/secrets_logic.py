"""Secret rules: names, values and the per-tier count; values are encrypted by the DAL and never returned."""

from __future__ import annotations

from bloxserver import clock
from bloxserver import secrets as secret_rules
from bloxserver.auth import Principal
from bloxserver.contract import Secret
from bloxserver.dal import secrets as secret_store
from bloxserver.errors import LimitReached, NotFound, ValidationFailed
from bloxserver.limits import TIER_LIMITS
from bloxserver.ownership import caller_tier


def _checked_name(name: str) -> str:
    if not secret_rules.NAME_PATTERN.fullmatch(name):
        raise ValidationFailed(
            f"Secret names are {secret_rules.NAME_RULE}", {"path.name": f"must be {secret_rules.NAME_RULE}"}
        )
    return name


def _checked_value(value: str) -> str:
    # Control characters are refused as in names: a value is sent as header text or inside a URL or body.
    problem = None
    if len(value.encode()) > secret_rules.MAX_VALUE_BYTES:
        problem = f"must be at most {secret_rules.MAX_VALUE_BYTES} bytes as UTF-8"
    elif not value.isprintable():
        problem = "must be printable text (no line breaks or control characters)"
    if problem:
        raise ValidationFailed(f"value {problem}", {"body.value": problem})
    return value


def list_secrets(principal: Principal) -> list[Secret]:
    return [Secret.model_validate(item) for item in secret_store.list_secrets(principal.user_id)]


def put_secret(principal: Principal, name: str, value: str) -> Secret:
    name, value = _checked_name(name), _checked_value(value)
    tier = caller_tier(principal)
    limit = TIER_LIMITS[tier].secrets
    try:
        stored = secret_store.put_secret(
            principal.user_id, name, value, secret_rules.hint(value), clock.now_iso(), limit
        )
    except secret_store.SecretLimitFull as full:
        raise LimitReached(
            f"Secret limit reached ({limit} for the {tier.value} tier). Delete a secret to add another.",
            {"limit": limit, "tier": tier.value},
        ) from full
    return Secret.model_validate(stored)


def delete_secret(principal: Principal, name: str) -> None:
    if not secret_rules.NAME_PATTERN.fullmatch(name) or not secret_store.delete_secret(principal.user_id, name):
        raise NotFound("Secret not found")
