"""The HTTP API JWT authorizer, locally: the checks API Gateway makes before it invokes a protected route."""

from __future__ import annotations

import json
from typing import Any

import jwt


class Unauthorized(Exception):
    """The token was refused; the message says why (API Gateway itself only answers "Unauthorized")."""


class JwtAuthorizer:
    """Mirrors API Gateway's JWT authorizer: the token (raw or after "Bearer ") from the identity source, an RSA
    signature by a key of the issuer's JWKS chosen by `kid`, `iss`, `aud` (or `client_id` when there is no `aud`)
    in the audience list, and `exp`, `nbf`, `iat` against the clock."""

    def __init__(self, identity_source: str, issuer: str, audience: list[str], jwks: dict[str, Any]) -> None:
        prefix = "$request.header."
        if not identity_source.startswith(prefix):
            raise ValueError(f"the local authorizer reads tokens from headers only, not {identity_source}")
        self.identity_header = identity_source[len(prefix):].lower()
        self.issuer = issuer
        self.audience = audience
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks).keys}

    def claims(self, identity: str | None) -> dict[str, Any]:
        """The verified claims of the token in `identity` (the identity source header's value)."""
        if not identity:
            raise Unauthorized("Missing authentication token")
        token = identity.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from None
        key = self._keys.get(header.get("kid"))
        if key is None:
            raise Unauthorized("Invalid token: signing key not found in the issuer's JWKS")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "RS384", "RS512"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token has expired") from None
        except jwt.InvalidIssuerError:
            issued_by = jwt.decode(token, options={"verify_signature": False}).get("iss")
            raise Unauthorized(
                f"Invalid token: issued by {issued_by!r}, not by this stack ({self.issuer!r}): "
                "mint it with `bloxserver token ... --port` set to this stack's port"
            ) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from None
        self._check_audience(claims)
        return claims

    def _check_audience(self, claims: dict[str, Any]) -> None:
        if "aud" in claims:
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        else:
            audiences = [claims.get("client_id")]
        if not any(audience in self.audience for audience in audiences):
            raise Unauthorized("Invalid token: audience not accepted")


def claims_as_api_gateway_passes_them(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands claims to the integration as strings: numbers and booleans in their JSON spelling,
    arrays as "[a b]". Doing the same locally keeps code from relying on types it will not get in AWS."""
    return {name: _claim_string(value) for name, value in claims.items()}


def _claim_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_claim_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
