"""User rules: lazy provisioning from token claims, usage against the tier's limits, and Clerk's user sync."""

from __future__ import annotations

from typing import Any, Literal

from bloxserver import clock, jsonvalues, keys, signatures
from bloxserver.auth import Principal, user_id_for
from bloxserver.contract import Tier, UsageStats, User
from bloxserver.dal import users as user_store
from bloxserver.errors import BadRequest, Conflict, InvalidSignature, ServiceUnavailable
from bloxserver.limits import RUN_LIMITS, TIER_LIMITS, effective_tier, stored_tier
from bloxserver.settings import get_settings

CLERK_DELIVERY_MEMORY_SECONDS = 7 * 24 * 3600  # Clerk (Svix) retries a delivery for up to about 3 days
PROFILE_EVENTS = ("user.created", "user.updated")
MAX_CLERK_MILLISECONDS = 10**15  # about the year 33,658: past it, no Clerk time
# Clerk's ids, event types, names and URLs are far shorter; longer text could not be stored in a profile item.
MAX_CLERK_TEXT_CHARS = 2048


def _follow_tier_claim(principal: Principal, stored: dict[str, Any] | None) -> None:
    """Webhooks and schedules run with the stored tier (they carry no token): a newer claim than what is stored
    (Clerk's webhook may lag, or never come in development) is stored, so every path enforces one tier."""
    if principal.tier_claim is not None and stored is not None and stored_tier(stored) != principal.tier_claim:
        user_store.record_tier(principal.user_id, principal.tier_claim.value, principal.issued_at)


def get_me(principal: Principal) -> User:
    user = user_store.get_user(principal.user_id)
    if user is None:
        profile = {
            "id": str(principal.user_id),
            "clerkId": principal.clerk_id,
            "email": principal.email,
            "name": principal.name,
            "avatarUrl": principal.avatar_url,
            "tier": (principal.tier_claim or Tier.FREE).value,
            "tierAsOf": principal.issued_at,
            "createdAt": clock.now_iso(),
        }
        user = profile if user_store.insert_user(profile) else user_store.get_user(principal.user_id)
    _follow_tier_claim(principal, user)
    return User.model_validate({**user, "tier": effective_tier(principal.tier_claim, user)})


def get_usage(principal: Principal, period: Literal["day", "month"]) -> UsageStats:
    now = clock.now_iso()
    usage_sk = keys.usage_month_sk(now) if period == "month" else keys.usage_day_sk(now)
    user, execution_count, token_count = user_store.get_user_with_usage(principal.user_id, usage_sk)
    _follow_tier_claim(principal, user)
    tier = effective_tier(principal.tier_claim, user)
    return UsageStats(
        user_id=principal.user_id,
        period=period,
        flow_count=int((user or {}).get("flowCount", 0)),
        execution_count=execution_count,
        execution_limit=TIER_LIMITS[tier].executions_per_month,
        token_count=token_count,
        token_limit=RUN_LIMITS[tier].llm_tokens_per_month,
    )


def _malformed(field: str, problem: str) -> BadRequest:
    return BadRequest(f"Malformed Clerk event: {field} {problem}", {field: problem})


def _text(mapping: dict[str, Any], field: str, where: str | None = None) -> str | None:
    """`mapping[field]` as text of bounded length (None when absent or empty); BadRequest naming where.field."""
    value = mapping.get(field)
    location = f"{where}.{field}" if where else field
    if value is not None and not isinstance(value, str):
        raise _malformed(location, "must be text")
    if value is not None and len(value) > MAX_CLERK_TEXT_CHARS:
        raise _malformed(location, f"must be at most {MAX_CLERK_TEXT_CHARS} characters")
    return value or None


