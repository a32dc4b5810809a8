"""Seeded perturbations of a batch of images, to see how a model holds up: noise, rotation, shift, blur and
stroke thickness; and of a table's rows (`perturb_rows`): noise in units of each column's spread, and columns
set to their median.

`perturb` is pure: the same images, kind, strength and seed give the same result, and the input is never
changed. Images are ink bright on black with values in [0, 1] (MNIST's form), or in their set's own value
range, taken onto [0, 1] for the perturbation and back; pixels moved in from outside the image are black,
and results are clipped to the range. Slider ranges and curve strengths in `KINDS` are
sized for 28x28 images; `kinds_for` sizes the ones in pixels (shift, blur, thickness) for smaller images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..data.testset import TestSet
from ..errors import InvalidPerturbationError

MAX_SEED = 2**32 - 1
_SHIFT_CHUNK = 2048  # images per map_coordinates call: bounds the coordinate arrays to ~40 MB at 28x28


@dataclass(frozen=True)
class PerturbationKind:
    """One kind of perturbation, as a dashboard offers it.

    Attributes:
        name: its key in `KINDS`, the `kind` argument of `perturb`.
        label: display name.
        unit: what the strength measures.
        minimum, maximum, step: a sensible slider range.
        curve: default strengths for a robustness curve, 0 (the unperturbed baseline) included.
        random: whether the seed changes the result.
        rows: it perturbs a table's rows (`perturb_rows`), not images (`perturb`).
    """

    name: str
    label: str
    unit: str
    minimum: float
    maximum: float
    step: float
    curve: tuple[float, ...]
    random: bool
    rows: bool = False

    def snapped(self, strength: float) -> float:
        """`strength` on the slider's steps (halves up): what a slider of this kind can show."""
        return round(math.floor(strength / self.step + 0.5) * self.step, 6)

    @property
    def decimals(self) -> int:
        """Decimals a strength of this kind is shown with: as many as its step has (15°, 0.75)."""
        return max(0, -math.floor(math.log10(self.step) + 1e-9))


KINDS: dict[str, PerturbationKind] = {kind.name: kind for kind in (
    PerturbationKind("noise", "Gaussian noise", "standard deviation (share of the value range: pixels 0 to 1)",
                     0.0, 0.5, 0.01, (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5), random=True),
    PerturbationKind("rotate", "Rotation", "degrees, counter-clockwise about the centre",
                     -90.0, 90.0, 1.0, (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0), random=False),
    PerturbationKind("shift", "Shift", "pixels, each image in a random direction",
                     0.0, 8.0, 0.5, (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0), random=True),
    PerturbationKind("blur", "Blur", "Gaussian sigma in pixels",
                     0.0, 3.0, 0.05, (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), random=False),
    PerturbationKind("thickness", "Stroke thickness", "pixels: > 0 thickens (dilation), < 0 thins (erosion)",
                     -2.0, 3.0, 1.0, (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0), random=False),
    PerturbationKind("spread-noise", "Noise on the number columns", "standard deviations of each column in the test set",
                     0.0, 2.0, 0.05, (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), random=True, rows=True),
    PerturbationKind("to-median", "Columns set to their median", "columns per row, chosen at random; text to its most common",
                     0.0, 4096.0, 1.0, (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0), random=True, rows=True),
)}
IMAGE_KINDS = {name: kind for name, kind in KINDS.items() if not kind.rows}
ROW_KINDS = {name: kind for name, kind in KINDS.items() if kind.rows}


