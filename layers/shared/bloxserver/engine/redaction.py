"""Secret values never leave a run in text the engine writes: its log records (messages and metadata, payloads
included), its output and its error show `***` in their place."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from bloxserver.secrets import REDACTED


class Redactor:
    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            # As sent (headers, bodies), percent-encoded (URLs), and as JSON text writes it (escaped, or \\u-escaped).
            forms.update(
                (value, quote(value, safe=""), json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1])
            )
        forms.discard("")
        # Longest first, so a value that contains another is replaced whole.
        alternatives = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def text(self, text: str | None) -> str | None:
        if self._pattern is None or text is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """A log record's metadata, every string in it (keys included) redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(key): self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return value