def _clerk_profile(data: dict[str, Any]) -> dict[str, Any]:
    """The profile fields of a user.created/updated event's `data`; BadRequest naming a field of the wrong type."""
    emails = data.get("email_addresses") or []
    if not isinstance(emails, list) or not all(isinstance(email, dict) for email in emails):
        raise _malformed("data.email_addresses", "must be a list of objects")
    primary_id = _text(data, "primary_email_address_id", "data")
    primary = next((e for e in emails if e.get("id") == primary_id), emails[0] if emails else {})
    names = [_text(data, "first_name", "data"), _text(data, "last_name", "data")]
    metadata = data.get("public_metadata") or {}
    if not isinstance(metadata, dict):
        raise _malformed("data.public_metadata", "must be an object")
    updated_at = data.get("updated_at")
    if updated_at is None:
        updated_at = int(clock.utc_now().timestamp() * 1000)
    elif isinstance(updated_at, bool) or not isinstance(updated_at, int) or not 0 <= updated_at < MAX_CLERK_MILLISECONDS:
        raise _malformed("data.updated_at", "must be a time in milliseconds since 1970")
    return {
        "clerkId": data["id"],
        # None (no address in the event): the stored email stays (users_store.upsert_profile's if_absent)
        "email": _text(primary, "email_address", "data.email_addresses[]"),
        "name": " ".join(part for part in names if part) or None,
        "avatarUrl": _text(data, "image_url", "data"),
        "tier": _clerk_tier(metadata.get("tier")),
        "tierAsOf": updated_at // 1000,
    }


def _clerk_tier(value: Any) -> str:
    """`public_metadata.tier`: a tier's name in any case ("Pro" is pro); absent: free. Anything else is refused
    (BadRequest): a typo in Clerk's dashboard must not silently downgrade a paying user."""
    if value is None:
        return Tier.FREE.value
    known = ", ".join(tier.value for tier in Tier)
    if not isinstance(value, str) or value.strip().lower() not in Tier._value2member_map_:
        raise _malformed("data.public_metadata.tier", f"must be one of {known} (any case)")
    return value.strip().lower()


def _apply_clerk_event(delivery: dict[str, Any]) -> dict[str, Any]:
    event_type = delivery["type"]
    if event_type in PROFILE_EVENTS:
        placeholder = {"email": f"{delivery['clerkId']}@unknown"}  # a new profile without any address
        user_store.upsert_profile(user_id_for(delivery["clerkId"]), delivery["profile"], clock.now_iso(), placeholder)
        return {"status": "processed", "type": event_type}
    if event_type == "user.deleted":
        from bloxserver import cleanup  # lazily: the flow/trigger/schedule cleanup chain (cold start)

        cleanup.delete_user_and_dependents(user_id_for(delivery["clerkId"]))
        return {"status": "processed", "type": event_type}
    return {"status": "ignored", "type": event_type}


def _clerk_idempotency():
    """`_apply_clerk_event` remembered by svix-id (a replayed delivery returns the first answer, no second
    effect), and its config, which needs each invocation's Lambda context to bound in-progress records."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    from bloxserver.dal.idempotency import persistence_store

    config = IdempotencyConfig(event_key_jmespath="svix_id", expires_after_seconds=CLERK_DELIVERY_MEMORY_SECONDS)
    apply_once = idempotent_function(
        data_keyword_argument="delivery", persistence_store=persistence_store(), config=config
    )(_apply_clerk_event)
    return apply_once, config


def sync_clerk_event(raw_body: bytes, headers: dict[str, str], lambda_context: Any) -> dict[str, Any]:
    secret = get_settings().clerk_webhook_secret
    if not secret:
        raise ServiceUnavailable("Clerk webhook secret is not configured")
    problem = signatures.standard_webhooks_problem(secret, raw_body, headers)
    if problem is not None:
        raise InvalidSignature(f"Invalid webhook signature: {problem}")
    try:  # strictly UTF-8 (json.loads would take UTF-16 bytes too), nesting bounded
        event = jsonvalues.parse(raw_body.decode())
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("data"), dict):
        raise _malformed("event", "must be an object with a text `type` and an object `data`")
    data = event["data"]
    # Only what the event changes is remembered with it, not the whole (unbounded) data. Svix verifies the Standard
    # Webhooks header names too, so the delivery id may come under either.
    _text(event, "type")  # bounded: the answer remembered for the delivery names it
    delivery = {"svix_id": headers.get("svix-id") or headers["webhook-id"], "type": event["type"]}
    if event["type"].startswith("user."):
        delivery["clerkId"] = _text(data, "id", "data")
        if delivery["clerkId"] is None:
            raise _malformed("data.id", "must be text")
    if event["type"] in PROFILE_EVENTS:
        delivery["profile"] = _clerk_profile(data)
    apply_once, config = _clerk_idempotency()
    config.register_lambda_context(lambda_context)
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    try:
        return apply_once(delivery=delivery)
    except IdempotencyAlreadyInProgressError as exc:  # the same delivery, sent again while the first is applied
        raise Conflict("This delivery is being applied; send it again later") from exc
