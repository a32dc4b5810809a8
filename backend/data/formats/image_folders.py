"""One .zip of PNG/JPEG images in one folder per class (folder name = class name), read into MNIST's form."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ...errors import DatasetImportError, UserImageError
from ...words import count
from .. import limits
from ..preprocess import decode_image, grayscale, mnist_input
from .base import RawSet, amount, checked_members, natural_key

MNIST_SIDE = 28
MIN_RESIZED_SIDE = 20
"""An image that goes through `mnist_input` must have a longer side of at least MNIST's 20-pixel digit box."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_IMAGE_HEAD_BYTES = 256 * 1024  # enough for the header of a PNG or JPEG (EXIF included) to give its size


def read_image_folders(paths: Sequence[Path]) -> RawSet:
    """The images of a zip as rows in [0, 1], labelled by their folders (classes sorted naturally, so "2" <
    "10"; one common top folder stripped; hidden files, __MACOSX and files that are not PNG/JPEG ignored).
    When every image is 28x28 it is taken as it is, in grayscale, inverted when its border is light (ink
    bright on black, as MNIST's); otherwise each goes through `preprocess.mnist_input` (ink cropped, fitted
    into a 20-pixel box, centred by mass in 28x28, as MNIST's digits were made).

    Raises:
        DatasetImportError: not a readable zip, a bomb, a path leaving the archive, no images, an image
            outside a class folder, too large, unreadable, blank, or too small to resize.
    """
    (path,) = paths
    try:
        with zipfile.ZipFile(path) as archive:
            members, ignored = _class_members(checked_members(archive, path.name), path.name)
            return _zip_images(archive, path.name, members, ignored)
    except (DatasetImportError, MemoryError):
        raise
    except Exception as e:  # zipfile raises many kinds on a damaged archive (BadZipFile, zlib.error, ...)
        raise DatasetImportError(f"cannot read {path.name} as a zip archive: {e}") from e