def perturb(images: np.ndarray, kind: str, strength: float, *, image_shape: tuple[int, int] | None = None,
            seed: int = 0, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A perturbed copy of a batch of images.

    Args:
        images: floats in [0, 1], either images (n, height, width) or rows (n, height*width) with `image_shape`.
        kind: one of `KINDS`:
            "noise": Gaussian noise of standard deviation `strength`, drawn from `seed`.
            "rotate": every image turned `strength` degrees counter-clockwise (as displayed) about its centre.
            "shift": every image moved `strength` pixels, each in its own direction drawn from `seed`
                (subpixel, bilinear).
            "blur": a Gaussian blur of sigma `strength` pixels.
            "thickness": grey-level dilation (`strength` > 0) or erosion (< 0) by a disc of radius
                |`strength`| pixels (a whole number; radius 1 is the 3x3 cross).
        strength: how much; 0 gives an unchanged copy.
        image_shape: (height, width) of each row; required for rows, checked for images.
        seed: the random kinds' seed; the first k images of a batch are perturbed the same as the k alone.
        value_range: (low, high) of the images' values: they are perturbed as if mapped onto [0, 1] (so a
            strength means the same on a 0-16 set as on MNIST), then clipped and mapped back.

    Returns:
        An array of the shape and dtype of `images`, values clipped to `value_range`.

    Raises:
        InvalidPerturbationError: an unknown kind, a strength the kind does not take, or images that are not a
            batch of floats (or rows without a matching `image_shape`).
    """
    spec = IMAGE_KINDS.get(kind)
    if spec is None:
        raise InvalidPerturbationError(f"unknown perturbation of images {kind!r}: choose one of {', '.join(IMAGE_KINDS)}")
    batch = _as_batch(images, image_shape)
    amount = _checked_strength(spec, strength, batch.shape[1:])
    if amount == 0 or batch.shape[0] == 0:
        return images.copy()
    low, high = (float(v) for v in value_range)
    unit = (low, high) == (0.0, 1.0)
    if not unit:
        batch = (batch - np.float32(low)) / np.float32(high - low)
    perturbed = _APPLY[kind](batch, amount, np.random.default_rng(seed))
    np.clip(perturbed, 0.0, 1.0, out=perturbed)
    if not unit:
        perturbed = perturbed * np.float32(high - low) + np.float32(low)
    return perturbed.reshape(images.shape).astype(images.dtype, copy=False)


def perturb_rows(rows: np.ndarray, kind: str, strength: float, *, reference: np.ndarray, seed: int = 0,
                 texts: Sequence[int] = ()) -> np.ndarray:
    """A perturbed copy of a table's rows (n, columns), each column on its own scale, measured on `reference`
    (the whole test set, so a few rows are perturbed as they would be within it).

    Args:
        rows: float rows.
        kind: one of `ROW_KINDS`:
            "spread-noise": Gaussian noise of `strength` standard deviations of each column (its spread in
                `reference`), drawn from `seed`; text columns unchanged.
            "to-median": in each row, `strength` columns (a whole number, chosen at random from `seed`) set to
                their median in `reference` (a text column to its most common category): as if they were not
                measured.
        strength: how much; 0 gives an unchanged copy.
        reference: the rows whose spread and medians are used (n', columns).
        seed: the random draw's seed.
        texts: the text columns (their values are indices into their categories).

    Raises:
        InvalidPerturbationError: an unknown kind, a strength it does not take, or rows that do not match.
    """
    spec = ROW_KINDS.get(kind)
    if spec is None:
        raise InvalidPerturbationError(f"unknown perturbation of rows {kind!r}: choose one of {', '.join(ROW_KINDS)}")
    if rows.ndim != 2 or reference.ndim != 2 or rows.shape[1] != reference.shape[1] or rows.dtype.kind != "f":
        raise InvalidPerturbationError(f"rows {list(rows.shape)} of {rows.dtype} do not match the reference rows "
                                       f"{list(reference.shape)}")
    columns = rows.shape[1]
    try:
        amount = float(strength)
    except (TypeError, ValueError):
        raise InvalidPerturbationError(f"{kind} strength must be a number, got {strength!r}") from None
    if not 0 <= amount <= (columns if kind == "to-median" else spec.maximum) or (kind == "to-median" and amount != round(amount)):
        upper = f"{columns} (the table's columns)" if kind == "to-median" else f"{spec.maximum:g}"
        raise InvalidPerturbationError(f"{spec.label.lower()} takes {'whole numbers ' if kind == 'to-median' else ''}"
                                       f"from 0 to {upper}, got {amount:g}")
    if amount == 0 or len(rows) == 0:
        return rows.copy()
    rng = np.random.default_rng(seed)
    if kind == "spread-noise":
        spread = reference.astype(np.float64).std(axis=0)
        spread[list(texts)] = 0.0
        return (rows + rng.standard_normal(rows.shape) * spread * amount).astype(rows.dtype)
    medians = np.median(reference, axis=0).astype(rows.dtype)
    for j in texts:
        values, counts = np.unique(reference[:, j], return_counts=True)
        medians[j] = values[int(np.argmax(counts))]
    chosen = np.argsort(rng.random(rows.shape), axis=1)[:, :int(amount)]
    perturbed = rows.copy()
    np.put_along_axis(perturbed, chosen, medians[chosen], axis=1)
    return perturbed


def _as_batch(images: np.ndarray, image_shape: tuple[int, int] | None) -> np.ndarray:
    """The images as float32 (n, height, width): a view when they are float32 already."""
    if not isinstance(images, np.ndarray) or images.dtype.kind != "f":
        what = f"an array of {images.dtype}" if isinstance(images, np.ndarray) else type(images).__name__
        raise InvalidPerturbationError(f"images must be a numpy array of floats in [0, 1], got {what}")
    shape = tuple(int(s) for s in image_shape) if image_shape is not None else None
    if images.ndim == 3:
        if shape is not None and shape != images.shape[1:]:
            raise InvalidPerturbationError(
                f"images of {images.shape[1]}x{images.shape[2]} do not match image_shape {list(shape)}")
        return images.astype(np.float32, copy=False)
    if images.ndim == 2:
        if shape is None or len(shape) != 2 or shape[0] * shape[1] != images.shape[1]:
            raise InvalidPerturbationError(
                f"rows of {images.shape[1]} values need image_shape=(height, width) with height*width = "
                f"{images.shape[1]}, got {list(shape) if shape is not None else None}")
        return images.astype(np.float32, copy=False).reshape(-1, shape[0], shape[1])
    raise InvalidPerturbationError(
        f"expected images (n, height, width) or rows (n, height*width), got an array of shape {list(images.shape)}")


def _checked_strength(spec: PerturbationKind, strength: float, shape: tuple[int, ...]) -> float:
    """`strength` as a float, once it is one the kind takes."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise InvalidPerturbationError(f"{spec.name} strength must be a number, got {strength!r}") from None
    if not math.isfinite(value):
        raise InvalidPerturbationError(f"{spec.name} strength must be a finite number, got {value}")
    if spec.name in ("noise", "shift", "blur") and value < 0:
        raise InvalidPerturbationError(f"{spec.name} strength ({spec.unit}) cannot be negative, got {value:g}")
    if spec.name == "thickness" and value != round(value):
        raise InvalidPerturbationError(f"thickness takes whole pixels (dilation > 0, erosion < 0), got {value:g}")
    largest = max(shape)
    if spec.name in ("blur", "thickness") and abs(value) > largest:
        raise InvalidPerturbationError(f"{spec.name} strength {value:g} is larger than the images ({largest} pixels): "
                                       f"at most {largest}")
    return value


def _noise(batch: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    noisy = rng.standard_normal(batch.shape, dtype=np.float32)
    noisy *= std
    noisy += batch
    return noisy


def _rotate(batch: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """One affine transform over the whole batch, the identity along the image axis (images never mix):
    output pixel p reads the input, bilinearly, at centre + R (p - centre), R turning back by the angle."""
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, cos, sin], [0.0, -sin, cos]])
    centre = np.array([0.0, (batch.shape[1] - 1) / 2, (batch.shape[2] - 1) / 2])
    return ndimage.affine_transform(batch, matrix, offset=centre - matrix @ centre, order=1, mode="constant",
                                    cval=0.0, output=np.float32)


