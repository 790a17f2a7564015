"""Who is calling: the verified JWT claims that API Gateway's authorizer put in the event.

In AWS the HTTP API's JWT authorizer has already checked signature, issuer, audience and expiry; the local stack
does the same check before it builds the event. Here we only read the claims, refuse an event that carries none,
and check `azp` against the authorized parties (API Gateway does not).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from bloxserver.contract import Tier
from bloxserver.errors import Unauthorized
from bloxserver.settings import get_settings

# Fixed namespace: a Clerk `sub` always maps to the same user id, so no lookup is needed to find a user's items.
USER_ID_NAMESPACE = uuid.UUID("6b1d5b0e-3c55-4a4e-9a0c-b10c5e7e0001")


def user_id_for(clerk_id: str) -> uuid.UUID:
    return uuid.uuid5(USER_ID_NAMESPACE, clerk_id)


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    clerk_id: str
    email: str
    name: str | None
    avatar_url: str | None
    tier_claim: Tier | None  # a Clerk JWT template may add `tier`; else the stored user's tier applies
    issued_at: int = 0  # the token's `iat`: how fresh its tier claim is

    def provisioned_profile(self, now: str) -> dict[str, Any]:
        """The profile fields a first write on the caller's behalf provisions (an insert counted on the profile)."""
        return {
            "id": str(self.user_id),
            "clerkId": self.clerk_id,
            "email": self.email,
            "name": self.name,
            "avatarUrl": self.avatar_url,
            "tierAsOf": self.issued_at if self.tier_claim else None,
            "createdAt": now,
        }


def claims_from_event(event: dict[str, Any]) -> dict[str, Any] | None:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims")
    return claims if isinstance(claims, dict) else None


def _epoch_seconds(claim: Any) -> int:
    """A numeric claim as a number: API Gateway hands the authorizer's claims to the function as strings."""
    try:
        return int(float(claim))
    except (TypeError, ValueError, OverflowError):
        return 0


# Production without authorized parties would take a token Clerk issued to any frontend of the instance: refused.
UNCONFIGURED_PARTIES = (
    "The API is not configured: the AuthorizedParties parameter is empty in production; set it to the "
    "frontend's origins (README, Deploy)"
)


def principal_from_claims(claims: dict[str, Any] | None) -> Principal:
    settings = get_settings()
    parties = settings.authorized_parties
    if not parties and settings.is_production:
        raise Unauthorized(UNCONFIGURED_PARTIES)
    if not claims:
        raise Unauthorized("Missing authentication token")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("Invalid token: missing subject")
    if parties and claims.get("azp") not in parties:
        raise Unauthorized("Invalid token: unauthorized party")
    tier_value = claims.get("tier")
    tier = Tier(tier_value) if tier_value in Tier._value2member_map_ else None
    return Principal(
        user_id=user_id_for(sub),
        clerk_id=sub,
        email=str(claims.get("email") or f"{sub}@unknown"),
        name=claims.get("name") or None,
        avatar_url=claims.get("image_url") or None,
        tier_claim=tier,
        issued_at=_epoch_seconds(claims.get("iat")),
    )
