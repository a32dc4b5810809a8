"""What imports and registrations refuse or clean up: IDX dims past the file, an image in a zip that
unpacks or decodes past its cap (refused before it is read whole or decoded), partial blob copies
of a killed registration; and bidirectional-control characters shown escaped."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data.idx import read_idx
from backend.data.store import import_dataset, user_catalogue
from backend.errors import IdxFormatError
from backend.inspection.evaluation import class_name
from backend.registry import ModelRegistry
from backend.shown import shown

REPO = Path(__file__).resolve().parent.parent


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes = b"") -> bytes:
    """A PNG whose header says width x height (colour type 6: RGBA), its IDAT holding `rows` deflated."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows, 9))
            + png_chunk(b"IEND", b""))


def small_png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def peak_rss_of_import(files: list[Path], root: Path) -> tuple[str, int]:
    """(the refusal's message, the peak resident memory in MiB) of an import run in a fresh process."""
    code = textwrap.dedent(f"""
        import re, sys
        from pathlib import Path
        from backend.errors import DatasetImportError
        from backend.data.store import import_dataset
        try:
            import_dataset(Path({str(root)!r}), "capped", [Path(p) for p in {[str(f) for f in files]!r}])
            message = "accepted"
        except DatasetImportError as e:
            message = str(e)
        print(message)
        # VmHWM: this process's peak since its exec (ru_maxrss would carry the forking parent's over exec)
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    message, peak = done.stdout.strip().rsplit("\n", 1)
    return message, int(peak)


def test_an_idx_file_whose_dims_overflow_is_refused_with_what_its_header_says(tmp_path):
    images = tmp_path / "images-idx3-ubyte"
    images.write_bytes(b"\x00\x00\x08\x04" + struct.pack(">4I", *[65536] * 4) + bytes(100))  # 120 bytes
    assert images.stat().st_size == 120
    labels = tmp_path / "labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes(3))
    message = ("images-idx3-ubyte is truncated: its header says 65536x65536x65536x65536 values "
               "(18446744073709551616 bytes) but only 100 bytes follow")
    with pytest.raises(IdxFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_idx(images)
    with pytest.raises(IdxFormatError, match="its header says 65536x65536x65536x65536 values"):
        import_dataset(tmp_path / "sets", "overflow", [images, labels])
    assert user_catalogue(tmp_path / "sets") == []


def test_a_zip_member_that_unpacks_past_the_image_cap_is_refused_before_it_is_read(tmp_path):
    upload = tmp_path / "padded.zip"
    with zipfile.ZipFile(upload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("0/a.png", small_png())
        with archive.open("1/b.png", "w", force_zip64=True) as member:  # a real PNG, then 496 MiB of zeros
            member.write(small_png())
            for _ in range(496):
                member.write(bytes(2**20))
    assert upload.stat().st_size < 1_000_000
    message, peak_mib = peak_rss_of_import([upload], tmp_path / "sets")
    assert message == "padded.zip: 1/b.png unpacks to 496.0 MiB: the limit for one image is 64.0 MiB"
    assert peak_mib < 250, peak_mib


def test_an_image_whose_header_says_it_decodes_past_the_cap_is_refused_before_it_is_decoded(tmp_path):
    # 5000 x 5000 RGBA: 25 million pixels (under the pixel cap), 95.4 MiB once decoded, 0.1 MB as a file.
    rows = bytes((1 + 5000 * 4) * 5000)
    upload = tmp_path / "deep.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("0/a.png", small_png())
        archive.writestr("1/b.png", png_of(5000, 5000, 8, 6, rows))
    assert upload.stat().st_size < 1_000_000
    message, peak_mib = peak_rss_of_import([upload], tmp_path / "sets")
    assert message == ("deep.zip: 1/b.png is 5000x5000 pixels of mode RGBA, 95.4 MiB once decoded: the limit for "
                       "one image is 64.0 MiB")
    assert peak_mib < 250, peak_mib


def test_partial_blob_copies_whose_writer_is_gone_are_swept_when_the_registry_opens(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    # A writer killed mid-copy, as `models register` killed: it held the partial file's lock until it died.
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(blobs / ".aaaa.killed.tmp")!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, bytes(2**20))
        print("holding", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "holding"
    alive = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, time
        fd = os.open({str(blobs / ".bbbb.writing.tmp")!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("holding", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout.readline().strip() == "holding"
        writer.kill()
        writer.wait()
        (blobs / ".cccc.young.tmp").write_bytes(b"x")  # just written, no lock: maybe an older ModelDeck's writer
        long_ago = time.time() - 3600
        for name in (".aaaa.killed.tmp", ".bbbb.writing.tmp"):
            os.utime(blobs / name, (long_ago, long_ago))
        ModelRegistry(tmp_path / "registry.sqlite3", blobs)
        assert sorted(p.name for p in blobs.iterdir()) == [".bbbb.writing.tmp", ".cccc.young.tmp"]
    finally:
        alive.kill()
        alive.wait()
        writer.kill()
        writer.wait()


def test_a_registration_leaves_no_partial_copy_and_its_blob_whole(tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(os.urandom(3 * 2**20))
    registry = ModelRegistry(tmp_path / "registry.sqlite3", tmp_path / "blobs")
    registered = registry.register("m", [model])
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [registered.files[0].sha256]


def test_bidirectional_controls_in_class_names_and_titles_are_shown_escaped(tmp_path):
    assert shown("\u202e19 times") == "\\u202e19 times" and shown("plain 19") == "plain 19"
    assert class_name(("zero", "\u202eseven\u202c"), 1) == "\\u202eseven\\u202c"
    from dashboard.common import verbatim

    assert "\u202e" not in verbatim("title \u202e19 times") and "\\u202e" in verbatim("title \u202e19 times")
    upload = tmp_path / "bidi.npz"
    np.savez(upload, X=np.zeros((2, 28, 28), np.uint8), y=np.array([0, 1]),
             class_names=np.array(["\u202e19 times", "one"]))
    home = tmp_path / "home"
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "local", "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "backend", "datasets"]
    added = subprocess.run([*cli, "add", "bidi", str(upload), "--title", "set \u202e19 times"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=120).stdout
    for output in (added.stdout, listed):
        assert "\u202e" not in output and "\\u202e19 times" in output
    as_json = json.loads(subprocess.run([*cli, "list", "--json"], env=env, capture_output=True, text=True,
                                        timeout=120).stdout)
    assert "set \u202e19 times" in [s["title"] for s in as_json]  # the data itself is kept as it came
