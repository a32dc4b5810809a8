"""Human-readable ages."""

from __future__ import annotations

from datetime import UTC, datetime


def age(iso_time: str, now: datetime | None = None) -> str:
    """"42 s", "5 min", "3 h", "2 d" since `iso_time` ("" when it cannot be read)."""
    try:
        then = datetime.fromisoformat(iso_time)
    except ValueError:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
