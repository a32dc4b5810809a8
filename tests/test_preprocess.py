"""Drawn and uploaded digits made into MNIST's form: centred by mass, 20 pixels tall, ink bright on black."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from backend.data.builtin import load_mnist_test
from backend.data.preprocess import MNIST_FORM, InputForm, PreparedDigit, form_of, mnist_input, model_input
from backend.errors import ImageDecodeError, NothingDrawnError
from backend.training import SAMPLE_MODEL_FILE

RING = (90, 40, 190, 240)  # a "0": 101 x 201 pixels on a 280 x 280 canvas


def drawing(offset: tuple[int, int] = (0, 0), ink: int = 0, paper: int = 255, size: int = 280) -> np.ndarray:
    """A thick ring (a "0") thickened on its left (so its centre of mass is off its box's centre), uint8 gray."""
    canvas = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(canvas)
    dx, dy = offset
    left, top, right, bottom = RING
    draw.ellipse((left + dx, top + dy, right + dx, bottom + dy), outline=ink, width=22)
    draw.rectangle((left + dx, top + 40 + dy, left + 45 + dx, top + 110 + dy), fill=ink)
    return np.asarray(canvas)


def ink_side(pixels: np.ndarray) -> int:
    rows, cols = np.nonzero(pixels > 0.1 * pixels.max())
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1


def png(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def reference() -> PreparedDigit:
    return mnist_input(drawing())


def test_a_dark_digit_on_white_becomes_a_centred_20_pixel_digit_bright_on_black(reference):
    assert reference.pixels.shape == (28, 28) and reference.pixels.dtype == np.float32
    assert reference.row.shape == (784,) and reference.row.dtype == np.float32
    assert np.array_equal(reference.row, reference.pixels.ravel())
    assert reference.inverted
    assert reference.pixels.min() >= 0.0 and reference.pixels.max() == pytest.approx(1.0, abs=0.01)
    assert np.allclose(ndimage.center_of_mass(reference.pixels), (14, 14), atol=1.0)
    assert ink_side(reference.pixels) in (20, 21)
    assert reference.pixels[0].max() == reference.pixels[:, 0].max() == 0.0  # background black, not grey


def test_the_ink_box_is_where_the_ink_is_in_the_original_image(reference):
    left, top, right, bottom = reference.ink_box
    assert abs(left - RING[0]) <= 2 and abs(top - RING[1]) <= 2
    assert abs(right - RING[2] - 1) <= 2 and abs(bottom - RING[3] - 1) <= 2


def test_the_same_digit_in_a_corner_gives_the_same_input(reference):
    cornered = mnist_input(drawing(offset=(85, 38)))
    assert np.allclose(cornered.pixels, reference.pixels, atol=1e-5)
    assert cornered.ink_box[0] == reference.ink_box[0] + 85 and cornered.ink_box[1] == reference.ink_box[1] + 38


def test_light_ink_on_dark_gives_the_same_input_without_inverting(reference):
    light = mnist_input(drawing(ink=255, paper=0))
    assert not light.inverted
    assert np.allclose(light.pixels, reference.pixels, atol=1e-5)


def test_a_grey_pencil_on_grey_paper_is_stretched_to_full_contrast(reference):
    faint = mnist_input(drawing(ink=120, paper=200))
    assert faint.inverted and faint.pixels.max() == pytest.approx(1.0)
    assert np.abs(faint.pixels - reference.pixels).mean() < 0.01


def test_a_photo_of_blue_ink_on_noisy_paper_with_dust_gives_a_clean_digit(reference):
    rng = np.random.default_rng(0)
    mask = drawing(ink=255, paper=0)[..., None] / 255.0
    paper = np.array([232, 226, 210]) + rng.normal(0, 8, (280, 280, 3))
    photo = paper * (1 - mask) + np.array([30, 60, 160]) * mask
    photo[260:263, 10:13] = photo[5:7, 270:272] = (40, 40, 40)  # dust specks far from the digit
    prepared = mnist_input(np.clip(photo, 0, 255).astype(np.uint8))
    assert prepared.inverted
    assert abs(prepared.ink_box[0] - reference.ink_box[0]) <= 2 and abs(prepared.ink_box[3] - reference.ink_box[3]) <= 2
    assert np.abs(prepared.pixels - reference.pixels).mean() < 0.03
    assert np.allclose(ndimage.center_of_mass(prepared.pixels), (14, 14), atol=1.0)


@pytest.mark.parametrize("stroke", [(0, 0, 0), (255, 255, 255), (220, 30, 30), (0, 0, 0)])
def test_a_canvas_with_transparent_background_and_strokes_of_any_colour(reference, stroke):
    mask = drawing(ink=255, paper=0) > 127
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)  # what a drawing canvas returns: (0, 0, 0, 0) background
    canvas[mask] = (*stroke, 255)
    prepared = mnist_input(canvas)
    assert np.abs(prepared.pixels - mnist_input(mask.astype(np.uint8) * 255).pixels).mean() < 1e-5
    assert np.abs(prepared.pixels - reference.pixels).mean() < 0.02


def test_a_float_image_in_0_to_1_and_in_0_to_255_read_alike(reference):
    as_float = drawing().astype(np.float32)
    assert np.allclose(mnist_input(as_float / 255).pixels, reference.pixels, atol=1e-5)
    assert np.allclose(mnist_input(as_float).pixels, reference.pixels, atol=1e-5)


def test_png_and_jpeg_bytes_round_trip(reference):
    gray = Image.fromarray(drawing())
    assert np.allclose(mnist_input(png(gray)).pixels, reference.pixels, atol=1e-5)
    rgba = Image.new("RGBA", gray.size, (0, 0, 0, 0))
    rgba.putalpha(Image.fromarray(255 - drawing()))  # a black digit on a transparent background
    assert np.abs(mnist_input(png(rgba)).pixels - reference.pixels).mean() < 1e-4
    jpeg = mnist_input(png(gray.convert("RGB"), "JPEG", quality=85))
    assert jpeg.inverted and np.abs(jpeg.pixels - reference.pixels).mean() < 0.02


def test_size_and_box_make_smaller_inputs_for_other_models():
    small = mnist_input(drawing(), size=8, box=6)
    assert small.pixels.shape == (8, 8) and small.row.shape == (64,)
    assert ink_side(small.pixels) in (6, 7)
    with pytest.raises(ValueError, match="box must be between 1 and size"):
        mnist_input(drawing(), size=8, box=20)


def test_the_form_of_a_set_is_measured_from_its_images():
    from sklearn.datasets import load_digits

    mnist = load_mnist_test()
    measured = form_of(mnist.X, mnist.image_shape, mnist.value_range)
    assert (measured.shape, measured.box) == ((28, 28), 20) and measured.value_range == (0.0, 1.0)
    assert np.allclose(measured.centre, MNIST_FORM.centre, atol=0.5)  # what mnist_input has always done
    digits = form_of(load_digits().data, (8, 8), (0.0, 16.0))  # their ink fills the 8 rows
    assert (digits.shape, digits.box, digits.value_range) == ((8, 8), 8, (0.0, 16.0))
    assert np.allclose(digits.centre, (3.5, 3.5), atol=0.2)
    blank = form_of(np.zeros((3, 12)), (3, 4), (0.0, 1.0))
    assert (blank.shape, blank.box) == ((3, 4), 2)


def test_a_scanned_8x8_digit_is_made_into_its_sets_form_and_range_and_is_recognised():
    """load_digits' test digits printed large, dark on light, then read back: in the set's form (8x8, ink
    filling it, values 0-16) a model trained on the set recognises them; in MNIST's proportions it does not."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.3, random_state=0,
                                                        stratify=digits.target)
    model = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    form = form_of(X_test, (8, 8), (0.0, 16.0))

    def scan(row: np.ndarray) -> np.ndarray:
        large = Image.fromarray((255 - row.reshape(8, 8) / 16 * 255).astype("uint8"))
        paper = Image.new("L", (240, 200), 255)
        paper.paste(large.resize((160, 160), Image.Resampling.BICUBIC), (50, 20))
        return np.asarray(paper)

    n = 100
    prepared = [model_input(scan(row), form) for row in X_test[:n]]
    rows = np.array([p.row for p in prepared])
    assert rows.shape == (n, 64) and rows.dtype == np.float32 and rows.min() == 0 and rows.max() == 16
    assert all(p.pixels.shape == (8, 8) and p.pixels.max() == 1 and p.inverted for p in prepared)
    assert np.allclose(rows / 16, np.array([p.pixels.reshape(-1) for p in prepared]))
    recognised = float((model.predict(rows) == y_test[:n]).mean())
    assert recognised >= 0.85, recognised
    as_mnist = np.array([model_input(scan(row), InputForm((8, 8), 6, (4.0, 4.0), (0.0, 16.0))).row
                         for row in X_test[:n]])
    assert float((model.predict(as_mnist) == y_test[:n]).mean()) < recognised - 0.3
    wide = model_input(drawing(), InputForm((8, 12), 8, (3.5, 5.5), (0.0, 255.0)))  # not square: h x w as given
    assert wide.pixels.shape == (8, 12) and wide.row.shape == (96,) and wide.row.max() == 255
    assert ink_side(wide.pixels) == 8


@pytest.mark.parametrize("empty", [
    np.full((280, 280), 255, dtype=np.uint8),             # a white canvas
    np.zeros((280, 280, 4), dtype=np.uint8),              # a transparent canvas
    np.full((50, 60, 3), 0.4, dtype=np.float32),          # a uniform grey picture
    np.clip(np.random.default_rng(0).normal(215, 5, (300, 400, 3)), 0, 255).astype(np.uint8),  # blank paper
])
def test_an_image_without_ink_says_nothing_was_drawn(empty):
    with pytest.raises(NothingDrawnError, match=r"^nothing drawn: no pixel of the \d+x\d+ image stands out"):
        mnist_input(empty)


def test_an_empty_canvas_as_a_png_says_nothing_was_drawn_too():
    with pytest.raises(NothingDrawnError, match="draw a digit, or upload a picture of one"):
        mnist_input(png(Image.new("RGBA", (280, 280), (0, 0, 0, 0))))


@pytest.mark.parametrize(("data", "said"), [
    (b"this is not an image at all", r"cannot read the 27 bytes received \(starting b'this is not '\) as an image"),
    (b"", "cannot read an image from 0 bytes"),
    (png(Image.fromarray(drawing()))[:200], "cannot read the 200 bytes received"),  # a truncated PNG
])
def test_bytes_that_are_not_an_image_say_what_arrived(data, said):
    with pytest.raises(ImageDecodeError, match=said) as caught:
        mnist_input(data)
    assert "upload a PNG or JPEG file" in str(caught.value)


@pytest.mark.parametrize(("image", "said"), [
    (np.zeros((4, 5, 7)), r"cannot read an array of shape \[4, 5, 7\] as an image"),
    (np.zeros(784), r"cannot read an array of shape \[784\] as an image"),
    (np.array([["a", "b"]]), "cannot read an array of <U1 as an image"),
    (np.full((3, 3), np.nan), "NaN or infinite"),
    ("digit.png", "expected an image as a numpy array or the bytes of a file, got str"),
])
def test_arrays_that_are_not_images_say_why(image, said):
    with pytest.raises(ImageDecodeError, match=said):
        mnist_input(image)


def test_real_mnist_digits_scanned_dark_on_light_come_back_as_they_were(sample_model_dir):
    import joblib

    model = joblib.load(sample_model_dir / SAMPLE_MODEL_FILE)
    testset = load_mnist_test()
    originals = testset.X[:12]
    rows = []
    for row in originals:
        digit = Image.fromarray((row.reshape(28, 28) * 255).round().astype(np.uint8))
        scan = 255 - np.asarray(digit.resize((280, 280), Image.Resampling.BILINEAR))  # dark ink on white paper
        prepared = mnist_input(scan)
        assert prepared.inverted
        assert np.abs(prepared.row - row).mean() < 0.06
        rows.append(prepared.row)
    assert np.abs(np.array(rows) - originals).mean() < 0.04
    assert model.predict(np.array(rows)).tolist() == model.predict(originals).tolist()
