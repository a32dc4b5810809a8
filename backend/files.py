"""Files on disk: written whole (a reader sees the old file or the new one, never part of either), locked, their
SHA-256, and trees made readable by all (for an image whose server runs as another user)."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_write(path: Path, *, mode: int = 0o600, temp_dir: Path | None = None) -> Iterator[io.BufferedRandom]:
    """Yields a handle (read and write, binary) on a new temporary file `.<name>.*.tmp` beside `path`;
    when the block ends, the file is flushed and fsynced, renamed over `path`, and the folder fsynced,
    so `path` is the whole new file even after a crash. On any error the temporary file is removed and
    `path` is left as it was.

    Args:
        mode: the new file's permission bits (the umask does not apply).
        temp_dir: the temporary file's folder instead of `path`'s (same filesystem), for a folder whose
            every file is read by someone else.
    """
    fd, tmp = tempfile.mkstemp(dir=temp_dir or path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "w+b") as handle:
            if mode != 0o600:  # mkstemp's
                os.fchmod(fd, mode)
            yield handle
            handle.flush()
            os.fsync(fd)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # the rename itself
    finally:
        os.close(folder)


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at `path`, as hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def readable_by_all(root: Path) -> None:
    """Gives `root` and every folder under it mode 755, and every file 644 (755 where its owner may run it),
    whatever the umask they were written under. Symbolic links are left as they are."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Holds an exclusive lock on the file `lock_path` (made when missing) for the block: one process at a time."""
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
