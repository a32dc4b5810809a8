"""A drawn or uploaded digit turned into what a model expects, the way its test set's digits were made.

MNIST's digits were fitted into a 20x20 box (aspect ratio kept, antialiased), then placed in a 28x28
field so that their centre of mass sits at the centre: in the 10k test set the centre of mass is at
(14.0, 14.0) to within half a pixel and the ink's longer side is 20 pixels. `mnist_input` does the same;
`model_input` does it for any `InputForm`, such as scikit-learn's 8x8 digits in 0-16, whose ink fills the
8 rows (`form_of` measures a set's form):

    decode -> grayscale (alpha composited) -> ink bright on black, 0 to 1 -> specks dropped -> crop to the ink
           -> longer side to `box` pixels (within height x width) -> centre of mass to `centre`
           -> values onto the model's range

Not handled: uneven lighting (a shadow across a photo can count as ink), several digits in one image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..errors import ImageDecodeError, NothingDrawnError

INK_FRACTION = 0.1
"""A pixel belongs to the ink's bounding box when brighter than this fraction of the brightest ink."""
MIN_CONTRAST = 0.1
"""Ink must stand out this much (on a 0 to 1 scale) above the background, or nothing was drawn."""
NOISE_SIGMAS = 3.0
"""The background level is the border's median plus this many (robust) standard deviations of the border,
so the grain of a photo's paper does not count as ink."""
SPECK_FRACTION = 0.05
"""Pieces of ink with less than this fraction of the largest piece's ink are specks (dust, noise): dropped."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
_MAD_TO_STD = 1.4826  # median absolute deviation -> standard deviation, for normal noise


FORM_SAMPLE = 500  # images of a set `form_of` measures


@dataclass(frozen=True)
class InputForm:
    """What a model's images look like: what a drawing or a photo is made into.

    Attributes:
        shape: (height, width) of the image.
        box: the ink's longer side, in pixels.
        centre: (row, column) where the ink's centre of mass sits.
        value_range: (low, high): black is low, the brightest ink high.
    """

    shape: tuple[int, int]
    box: int
    centre: tuple[float, float]
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if not 1 <= self.box <= max(self.shape):
            raise ValueError(f"box must be between 1 and size ({max(self.shape)}), got {self.box}")


MNIST_FORM = InputForm((28, 28), 20, (14.0, 14.0))


def form_of(images: np.ndarray, image_shape: tuple[int, int], value_range: tuple[float, float]) -> InputForm:
    """The form of a set's images (rows, or (n, height, width)) on `value_range`, measured on the first
    FORM_SAMPLE of them: the medians of the ink's longer side and of its centre of mass. A set without
    ink: MNIST's proportions on its shape."""
    height, width = image_shape
    low, high = value_range
    batch = np.asarray(images[:FORM_SAMPLE], dtype=np.float32).reshape(-1, height, width)
    ink = (batch - np.float32(low)) / np.float32(high - low) if high > low else np.zeros_like(batch)
    peaks = ink.max(axis=(1, 2))
    inked = peaks > 0
    ink, peaks = ink[inked], peaks[inked]
    if not len(ink):
        side = max(1, round(min(image_shape) * MNIST_FORM.box / MNIST_FORM.shape[0]))
        return InputForm(image_shape, side, (height / 2, width / 2), value_range)
    mask = ink > INK_FRACTION * peaks[:, None, None]
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    extent = np.maximum(_span(rows), _span(cols))
    mass = ink.sum(axis=(1, 2))
    centre_row = (ink.sum(axis=2) * np.arange(height)).sum(axis=1) / mass
    centre_col = (ink.sum(axis=1) * np.arange(width)).sum(axis=1) / mass
    return InputForm(image_shape, int(np.median(extent)),
                     (float(np.median(centre_row)), float(np.median(centre_col))), value_range)


def _span(marked: np.ndarray) -> np.ndarray:
    """Per row of `marked` (n, length), the distance from its first to its last True, both counted."""
    length = marked.shape[1]
    return length - marked[:, ::-1].argmax(axis=1) - marked.argmax(axis=1)