def _class_members(infos: list[zipfile.ZipInfo], zip_name: str
                   ) -> tuple[list[tuple[str, zipfile.ZipInfo]], int]:
    """(class folder, entry) of each image, and how many other files were ignored."""
    files: list[tuple[list[str], zipfile.ZipInfo]] = []
    for info in infos:
        parts = _safe_parts(info.filename, zip_name)
        if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        files.append((parts, info))
    images = [(parts, info) for parts, info in files if PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        what = f"{len(files):,} other files" if files else "it is empty"
        raise DatasetImportError(
            f"{zip_name} holds no PNG or JPEG images ({what}): put each class's images in a folder named "
            "after the class")
    if len({parts[0] for parts, _ in images}) == 1 and all(len(parts) >= 3 for parts, _ in images):
        images = [(parts[1:], info) for parts, info in images]  # one common top folder
    stray = next((info.filename for parts, info in images if len(parts) != 2), None)
    if stray is not None:
        raise DatasetImportError(
            f"{zip_name}: {stray} is not directly in a class folder; expected <class>/<image>.png for every "
            "image (all under one top folder, or none)")
    return [(parts[0], info) for parts, info in images], len(files) - len(images)


def _safe_parts(filename: str, zip_name: str) -> list[str]:
    """The entry's path parts; a path that would leave the archive's folder is refused."""
    name = filename.replace("\\", "/")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        raise DatasetImportError(
            f"{zip_name} holds {filename!r}, a path outside the archive's folder: refused; rebuild the zip "
            "with relative paths")
    return parts


def _zip_images(archive: zipfile.ZipFile, zip_name: str, members: list[tuple[str, zipfile.ZipInfo]],
                ignored: int) -> RawSet:
    """The images' sizes (from their headers) decide how all of them are read: while every image so far is
    28x28 it is read as it is in the same pass; once one is not, a second pass resizes them all."""
    rows = np.empty((len(members), MNIST_SIDE * MNIST_SIDE), dtype=np.float32)
    inverted, as_they_are = 0, True
    sizes = []
    for i, (_, info) in enumerate(members):
        label = f"{zip_name}: {info.filename}"
        raw = _image_member(archive, info, label)
        sizes.append(_image_size(raw, label))
        as_they_are = as_they_are and sizes[-1] == (MNIST_SIDE, MNIST_SIDE)
        if as_they_are:
            rows[i], was_inverted = _as_is(raw, label)
            inverted += was_inverted
    if not as_they_are:
        for (_, info), (height, width) in zip(members, sizes, strict=True):
            if max(height, width) < MIN_RESIZED_SIDE:
                raise DatasetImportError(
                    f"{zip_name}: {info.filename} is {width}x{height}, too small to resize into MNIST's form "
                    f"(a longer side of at least {MIN_RESIZED_SIDE} pixels, MNIST's digit box); a zip whose "
                    f"images are all {MNIST_SIDE}x{MNIST_SIDE} is taken as it is, and images of another size "
                    "can be kept as they are in an .npz")
        inverted = 0
        for i, (_, info) in enumerate(members):
            rows[i], was_inverted = _resized(archive.read(info), f"{zip_name}: {info.filename}")
            inverted += was_inverted
    classes = sorted({folder for folder, _ in members}, key=natural_key)
    index = {folder: i for i, folder in enumerate(classes)}
    y = np.array([index[folder] for folder, _ in members], dtype=np.int64)
    how = (f"{MNIST_SIDE}x{MNIST_SIDE} taken as they are" if as_they_are
           else f"resized to MNIST's {MNIST_SIDE}x{MNIST_SIDE} form by preprocess.mnist_input")
    source = (f"{zip_name}: {count(len(members), 'image')} in {count(len(classes), 'folder')} ({how}; "
              f"{count(inverted, 'light-background image')} inverted)")
    if ignored:
        source += f"; {count(ignored, 'other file')} ignored"
    return RawSet(rows, y, tuple(classes), zip_name, source, unit=True)


def _image_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """The bytes of one image in a zip, once its unpacked size and the size its header says it decodes
    to are under MAX_IMAGE_BYTES (the header is read first: nothing large is unpacked or decoded before)."""
    if info.file_size > limits.MAX_IMAGE_BYTES:
        raise DatasetImportError(f"{label} unpacks to {amount(info.file_size)}: the limit for one image is "
                                 f"{amount(limits.MAX_IMAGE_BYTES)}")
    with archive.open(info) as member:
        head = member.read(_IMAGE_HEAD_BYTES)
    if len(head) == info.file_size:
        return head
    try:
        header = _image_header(head)
    except Exception:  # the header goes on past the start read: the whole file is checked next
        header = None
    if header is not None:
        _check_image_caps(*header, label)
    return archive.read(info)


def _image_header(raw: bytes) -> tuple[int, int, str, int]:
    """(width, height, mode, bytes its decoded pixels take) from an image's header, without decoding it.
    Raises what Pillow raises for a file it cannot read."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        per_band = 4 if image.mode in ("I", "F") else 2 if ";16" in image.mode else 1
        width, height = image.size
        return width, height, image.mode, width * height * len(image.getbands()) * per_band


def _check_image_caps(width: int, height: int, mode: str, decoded: int, label: str) -> None:
    if width * height > limits.MAX_IMAGE_PIXELS:
        raise DatasetImportError(
            f"{label} is {width}x{height} pixels: the limit is {limits.MAX_IMAGE_PIXELS:,} pixels per image")
    if decoded > limits.MAX_IMAGE_BYTES:
        raise DatasetImportError(
            f"{label} is {width}x{height} pixels of mode {mode}, {amount(decoded)} once decoded: the limit for "
            f"one image is {amount(limits.MAX_IMAGE_BYTES)}")


def _image_size(raw: bytes, label: str) -> tuple[int, int]:
    """(height, width) from the image's header, without decoding its pixels."""
    try:
        header = _image_header(raw)
    except Exception as e:  # Pillow raises many kinds on malformed files: all mean "not a readable image"
        raise DatasetImportError(
            f"{label} is not an image that can be read ({len(raw):,} bytes starting {raw[:8]!r}): {e}") from e
    _check_image_caps(*header, label)
    return header[1], header[0]


def _as_is(raw: bytes, label: str) -> tuple[np.ndarray, bool]:
    """A 28x28 image as a row in [0, 1], ink bright on black (inverted when its border is light)."""
    pixels = _decoded(raw, label)
    if pixels.dtype == np.uint8 and pixels.ndim == 2:  # 8-bit gray: invert in integers, so it stays exact
        inverted = bool(np.median(_border(pixels)) > 127.5)
        values = (255 - pixels if inverted else pixels).astype(np.float32) / np.float32(255.0)
    else:
        values = grayscale(pixels)
        inverted = bool(np.median(_border(values)) > 0.5)
        values = 1.0 - values if inverted else values
    return values.reshape(-1), inverted


def _resized(raw: bytes, label: str) -> tuple[np.ndarray, bool]:
    try:
        digit = mnist_input(raw, size=MNIST_SIDE)
    except UserImageError as e:
        raise DatasetImportError(f"{label}: {e}") from e
    return digit.row, digit.inverted


def _decoded(raw: bytes, label: str) -> np.ndarray:
    try:
        return decode_image(raw)
    except UserImageError as e:
        raise DatasetImportError(f"{label}: {e}") from e


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
