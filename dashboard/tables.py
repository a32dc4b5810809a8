"""Tables as the pages show them: rows of dicts without the columns nobody filled, and a table test set's
rows as scored."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from backend.inspection.rows import WRONG_BACKGROUND, WRONG_TEXT, RowTable, cell_style

EMPTY = (None, "", "-", "—")


def without_empty_columns(rows: Sequence[dict[str, Any]], keep: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`rows` without the columns that are empty (None, "", "-") in every row, so the others get the
    room; the columns in `keep` stay even when empty. Column order is kept."""
    filled = {key for row in rows for key, value in row.items() if value not in EMPTY} | set(keep)
    return [{key: value for key, value in row.items() if key in filled} for row in rows]


def show_rows(table: RowTable) -> None:
    """A table's test rows as scored, the wrong ones red (as a misclassified image's tile is)."""
    import pandas as pd

    frame = pd.DataFrame(list(table.cells), columns=list(table.columns))
    wrong = list(table.wrong)
    styled = frame.style.apply(
        lambda row: [f"background-color: {WRONG_BACKGROUND}; color: {WRONG_TEXT}" if wrong[row.name] else ""] * len(row),
        axis=1).format(lambda value: value if isinstance(value, str) else f"{value:.6g}",  # 563, 0.08163: as written
                       subset=[c for c in table.columns[table.columns.index("true label") + 1:] if c != "confidence"])
    for name, rights in table.verdicts:  # compared answers: each cell green or red
        styled = styled.apply(lambda column, rights=rights: [cell_style(right) for right in rights], subset=[name])
    column_config: dict[str, Any] = {"row": st.column_config.NumberColumn("row", format="%d", pinned=True)}
    if "confidence" in frame.columns:
        column_config["confidence"] = st.column_config.NumberColumn("confidence", format="percent")
    st.dataframe(styled, hide_index=True, column_config=column_config)