def _shift(batch: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """Each image moved `distance` pixels at its own angle: bilinear lookups at (n, r - dy_n, c - dx_n)."""
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    n, height, width = batch.shape
    angles = rng.uniform(0.0, 2 * math.pi, size=n)
    dy, dx = distance * np.sin(angles), distance * np.cos(angles)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    shifted = np.empty_like(batch)
    for start in range(0, n, _SHIFT_CHUNK):
        stop = min(start + _SHIFT_CHUNK, n)
        coordinates = np.empty((3, stop - start, height, width))
        coordinates[0] = np.arange(stop - start)[:, None, None]
        coordinates[1] = rows - dy[start:stop, None, None]
        coordinates[2] = cols - dx[start:stop, None, None]
        ndimage.map_coordinates(batch[start:stop], coordinates, output=shifted[start:stop], order=1,
                                mode="constant", cval=0.0)
    return shifted


def _blur(batch: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    return ndimage.gaussian_filter(batch, sigma=(0.0, sigma, sigma), mode="constant", cval=0.0, output=np.float32)


def _thickness(batch: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage  # on first use: ~0.8 s of import that a CLI command need not pay
    r = abs(int(radius))
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    disc = (y * y + x * x <= r * r)[None]
    operation = ndimage.grey_dilation if radius > 0 else ndimage.grey_erosion
    return operation(batch, footprint=disc, mode="constant", cval=0.0).astype(np.float32, copy=False)


REFERENCE_SIDE = 28  # the image side KINDS are sized for
PIXEL_KINDS = ("shift", "blur", "thickness")  # strengths in pixels: scaled with the image


def kinds_for(image_shape: tuple[int, int] | None) -> dict[str, PerturbationKind]:
    """The image kinds sized for images of `image_shape` (height, width): on images smaller than 28x28 the
    kinds measured in pixels shrink with the shorter side (shift up to 8 px on 28x28 is up to 2.25 px on 8x8,
    thickness takes whole pixels, at least one either way); noise and rotation, and images of 28x28 or
    larger (or of no known shape), keep `KINDS` as they are."""
    side = min(image_shape) if image_shape else REFERENCE_SIDE
    if side >= REFERENCE_SIDE:
        return IMAGE_KINDS
    scale = side / REFERENCE_SIDE
    return {name: _scaled(kind, scale) if name in PIXEL_KINDS else kind for name, kind in IMAGE_KINDS.items()}


def kinds_of(testset: TestSet) -> dict[str, PerturbationKind]:
    """The kinds that apply to `testset`, sized for it: `kinds_for` its images, or the row kinds for a table
    (at most as many columns set to their median as it has)."""
    if not testset.is_table:
        return kinds_for(testset.image_shape)
    columns = testset.X.shape[1]
    median = ROW_KINDS["to-median"]
    sized = replace(median, maximum=float(columns), curve=tuple(v for v in median.curve if v <= columns))
    return {**ROW_KINDS, "to-median": sized}


def _scaled(kind: PerturbationKind, scale: float) -> PerturbationKind:
    if kind.name == "thickness":  # whole pixels, one at least
        low, high = -max(1, round(-kind.minimum * scale)), max(1, round(kind.maximum * scale))
        return replace(kind, minimum=float(low), maximum=float(high), curve=tuple(map(float, range(low, high + 1))))
    step = kind.step if kind.maximum * scale / kind.step >= 8 else kind.step / 2  # at least ~8 slider steps
    fine = replace(kind, step=step)
    maximum = round(math.floor(kind.maximum * scale / step + 1e-9) * step, 6)
    curve = tuple(dict.fromkeys(min(maximum, fine.snapped(v * scale)) for v in kind.curve))
    return replace(fine, maximum=maximum, curve=curve)


_APPLY: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "noise": _noise, "rotate": _rotate, "shift": _shift, "blur": _blur, "thickness": _thickness}


@dataclass(frozen=True)
class Perturbation:
    """One perturbation at one strength, as the CLI (`noise=0.2`) and the dashboard name it."""

    kind: str
    strength: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidPerturbationError(f"unknown perturbation {self.kind!r}: choose one of {', '.join(KINDS)}")

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> "Perturbation":
        """`KIND=STRENGTH`, e.g. `rotate=15`.

        Raises:
            InvalidPerturbationError: not of that form, or an unknown kind.
        """
        kind, _, strength = text.partition("=")
        try:
            return cls(kind.strip(), float(strength), seed)
        except ValueError:
            raise InvalidPerturbationError(f"a perturbation is KIND=STRENGTH (e.g. rotate=15; kinds: "
                                           f"{', '.join(KINDS)}), got {text!r}") from None

    @classmethod
    def from_key(cls, key: str) -> "Perturbation":
        """The perturbation that `key` names (`rotate=15`, `noise=0.2~3`), its strength within its kind's range.

        Raises:
            InvalidPerturbationError: not a key, an unknown kind, or a strength out of range.
        """
        text, tilde, seed = key.partition("~")
        if tilde and not (seed.isascii() and seed.isdigit() and int(seed) <= MAX_SEED):
            raise InvalidPerturbationError(f"a perturbation's seed is a whole number from 0 to {MAX_SEED} "
                                           f"(noise=0.2~3), got {key!r}")
        perturbation = cls.parse(text, int(seed or 0))
        kind = KINDS[perturbation.kind]
        if not kind.minimum <= perturbation.strength <= kind.maximum:  # NaN too
            raise InvalidPerturbationError(f"{kind.label.lower()} goes from {kind.minimum:g} to {kind.maximum:g}, got "
                                           f"{perturbation.strength:g} ({kind.unit})")
        return perturbation

    def describe(self) -> str:
        return f"{KINDS[self.kind].label.lower()} {self.strength:g}"

    @property
    def key(self) -> str:
        """A file-name-safe name: `rotate=15`."""
        return f"{self.kind}={self.strength:g}" + (f"~{self.seed}" if KINDS[self.kind].random and self.seed else "")

    def name_of(self, testset: TestSet) -> str:
        """The perturbed set's name: `<set>+<kind>=<strength>`."""
        return f"{testset.name}+{self.key}"

    def apply(self, testset: TestSet) -> TestSet:
        """The test set with every image (or row) perturbed (labels unchanged), named `name_of` it.

        Raises:
            InvalidPerturbationError: a kind for images on a table, or for rows on images.
        """
        return replace(testset, name=self.name_of(testset), X=self.applied(testset.X, testset),
                       source=f"{testset.source}, {self.describe()}")

    def applied(self, rows: np.ndarray, testset: TestSet) -> np.ndarray:
        """Some rows of `testset` (images or a table's) perturbed as the whole set would be.

        Raises:
            InvalidPerturbationError: as `apply`.
        """
        if KINDS[self.kind].rows != testset.is_table:
            raise InvalidPerturbationError(
                f"{self.describe()} perturbs {'rows of a table' if KINDS[self.kind].rows else 'images'}; test set "
                f"{testset.name!r} holds {'rows of a table' if testset.is_table else 'images'}: choose one of "
                + ", ".join(kinds_of(testset)))
        if testset.is_table:
            texts = {name for name, _ in testset.categories}
            return perturb_rows(rows, self.kind, self.strength, reference=testset.X, seed=self.seed,
                                texts=[j for j, name in enumerate(testset.feature_names or ()) if name in texts])
        return perturb(rows, self.kind, self.strength, image_shape=testset.image_shape, seed=self.seed,
                       value_range=testset.value_range)