@dataclass(frozen=True)
class PreparedDigit:
    """An image ready to score.

    Attributes:
        pixels: float32 (height, width), ink bright on black, values in [0, 1]: what is shown.
        row: the same pixels row-major on the model's value range, float32 (height*width,): what gets sent.
        inverted: the image had a light background (dark ink), so it was inverted.
        ink_box: (left, top, right, bottom) of the ink in the original image, right and bottom exclusive.
    """

    pixels: np.ndarray
    row: np.ndarray
    inverted: bool
    ink_box: tuple[int, int, int, int]


def mnist_input(image: np.ndarray | bytes, *, size: int = 28, box: int = 20) -> PreparedDigit:
    """Turns a drawing, a scan or a photo of one digit into MNIST's form.

    Args:
        image: an array (height x width, x 2 gray+alpha, x 3 RGB or x 4 RGBA; integers read as 0-255,
            uint16 as 0-65535, floats as 0-1 or 0-255) or the bytes of an image file (PNG, JPEG, ...).
            Transparent pixels are background: a canvas's strokes may be any colour.
        size: side of the square result (28 for MNIST).
        box: the ink's longer side in the result (20 for MNIST).

    Returns:
        The prepared digit, with where its ink was found.

    Raises:
        ImageDecodeError: the bytes are not an image file, or the array is not an image.
        NothingDrawnError: no ink stands out from the background (an empty canvas, a uniform picture).
        ValueError: `box` is not between 1 and `size`.
    """
    if not 1 <= box <= size:
        raise ValueError(f"box must be between 1 and size ({size}), got {box}")
    return model_input(image, InputForm((size, size), box, (size / 2, size / 2)))


def model_input(image: np.ndarray | bytes, form: InputForm = MNIST_FORM) -> PreparedDigit:
    """Turns a drawing, a scan or a photo of one digit into `form`: as `mnist_input` (same `image` and
    errors), in `form.shape`, its ink's longer side `form.box` (within the shape, aspect ratio kept), its
    centre of mass at `form.centre`, sent on `form.value_range`."""
    array = decode_image(image) if isinstance(image, bytes | bytearray | memoryview) else _checked_array(image)
    ink, inverted = _ink(grayscale(array))
    ink = _without_specks(ink)
    left, top, right, bottom = _ink_box(ink)
    pixels = _centred(_fitted(ink[top:bottom, left:right], form.box, form.shape), form.shape, form.centre)
    low, high = form.value_range
    row = pixels.reshape(-1) if (low, high) == (0.0, 1.0) else (low + pixels.reshape(-1) * (high - low))
    return PreparedDigit(pixels=pixels, row=row.astype(np.float32, copy=False), inverted=inverted,
                         ink_box=(left, top, right, bottom))


def decode_image(data: bytes | bytearray | memoryview) -> np.ndarray:
    """The pixels of an image file, upright (EXIF orientation applied).

    Args:
        data: the file's bytes.

    Returns:
        uint8 (height, width) for an opaque image, (height, width, 4) RGBA when it has transparency;
        uint16, int32 or float32 arrays for 16-bit, 32-bit and floating-point files.

    Raises:
        ImageDecodeError: the bytes are not an image Pillow can read, saying what arrived.
    """
    from PIL import Image, ImageOps

    raw = bytes(data)
    if not raw:
        raise ImageDecodeError("cannot read an image from 0 bytes: upload a PNG or JPEG file")
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            img = ImageOps.exif_transpose(opened)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                return np.asarray(img.convert("RGBA"))
            if img.mode.startswith("I") or img.mode == "F":
                return np.asarray(img)
            return np.asarray(img.convert("L"))
    except Exception as e:  # Pillow raises many kinds on malformed files: all mean "not a readable image"
        raise ImageDecodeError(
            f"cannot read the {len(raw):,} bytes received (starting {raw[:12]!r}) as an image: "
            f"{'not a PNG or JPEG file' if 'cannot identify image file' in str(e) else e}; upload a PNG or JPEG file"
        ) from e


