"""Tables as the pages show them: rows of dicts, without the columns nobody filled."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

EMPTY = (None, "", "-", "—")


def without_empty_columns(rows: Sequence[dict[str, Any]], keep: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`rows` without the columns that are empty (None, "", "-") in every row, so the others get the
    room; the columns in `keep` stay even when empty. Column order is kept."""
    filled = {key for row in rows for key, value in row.items() if value not in EMPTY} | set(keep)
    return [{key: value for key, value in row.items() if key in filled} for row in rows]
