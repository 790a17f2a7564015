"""Checks of signed webhook deliveries: Clerk's (users) and webhook triggers' `config.verify` (ingress). Each check
returns what is wrong, or None; the caller picks its error (Clerk answers 400, a trigger 401: docs/api.md)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

GITHUB_SIGNATURE_PREFIX = "sha256="


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot be a Standard Webhooks signing secret (whsec_ + base64), or None."""
    from svix.webhooks import Webhook

    try:
        Webhook(secret)
    except Exception:  # a decoder's error (not base64) or the library's own (empty)
        return "must be a Standard Webhooks signing secret: whsec_ followed by base64"
    return None


def standard_webhooks_problem(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """Svix / Standard Webhooks: the `svix-*` or `webhook-*` id, timestamp (±5 min) and signature headers."""
    from svix.webhooks import Webhook, WebhookVerificationError

    try:
        Webhook(secret).verify(body, dict(headers))
    except WebhookVerificationError as exc:
        return str(exc)
    except ValueError:  # svix's own error for a signature that is not even base64 is a decoder's
        return "not a signature"
    return None


def hmac_sha256_problem(secret: str, body: bytes, signature: str | None, header: str) -> str | None:
    """GitHub's format: `<header>: sha256=<hex HMAC-SHA256 of the raw body>`."""
    if not signature:
        return f"missing {header} header"
    expected = GITHUB_SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return f"{header} does not match the body"
    return None


def header_value_problem(expected: str, given: str | None, header: str) -> str | None:
    """A shared secret sent as a header's whole value."""
    if not given:
        return f"missing {header} header"
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return f"{header} is not the expected value"
    return None
