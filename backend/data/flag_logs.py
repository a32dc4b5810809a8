"""Gradio's flagging logs, read as flagged inputs: Gradio's Flag button writes each flagged sample to a CSV
(`.gradio/flagged/dataset1.csv`: one column per component, then `flag` when the app offers flagging options,
`username` when logged in, `timestamp`) with images saved beside it; ModelDeck turns them into cases that replay at
every version. Only files inside the log's folder are read."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaseError
from .limits import MAX_IMAGE_BYTES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
MAX_FLAGS = 10_000  # rows of one log
MAX_LOG_BYTES = 64 * 2**20


@dataclass(frozen=True)
class LoggedFlag:
    """One flagged sample of a Gradio log.

    Attributes:
        row: its line in the CSV (the header is line 1).
        image: the image file's bytes.
        flag: the flagging option chosen ("" when the app offered none).
        said: what the app answered, as Gradio logged it ("9 (80%)"; "" when it logged no label).
        username, timestamp: as logged ("" when absent).
    """

    row: int
    image: bytes
    flag: str
    said: str
    username: str
    timestamp: str

    def note(self) -> str:
        """What Gradio knew of it, for the case's note."""
        parts = [f"Gradio said {self.said}" if self.said else "", f"flag {self.flag!r}" if self.flag else "",
                 f"by {self.username}" if self.username else "", self.timestamp[:19]]
        return "flagged in Gradio: " + "; ".join(part for part in parts if part)


def read_flag_log(path: Path) -> list[LoggedFlag]:
    """The flagged samples of a Gradio flagging log that hold an image.

    Raises:
        CaseError: not a readable CSV, no image column, an image file missing or outside the log's folder, or too
            many rows; each naming the line.
    """
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            raise CaseError(f"{path} is over {MAX_LOG_BYTES // 2**20} MB: not a flagging log")
        with path.open(newline="", encoding="utf-8") as file:
            lines = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CaseError(f"cannot read {path} as a Gradio flagging log ({e})") from e
    if len(lines) < 2:
        raise CaseError(f"{path} holds no flagged sample (Gradio writes a header line, then one line per flag)")
    header, rows = lines[0], lines[1:]
    if len(rows) > MAX_FLAGS:
        raise CaseError(f"{path} holds {len(rows):,} flags: at most {MAX_FLAGS:,} are read at once")
    image_column = _image_column(header, rows)
    if image_column is None:
        raise CaseError(f"{path} has no column of image files (its columns: {', '.join(header)}): ModelDeck keeps "
                        "flagged images")
    column = {name: number for number, name in enumerate(header)}
    folder = path.resolve().parent
    flags = []
    for number, cells in enumerate(rows, 2):
        def cell(name: str, cells: list[str] = cells) -> str:
            return cells[column[name]] if name in column and column[name] < len(cells) else ""

        if image_column >= len(cells) or not cells[image_column]:
            continue  # a flag of another input (Gradio logs every component; this one was left empty)
        image = _image_file(folder, cells[image_column], number)
        flags.append(LoggedFlag(number, image, cell("flag"), _said(cells, image_column), cell("username"),
                                cell("timestamp")))
    if not flags:
        raise CaseError(f"{path} holds no flagged image")
    return flags


def _image_column(header: list[str], rows: list[list[str]]) -> int | None:
    for number in range(len(header)):
        cells = [cells[number] for cells in rows if number < len(cells) and cells[number]]
        if cells and all(cell.lower().endswith(IMAGE_SUFFIXES) for cell in cells):
            return number
    return None


def _image_file(folder: Path, logged: str, row: int) -> bytes:
    """The image a cell names: Gradio writes it relative to the app's working folder (`.gradio/flagged/digit/…`), so
    it is looked for under the log's folder with leading parts dropped, and never outside it."""
    parts = Path(logged).parts
    for start in range(len(parts)):
        candidate = (folder / Path(*parts[start:])).resolve()
        if candidate.is_relative_to(folder) and candidate.is_file():
            if candidate.stat().st_size > MAX_IMAGE_BYTES:
                raise CaseError(f"line {row}: {logged} is over {MAX_IMAGE_BYTES // 2**20} MB")
            return candidate.read_bytes()
    raise CaseError(f"line {row}: the image {logged} is not in {folder} (a flagging log is read with the images "
                    "Gradio saved beside it)")


def _said(cells: list[str], image_column: int) -> str:
    """The first cell that holds a Gradio Label's JSON ({"label": ..., "confidences": [...]}), as "9 (80%)"."""
    for number, text in enumerate(cells):
        if number == image_column or not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and "label" in value:
            label = str(value["label"])
            confidence = next((c.get("confidence") for c in value.get("confidences") or []
                               if isinstance(c, dict) and str(c.get("label")) == label), None)
            return label + (f" ({confidence:.0%})" if isinstance(confidence, (int, float)) else "")
    return ""
