"""Names and descriptions people read in lists, logs and e-mails: printable text only (docs/security.md, "Input
checks"). A control character can rewrite a terminal or log line (ANSI escapes, carriage returns) and a blank
name cannot be told apart from another."""

from __future__ import annotations

import unicodedata

from bloxserver.errors import ValidationFailed

# Descriptions are free text: line breaks and tabs are the only control characters they may hold.
DESCRIPTION_LAYOUT = frozenset("\n\r\t")


def _problem(value: str, *, is_name: bool) -> str | None:
    allowed = frozenset() if is_name else DESCRIPTION_LAYOUT
    if any(unicodedata.category(char) == "Cc" and char not in allowed for char in value):
        allowed_note = "" if is_name else " other than line breaks and tabs"
        return f"must not contain control characters{allowed_note}"
    # Invisible format characters (zero-width spaces, direction marks) count as blank too.
    if is_name and all(char.isspace() or unicodedata.category(char) == "Cf" for char in value):
        return "must not be blank"
    return None


def check_display_text(names: dict[str, str | None], descriptions: dict[str, str | None] | None = None) -> None:
    """Raises ValidationFailed (422) naming every field (location → value; None: not given) that is not printable
    text, or a blank name."""
    details = {
        location: problem
        for fields, is_name in ((names, True), (descriptions or {}, False))
        for location, value in fields.items()
        if value is not None and (problem := _problem(value, is_name=is_name)) is not None
    }
    if details:
        raise ValidationFailed("Request validation failed", details)
