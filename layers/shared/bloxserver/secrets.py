"""Users' secrets: their names, hints, the `secret('NAME')` reference syntax, and resolving references for an owner.

Any function may resolve a reference (the executor for http listeners, ingress for webhook verification, alerts);
the engine uses only the syntax. The DAL (boto3) is imported on first resolution, so importing this costs nothing.
"""

from __future__ import annotations

import re
import threading
import time
from uuid import UUID

# Names as environment variables spell them; case matters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")
NAME_RULE = "1-64 letters, digits or underscores"
# KMS Encrypt takes at most 4096 bytes of plain text.
MAX_VALUE_BYTES = 4096
HINT_CHARS = 4
REDACTED = "***"
# `secret('NAME')` or `secret("NAME")`, as it appears in a template or a trigger's config.
REFERENCE = re.compile(r"""secret\(\s*(['"])(.*?)\1\s*\)""")
# A warm container keeps decrypted values this long: a changed or deleted secret is seen within this time, and a
# burst of deliveries or runs costs one KMS call per secret instead of one each.
CACHE_SECONDS = 60.0


class MissingSecret(Exception):
    """A reference names a secret its owner does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} does not exist")
        self.name = name


def hint(value: str) -> str:
    """What the API shows of a value: its last 4 characters (none of a value that short, which would be all of it)."""
    return value[-HINT_CHARS:] if len(value) > HINT_CHARS else ""


def referenced_name(text: str) -> str | None:
    """The name when `text` is a whole reference (`secret('NAME')`, spaces around allowed), else None."""
    match = REFERENCE.fullmatch(text.strip())
    return match.group(2) if match else None


_cache: dict[tuple[str, str], tuple[float, str]] = {}
_cache_lock = threading.Lock()


def secret_values(user_id: UUID | str, names: frozenset[str]) -> dict[str, str]:
    """The owner's values of the secrets named, from this container's short cache or decrypted now; names the owner
    has no secret for are absent."""
    from bloxserver.dal import secrets as secret_store

    now = time.monotonic()
    values: dict[str, str] = {}
    with _cache_lock:
        for name in names:
            cached = _cache.get((str(user_id), name))
            if cached is not None and cached[0] > now:
                values[name] = cached[1]
    missing = frozenset(names) - values.keys()
    if missing:
        fetched = secret_store.get_secret_values(user_id, missing)
        with _cache_lock:
            if len(_cache) > 10_000:
                _cache.clear()
            for name, value in fetched.items():
                _cache[(str(user_id), name)] = (now + CACHE_SECONDS, value)
        values.update(fetched)
    return values


def resolve(user_id: UUID | str, text: str) -> str:
    """`text` itself, or the owner's secret value when it is a reference (`secret('NAME')`); MissingSecret when the
    owner has no such secret."""
    name = referenced_name(text)
    if name is None:
        return text
    value = secret_values(user_id, frozenset({name})).get(name)
    if value is None:
        raise MissingSecret(name)
    return value
