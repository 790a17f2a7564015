"""Timestamps as the API and the table store them: ISO-8601 UTC, fixed width, so they sort as strings."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wire_iso(moment: datetime) -> str:
    """A timestamp as the API's models write one (the fraction of a second only when it is not zero), for values
    an answer carries outside a model, such as an error's details. Stored timestamps use `iso` (fixed width)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(utc_now())


def parse_iso(moment_iso: str) -> datetime:
    """A timestamp as `iso` writes it, back to an aware datetime (3.11's fromisoformat needs an explicit offset)."""
    return datetime.fromisoformat(moment_iso.replace("Z", "+00:00"))
