"""Times for people: ages ("5 min") and friendly dates ("today 14:02", "3 days ago", "12 Nov 2026").

Times are kept as ISO 8601 strings (UTC when no zone is written); they are shown in the zone of `now`
(the machine's local zone unless a `now` is given).
"""

from __future__ import annotations

from datetime import UTC, datetime

WEEK_DAYS = 7  # from this many calendar days back, a date is shown instead of "N days ago"


def _read(iso_time: str | None) -> datetime | None:
    """The aware datetime of `iso_time` (no zone: UTC), or None when it cannot be read."""
    try:
        then = datetime.fromisoformat(iso_time or "")
    except ValueError:
        return None
    return then.replace(tzinfo=UTC) if then.tzinfo is None else then


def age(iso_time: str, now: datetime | None = None) -> str:
    """"42 s", "5 min", "3 h", "2 d" since `iso_time` ("" when it cannot be read)."""
    then = _read(iso_time)
    if then is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def friendly_time(iso_time: str | None, now: datetime | None = None, *, absolute: bool = False) -> str:
    """When `iso_time` was, as a person says it, in the zone of `now`: "just now", "5 min ago" (under an
    hour), "today 14:02", "yesterday 09:10", "3 days ago" (under a week), then "12 Nov 2026".
    With `absolute` (a document read later, where "today" would go stale): "26 Nov 2026, 14:02 UTC".
    "" when `iso_time` is empty or cannot be read; a time in the future reads as its date and time.

    Args:
        iso_time: ISO 8601 (no zone written: UTC).
        now: the moment to count from, timezone-aware (default: now, in the machine's local zone).
    """
    then = _read(iso_time)
    if then is None:
        return ""
    now = now or datetime.now().astimezone()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    then = then.astimezone(now.tzinfo)
    clock = f"{then:%H:%M}"
    if absolute:
        return f"{then.day} {then:%b %Y}, {clock} {then.tzname() or ''}".rstrip()
    seconds = (now - then).total_seconds()
    days = (now.date() - then.date()).days
    if -60 < seconds < 60:
        return "just now"
    if 0 < seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"yesterday {clock}"
    if 1 < days < WEEK_DAYS:
        return f"{days} days ago"
    if days < 0:
        return f"{then.day} {then:%b %Y}, {clock}"
    return f"{then.day} {then:%b %Y}"
