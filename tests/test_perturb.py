"""Seeded perturbations: shapes and values kept in range, identity at 0, reproducible, each doing what it says."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.data.builtin import load_mnist_test
from backend.errors import InvalidPerturbationError
from backend.inspection.perturb import IMAGE_KINDS as KINDS  # the table kinds: tests/test_table_sets.py
from backend.inspection.perturb import Perturbation, kinds_for, perturb

SHAPE = (28, 28)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """64 real MNIST test digits as rows (64, 784), float32 in [0, 1]."""
    return load_mnist_test().X[:64].copy()


def blobs(n: int = 8, centre: tuple[float, float] = (13.5, 13.5), sigma: float = 2.0) -> np.ndarray:
    """n identical Gaussian blobs (n, 28, 28), peak 1, well inside the image."""
    y, x = np.mgrid[0:28, 0:28]
    blob = np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)
    return np.repeat(blob[None], n, axis=0)


def centres(images: np.ndarray) -> np.ndarray:
    return np.array([ndimage.center_of_mass(image) for image in images])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_keeps_shape_dtype_and_range_and_leaves_the_input_alone(digits, kind):
    strength = max(KINDS[kind].curve, key=abs)
    before = digits.copy()
    rows = perturb(digits, kind, strength, image_shape=SHAPE)
    assert rows.shape == digits.shape and rows.dtype == np.float32
    assert rows.min() >= 0.0 and rows.max() <= 1.0
    assert not np.array_equal(rows, digits)
    assert np.array_equal(digits, before)
    images = digits.reshape(-1, 28, 28).astype(np.float64)
    perturbed = perturb(images, kind, strength)
    assert perturbed.shape == images.shape and perturbed.dtype == np.float64
    assert np.allclose(perturbed.reshape(len(digits), -1), rows, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_strength_0_gives_an_unchanged_copy(digits, kind):
    same = perturb(digits, kind, 0, image_shape=SHAPE, seed=3)
    assert np.array_equal(same, digits) and not np.shares_memory(same, digits)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_same_seed_gives_the_same_images_and_other_seeds_differ_only_for_random_kinds(digits, kind):
    strength = KINDS[kind].curve[-1]
    first = perturb(digits, kind, strength, image_shape=SHAPE, seed=7)
    assert np.array_equal(first, perturb(digits, kind, strength, image_shape=SHAPE, seed=7))
    other = perturb(digits, kind, strength, image_shape=SHAPE, seed=8)
    assert np.array_equal(first, other) is not KINDS[kind].random
    assert np.array_equal(perturb(digits[:5], kind, strength, image_shape=SHAPE, seed=7), first[:5])


def test_noise_has_the_standard_deviation_asked_for():
    grey = np.full((200, 784), 0.5, dtype=np.float32)
    noisy = perturb(grey, "noise", 0.1, image_shape=SHAPE)
    assert (noisy - grey).std() == pytest.approx(0.1, rel=0.02)
    assert abs((noisy - grey).mean()) < 0.002


def test_rotating_90_degrees_turns_counter_clockwise_and_back_again(digits):
    images = digits.reshape(-1, 28, 28)
    turned = perturb(images, "rotate", 90)
    assert np.allclose(turned, np.rot90(images, axes=(1, 2)), atol=1e-6)
    assert np.allclose(perturb(turned, "rotate", -90), images, atol=1e-6)


def test_rotating_a_centred_image_there_and_back_by_30_degrees_nearly_restores_it():
    image = blobs(1, sigma=3.0)
    image[0, 6:22, 12:16] = 1.0  # a bar through the centre, so the rotation shows
    back = perturb(perturb(image, "rotate", 30), "rotate", -30)
    assert np.abs(back - image).mean() < 0.02
    assert np.allclose(centres(back), (13.5, 13.5), atol=0.05)


def test_shift_moves_each_centre_of_mass_by_the_distance_in_its_own_direction():
    images = blobs(16)
    moved = centres(perturb(images, "shift", 3.0, seed=1)) - (13.5, 13.5)
    assert np.allclose(np.hypot(moved[:, 0], moved[:, 1]), 3.0, atol=0.02)
    quadrants = {(bool(dy > 0), bool(dx > 0)) for dy, dx in moved}
    assert len(quadrants) == 4  # random directions, not one for all


def test_blur_lowers_the_peaks_and_keeps_the_ink():
    dots = np.zeros((3, 28, 28), dtype=np.float32)
    dots[:, 14, 14] = 1.0
    light, heavy = perturb(dots, "blur", 0.5), perturb(dots, "blur", 2.0)
    assert 1.0 > light.max() > heavy.max() > 0.0
    assert heavy.sum() == pytest.approx(dots.sum(), rel=1e-3)


def test_blur_lowers_the_peaks_of_real_digits(digits):
    blurred = perturb(digits, "blur", 1.0, image_shape=SHAPE)
    assert (blurred.max(axis=1) < digits.max(axis=1)).all()


def test_thickness_grows_and_shrinks_the_ink_in_order(digits):
    areas = [(perturb(digits, "thickness", t, image_shape=SHAPE) > 0.5).sum() for t in KINDS["thickness"].curve]
    assert areas == sorted(areas) and len(set(areas)) == len(areas)
    assert (perturb(digits, "thickness", 1, image_shape=SHAPE) >= digits).all()
    assert (perturb(digits, "thickness", -1, image_shape=SHAPE) <= digits).all()


def test_every_kind_offers_a_slider_and_a_curve_that_starts_from_no_change(digits):
    assert list(KINDS) == ["noise", "rotate", "shift", "blur", "thickness"]
    for name, kind in KINDS.items():
        assert kind.name == name and kind.label and kind.unit
        assert kind.minimum < kind.maximum and kind.step > 0
        assert 0 in kind.curve and all(kind.minimum <= s <= kind.maximum for s in kind.curve)
        on_grid = [abs(s / kind.step - round(s / kind.step)) < 1e-9 for s in kind.curve]
        assert all(on_grid), f"{name}: a curve strength the slider cannot show"  # the slider starts at one
        for strength in kind.curve:
            perturb(digits[:2], name, strength, image_shape=SHAPE)


@pytest.mark.parametrize("shape", [(8, 8), (8, 12), (16, 16)])
def test_on_small_images_the_kinds_in_pixels_are_sized_to_the_image_and_still_work(shape):
    """A shift slider up to 8 px means nothing on an 8x8 digit: the pixel kinds shrink with the shorter side."""
    sized, side = kinds_for(shape), min(shape)
    assert list(sized) == list(KINDS)
    for name in ("noise", "rotate"):  # a share of the range, degrees: the same on any size
        assert sized[name] == KINDS[name]
    assert sized["shift"].maximum <= 8 * side / 28 < sized["shift"].maximum + sized["shift"].step
    assert sized["blur"].maximum <= 3 * side / 28 < sized["blur"].maximum + sized["blur"].step
    assert sized["thickness"].minimum <= -1 and sized["thickness"].maximum >= 1 and sized["thickness"].step == 1
    assert sized["thickness"].maximum < KINDS["thickness"].maximum
    images = np.random.default_rng(0).uniform(0, 16, (3, *shape)).astype(np.float32)
    for name in ("shift", "blur", "thickness"):
        kind = sized[name]
        assert (kind.maximum - kind.minimum) / kind.step >= 2  # a slider with room to move
        assert 0 in kind.curve and list(kind.curve) == sorted(set(kind.curve)) and len(kind.curve) >= 3
        for strength in (*kind.curve, kind.minimum, kind.maximum):
            assert abs(strength / kind.step - round(strength / kind.step)) < 1e-9  # on the slider's steps
            moved = perturb(images, name, strength, value_range=(0.0, 16.0))
            assert moved.shape == images.shape and 0 <= moved.min() and moved.max() <= 16
    assert kinds_for((8, 8))["shift"].maximum == 2.25 and kinds_for((8, 8))["thickness"].curve == (-1.0, 0.0, 1.0)


@pytest.mark.parametrize("shape", [(28, 28), (64, 48), None])
def test_images_of_28x28_or_larger_keep_the_kinds_as_they_are(shape):
    assert kinds_for(shape) == KINDS


@pytest.mark.parametrize(("kind", "strength", "said"), [
    ("zoom", 1.0, "unknown perturbation of images 'zoom': choose one of noise, rotate, shift, blur, thickness"),
    ("noise", -0.1, r"noise strength \(standard deviation .*\) cannot be negative, got -0.1"),
    ("shift", -2, r"shift strength \(pixels, .*\) cannot be negative, got -2"),
    ("blur", -1, "blur strength .* cannot be negative"),
    ("thickness", 1.5, r"thickness takes whole pixels \(dilation > 0, erosion < 0\), got 1.5"),
    ("blur", 50, "blur strength 50 is larger than the images \\(28 pixels\\): at most 28"),
    ("rotate", float("nan"), "rotate strength must be a finite number, got nan"),
    ("rotate", "a lot", "rotate strength must be a number, got 'a lot'"),
])
def test_an_unknown_kind_or_a_strength_it_does_not_take_is_refused_clearly(digits, kind, strength, said):
    with pytest.raises(InvalidPerturbationError, match=said):
        perturb(digits, kind, strength, image_shape=SHAPE)


@pytest.mark.parametrize(("images", "image_shape", "said"), [
    (np.zeros((4, 784), dtype=np.float32), None, r"rows of 784 values need image_shape=\(height, width\)"),
    (np.zeros((4, 784), dtype=np.float32), (28, 27), "height\\*width = 784, got \\[28, 27\\]"),
    (np.zeros((4, 28, 28), dtype=np.float32), (8, 8), r"images of 28x28 do not match image_shape \[8, 8\]"),
    (np.zeros((4, 784), dtype=np.uint8), SHAPE, "images must be a numpy array of floats in \\[0, 1\\], got an array of uint8"),
    (np.zeros(784, dtype=np.float32), SHAPE, r"expected images \(n, height, width\) or rows .* shape \[784\]"),
    ([[0.0] * 784], SHAPE, "got list"),
])
def test_images_that_are_not_a_batch_of_floats_are_refused_clearly(images, image_shape, said):
    with pytest.raises(InvalidPerturbationError, match=said):
        perturb(images, "noise", 0.1, image_shape=image_shape)


@pytest.mark.parametrize("perturbation", [Perturbation("rotate", 15.0), Perturbation("noise", 0.2, seed=3),
                                          Perturbation("thickness", -1.0), Perturbation("shift", 2.5)])
def test_a_key_names_its_perturbation_again(perturbation):
    assert Perturbation.from_key(perturbation.key) == perturbation


@pytest.mark.parametrize("key, said", [
    ("rotate=500", "from -90 to 90"), ("noise=-0.1", "from 0 to 0.5"), ("blur=nan", "from 0 to 3"),
    ("noise=0.2~x", "seed is a whole number"), ("noise=0.2~\u00b2", "seed is a whole number"),
    ("noise=0.2~99999999999999999999", "seed is a whole number from 0 to 4294967295"),
    ("spin=3", "unknown perturbation"), ("rotate", "KIND=STRENGTH"),
])
def test_a_key_that_names_nothing_applicable_is_refused_clearly(key, said):
    with pytest.raises(InvalidPerturbationError, match=said):
        Perturbation.from_key(key)


def test_a_kind_puts_a_strength_on_its_sliders_steps_and_shows_its_steps_decimals():
    assert KINDS["rotate"].snapped(7.3) == 7.0 and KINDS["rotate"].snapped(6.5) == 7.0  # halves up
    assert KINDS["blur"].snapped(0.77) == 0.75 and KINDS["noise"].snapped(0.123456) == 0.12
    assert [KINDS[k].decimals for k in ("rotate", "noise", "shift", "blur", "thickness")] == [0, 2, 1, 2, 0]
