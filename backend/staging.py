"""Staging folders under the home for a deploy in progress: each names its maker, and a folder whose
maker died (a deploy killed half-way) is removed by the next deploy, so no copy of a model leaks."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .process_token import creator_gone, creator_token

STAGING_DIR = "staging"
CREATOR_FILE = "creator"


def sweep(root: Path) -> None:
    """Removes staging folders under `root` whose maker is gone."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        try:
            age = time.time() - folder.stat().st_mtime
            creator = (folder / CREATOR_FILE).read_text()
        except OSError:
            creator = ""
        if not creator and age < 60:
            continue  # just made: its maker is about to write the creator file
        if not creator or creator_gone(creator, age):
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(root: Path) -> Iterator[Path]:
    """A fresh private folder under `root`, removed afterwards; stale ones of dead makers are swept first."""
    root.mkdir(mode=0o700, exist_ok=True)
    sweep(root)
    folder = root / secrets.token_hex(8)
    folder.mkdir(mode=0o700)
    try:
        (folder / CREATOR_FILE).write_text(creator_token())
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
