"""The local stand-in for Clerk: an RSA signing key, its JWKS, and dev tokens shaped like a Clerk JWT template's.

The key is kept in a file (default .venv/devstack-key.pem, mode 0600) created on first use, so the dev server and
`bloxserver token` (separate processes) sign and verify with the same key, and tokens survive restarts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from devstack.template import ROOT

DEFAULT_PORT = 3000  # of the local stack; PORT overrides it there and in `bloxserver token`
DEFAULT_KEY_PATH = ROOT / ".venv" / "devstack-key.pem"
AUDIENCE = "bloxserver-dev"
# The origin of the frontend dev server (Vite's default port), as Clerk puts it in `azp`.
AUTHORIZED_PARTY = "http://localhost:5173"
TOKEN_LIFETIME_SECONDS = 24 * 3600
TIERS = ("free", "paid", "pro", "enterprise")


def issuer_url(port: int) -> str:
    """The issuer is the dev server itself, which serves the JWKS at /.well-known/jwks.json (as Clerk does)."""
    return f"http://127.0.0.1:{port}"


class DevIssuer:
    def __init__(self, issuer: str, key_path: Path = DEFAULT_KEY_PATH) -> None:
        self.issuer = issuer
        self.key_path = key_path
        self._private_key = _load_or_create_key(key_path)
        public_jwk = json.loads(RSAAlgorithm.to_jwk(self._private_key.public_key()))
        self.key_id = _thumbprint(public_jwk)
        self._public_jwk = {**public_jwk, "kid": self.key_id, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public_jwk]}

    def token(
        self,
        sub: str,
        email: str,
        name: str | None = None,
        tier: str | None = None,
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "email": email,
            "azp": AUTHORIZED_PARTY,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
        }
        if name:
            claims["name"] = name
        if tier:
            claims["tier"] = tier
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": self.key_id})


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 key id: a new key gets a new `kid`, so a token signed by a replaced key fails on `kid`."""
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        _create_key(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _create_key(path: Path) -> None:
    """Write a new key without ever exposing a partial file: a private temp file, then a link that fails if
    another process (a parallel test worker, `bloxserver token`) created the key first."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
