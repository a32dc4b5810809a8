"""backend.files: the one atomic write (whole file or none, temp removed on error) and file SHA-256."""

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backend.files import TEMP_SUFFIX, atomic_write, file_sha256, readable_by_all

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_the_file_whole_with_the_mode_asked_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_bytes(b"old")
    with atomic_write(path, mode=0o400) as handle:
        handle.write(b"new ")
        handle.write(b"content")
        assert path.read_bytes() == b"old"  # not yet: readers still see the old file
    assert path.read_bytes() == b"new content"
    assert path.stat().st_mode & 0o777 == 0o400
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_a_new_file_is_private_by_default(tmp_path):
    with atomic_write(tmp_path / "record.json") as handle:
        handle.write(b"{}")
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == 0o600


def test_an_error_while_writing_leaves_the_old_file_and_removes_the_temporary_one(tmp_path):
    path = tmp_path / "results.npz"
    path.write_bytes(b"kept")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path) as handle:
        handle.write(b"half of it")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["results.npz"]


def test_an_error_before_the_first_write_creates_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "new.json"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_goes_to_temp_dir_when_given_and_never_into_the_target_folder(tmp_path):
    routes, front = tmp_path / "front" / "routes", tmp_path / "front"
    routes.mkdir(parents=True)
    with atomic_write(routes / "a.cfg", temp_dir=front) as handle:
        handle.write(b"frontend a")
        assert list(routes.iterdir()) == []
        [temporary] = [p for p in front.iterdir() if p.is_file()]
        assert temporary.name.startswith(".a.cfg.") and temporary.name.endswith(TEMP_SUFFIX)
    assert (routes / "a.cfg").read_bytes() == b"frontend a"
    assert [p.name for p in front.iterdir()] == ["routes"]


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    """A real process killed (SIGKILL) in the middle of a 4 MiB write: the name still holds the old
    file; only its `.<name>.*.tmp` remains beside it, for the owner's sweep (e.g. the registry's)."""
    path = tmp_path / "blob"
    path.write_bytes(b"old" * 1000)
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from backend.files import atomic_write
        with atomic_write(Path({str(path)!r})) as handle:
            handle.write(b"n" * (4 << 20))
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == -9
    assert path.read_bytes() == b"old" * 1000
    [left] = [p for p in tmp_path.iterdir() if p != path]
    assert left.name.startswith(".blob.") and left.name.endswith(TEMP_SUFFIX) and left.stat().st_size == 4 << 20


def test_the_handle_reads_back_what_was_written_so_a_digest_of_the_new_file_is_taken_before_it_is_in_place(tmp_path):
    content = os.urandom(3 << 20)
    with atomic_write(tmp_path / "set.npz") as handle:
        handle.write(content)
        handle.seek(0)
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    assert digest == hashlib.sha256(content).hexdigest() == file_sha256(tmp_path / "set.npz")


def test_file_sha256_is_the_sha256_of_the_file_bytes(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "model.pkl").write_bytes(b"x" * ((1 << 20) + 7))  # past one read's chunk
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
    assert file_sha256(tmp_path / "model.pkl") == hashlib.sha256(b"x" * ((1 << 20) + 7)).hexdigest()


def test_readable_by_all_opens_a_tree_written_under_a_private_umask_and_keeps_what_runs_runnable(tmp_path):
    umask = os.umask(0o077)
    try:
        (tmp_path / "tree" / "pkg").mkdir(parents=True)
        (tmp_path / "tree" / "pkg" / "module.py").write_text("x = 1\n")
        (tmp_path / "tree" / "run.sh").write_text("#!/bin/sh\n")
        (tmp_path / "tree" / "run.sh").chmod(0o700)
        (tmp_path / "elsewhere").write_text("private\n")
        (tmp_path / "tree" / "link").symlink_to(tmp_path / "elsewhere")
    finally:
        os.umask(umask)
    readable_by_all(tmp_path / "tree")
    modes = {str(p.relative_to(tmp_path)): p.lstat().st_mode & 0o777 for p in (tmp_path / "tree").rglob("*")
             if not p.is_symlink()}
    assert modes == {"tree/pkg": 0o755, "tree/pkg/module.py": 0o644, "tree/run.sh": 0o755}
    assert (tmp_path / "tree").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o600  # not followed through the link
