import io

import numpy as np
from PIL import Image

from backend.data.testset import TestSet
from backend.inspection.evaluation import Samples, evaluate, most_confused, normalized_confusion
from backend.inspection.figures import DPI, caption_boxes, confusion_heatmap, image_grid, sample_strip, to_png


def test_normalized_confusion_divides_rows_and_zeroes_the_diagonal():
    confusion = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    normalized = normalized_confusion(confusion)
    assert np.allclose(normalized, [[0, 0.2, 0], [0.25, 0, 0.5], [0, 0, 0]])


def test_most_confused_lists_the_largest_off_diagonal_counts_in_words():
    confusion = np.array([[5, 0, 3], [7, 5, 0], [0, 1, 9]])
    pairs = most_confused(confusion, ("a", "b", "c"), top=3)
    assert [str(p) for p in pairs] == ["b taken for a: 7 times", "a taken for c: 3 times", "c taken for b: 1 time"]


def test_evaluate_computes_accuracy_precision_and_recall():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    result = evaluate(y_true, y_pred, ("0", "1", "2"))
    assert result.accuracy == 4 / 6 and result.n == 6
    assert result.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert np.allclose(result.recall, [0.5, 1.0, 0.5])
    assert np.allclose(result.precision, [0.5, 2 / 3, 1.0])


def test_sample_strip_marks_misclassified_images_red_on_an_inverted_colormap():
    # 2x2 images drawn on the set's range [0, 1], not each on its own: one full pixel of ink; half a pixel of
    # ink on black (inverted: every pixel dark); a constant 0.3 image (light grey all over, not blank)
    images = np.array([[1, 0, 0, 0], [0.5, 0, 0, 0], [0.3, 0.3, 0.3, 0.3]], dtype=np.float32)
    samples = Samples(indices=np.arange(3), images=images, labels=np.array([1, 2, 3]),
                      predictions=np.array([1, 5, 3]), image_shape=(2, 2), class_names=tuple("0123456789"))
    grid = sample_strip(samples)
    titles = [placed for placed in grid.captions if placed.above]  # the whole strip is one picture
    assert [t.caption.text for t in titles] == ["1 (1)", "5 (2)", "3 (3)"]  # prediction (true label)
    assert [t.caption.color for t in titles] == ["black", "red", "black"]
    assert [t.caption.bold for t in titles] == [False, True, False]
    inked = np.argwhere(np.any(grid.mosaic < 1, axis=-1))  # (row, column) of non-white pixels
    under = [int(np.sum(np.abs(inked[:, 1] + 0.5 - t.x) < 1)) for t in titles]
    assert under == [1, 4, 4]  # dark ink on white; the misclassified one inverted: light ink on black
    png = Image.open(io.BytesIO(to_png(grid)))
    drawn = np.asarray(png.convert("RGB"))
    assert png.format == "PNG" and drawn.shape[1] == round(grid.width_inches * DPI)
    reds = np.argwhere((drawn[..., 0] > 200) & (drawn[..., 1] < 80) & (drawn[..., 2] < 80))  # the red title is written
    assert len(reds) and np.all(np.abs(reds[:, 1] - titles[1].x * DPI / grid.per_inch) < DPI)


def test_tiles_are_drawn_on_the_sets_value_range_so_a_wrong_scale_shows():
    # The same 0-16 digit drawn on its set's range [0, 16] is full ink; on [0, 255] (the scale it was
    # wrongly taken for) it is faint: nothing rescales each tile to look right
    digit = np.array([[16.0, 0, 0, 16]], dtype=np.float32)
    darkest = {}
    for value_range in ((0.0, 16.0), (0.0, 255.0)):
        grid = image_grid(digit, (2, 2), np.array([1]), np.array([1]), ("0", "1"), value_range=value_range)
        darkest[value_range] = float(grid.mosaic[..., 0].min())
    assert darkest[(0.0, 16.0)] < 0.05 and darkest[(0.0, 255.0)] > 0.85


def test_long_class_names_are_titled_on_two_lines_and_confidence_goes_beneath():
    names = ("T-shirt/top", "Trouser", "Ankle boot")
    grid = image_grid(np.zeros((2, 4)), (2, 2), np.array([0, 2]), np.array([1, 2]), names, np.array([0.5, 0.97]))
    texts = [placed.caption.text for placed in grid.captions]
    assert texts == ["Trouser\n(T-shirt/top)", "50%", "Ankle boot\n(Ankle boot)", "97%"]
    title, confidence = caption_boxes(grid)[:2]
    assert title[3] - title[1] > 1.8 * (confidence[3] - confidence[1])  # two lines drawn, over the tile's one


def test_heatmap_has_labelled_axes_and_a_colour_bar():
    result = evaluate(np.array([0, 1, 1]), np.array([0, 0, 1]), ("0", "1"))
    fig = confusion_heatmap(result)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted label" and ax.get_ylabel() == "true label"
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert np.allclose(ax.images[0].get_array(), [[0, 0], [0.5, 0]])


def test_testset_is_not_collected_by_pytest():
    assert TestSet.__test__ is False


def test_a_cell_lists_its_items_most_confident_first_and_a_margin_only_the_errors():
    y_true = np.array([0, 0, 0, 1, 1])
    y_pred = np.array([0, 1, 0, 1, 0])
    probabilities = np.array([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8], [0.55, 0.45]])
    result = evaluate(y_true, y_pred, ("a", "b"), probabilities)
    assert list(result.cell(0, 0)) == [2, 0]  # 0.9 before 0.6
    assert list(result.cell(0, None)) == [2, 1, 0]
    assert list(result.cell(0, None, errors_only=True)) == [1]
    assert list(result.cell(None, 0, errors_only=True)) == [4]
    assert list(result.confidently_wrong()) == [1, 4] and list(result.least_confident_right()) == [0, 3, 2]
    assert str(result.most_confused[0]).endswith(": 1 time")


def test_every_class_name_is_shown_on_the_charts_axes_long_ones_slanted():
    import json

    from backend.inspection.interactive_charts import class_axis, confusion_chart

    assert class_axis(tuple("0123456789")).to_dict() == {"labelAngle": 0, "labelFontSize": 13, "labelOverlap": False}
    assert class_axis(("T-shirt/top", "Trouser")).to_dict()["labelAngle"] == -45
    names = ("T-shirt/top", "Trouser", "Ankle boot")
    spec = json.dumps(confusion_chart(evaluate(np.array([0, 1, 2]), np.array([0, 2, 2]), names)))
    assert '"labelAngle": -45' in spec and '"labelOverlap": false' in spec