def _checked_array(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageDecodeError(f"expected an image as a numpy array or the bytes of a file, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.size == 0 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (2, 3, 4))):
        raise ImageDecodeError(
            f"cannot read an array of shape {list(image.shape)} as an image: expected height x width, "
            "with 1, 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels")
    if image.dtype.kind not in "biuf":
        raise ImageDecodeError(f"cannot read an array of {image.dtype} as an image: expected numbers")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ImageDecodeError("cannot read the image: it holds NaN or infinite values")
    return image


def _unit_range(array: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: bools as 0/1, uint16 over 65535, floats in [0, 1] as they are, values in
    [0, 255] over 255, anything else stretched from its minimum to its maximum."""
    values = array.astype(np.float32)
    if array.dtype == np.uint16:
        return values / 65535.0
    if array.dtype.kind == "b":
        return values
    lo, hi = float(values.min()), float(values.max())
    if array.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return values
    if lo >= 0.0 and hi <= 255.0:
        return values / 255.0
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def grayscale(array: np.ndarray) -> np.ndarray:
    """Luma in [0, 1]; transparent pixels become background (see `_composite`)."""
    values = _unit_range(array)
    if values.ndim == 2:
        return values
    channels = values.shape[2]
    gray = values[..., :3] @ _LUMA if channels >= 3 else values[..., 0]
    return _composite(gray, values[..., -1]) if channels in (2, 4) else gray


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gray over a backdrop by alpha: white under dark strokes, black under light ones, so a canvas's
    strokes stand out whatever their colour (on white alone, white strokes would vanish)."""
    if float(alpha.min()) >= 1.0:
        return gray
    covered = float(alpha.sum())
    stroke = float((gray * alpha).sum()) / covered if covered > 0 else 0.0
    backdrop = 0.0 if stroke > 0.5 else 1.0
    return gray * alpha + backdrop * (1.0 - alpha)


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _ink(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Ink bright on black, from 0 (background and its noise) to 1 (the brightest ink), and whether the
    image was inverted (its border, the background, is light)."""
    inverted = bool(np.median(_border(gray)) > 0.5)
    if inverted:
        gray = 1.0 - gray
    border = _border(gray)
    median = float(np.median(border))
    floor = median + NOISE_SIGMAS * _MAD_TO_STD * float(np.median(np.abs(border - median)))
    peak = float(gray.max())
    if peak - floor < MIN_CONTRAST:
        height, width = gray.shape
        background = "light" if inverted else "dark"
        raise NothingDrawnError(
            f"nothing drawn: no pixel of the {width}x{height} image stands out from its {background} background "
            f"by more than {MIN_CONTRAST:g} (on a 0 to 1 scale); draw a digit, or upload a picture of one")
    return np.clip((gray - floor) / (peak - floor), 0.0, 1.0), inverted


def _without_specks(ink: np.ndarray) -> np.ndarray:
    """`ink` with the pieces (8-connected, above INK_FRACTION of the brightest) that hold less than
    SPECK_FRACTION of the largest piece's ink set to 0."""
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    mask = ink > INK_FRACTION * float(ink.max())
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return ink
    mass = np.asarray(ndimage.sum_labels(ink, labels, index=np.arange(1, count + 1)))
    speck = np.concatenate([[False], mass < SPECK_FRACTION * mass.max()])
    return np.where(speck[labels], 0.0, ink).astype(np.float32, copy=False)


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), exclusive, of the pixels above INK_FRACTION of the brightest."""
    rows, cols = np.nonzero(ink > INK_FRACTION * float(ink.max()))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def _fitted(ink: np.ndarray, box: int, shape: tuple[int, int]) -> np.ndarray:
    """The ink resized (Lanczos, antialiased) so its longer side is `box` (less where the field of
    `shape` is narrower), brightest pixel 1."""
    from PIL import Image

    height, width = ink.shape
    scale = min(box / max(height, width), shape[0] / height, shape[1] / width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32)).resize(target, Image.Resampling.LANCZOS)
    fitted = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    peak = float(fitted.max())
    return fitted / peak if peak > 0 else fitted


def _centred(digit: np.ndarray, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """`digit` in a black field of `shape`, moved by whole pixels so its centre of mass is at `centre`
    ((size/2, size/2) for MNIST); never so far that ink leaves the field."""
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    height, width = digit.shape
    cy, cx = ndimage.center_of_mass(digit)
    top = int(np.clip(np.floor(centre[0] - cy + 0.5), 0, shape[0] - height))
    left = int(np.clip(np.floor(centre[1] - cx + 0.5), 0, shape[1] - width))
    pixels = np.zeros(shape, dtype=np.float32)
    pixels[top:top + height, left:left + width] = digit
    return pixels
