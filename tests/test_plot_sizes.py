"""Picture titles readable on a projector: a strip of 30 tiles shown at the width of the main column at 1024x768
beside the sidebar (about 690 px) titles its tiles in at least 13 px, short class names and long ones alike."""

import numpy as np
import pytest

from backend.data.builtin import load_fashion_mnist_test, load_mnist_test
from backend.inspection.figures import DPI, caption_boxes, image_grid

SHOWN_WIDTH_PX = 690  # the main column at 1024x768 with the sidebar open


@pytest.mark.parametrize("load", [load_mnist_test, load_fashion_mnist_test], ids=["digits", "fashion"])
def test_tile_titles_stay_large_when_the_strip_is_shown_at_a_projector_s_width(load):
    data = load()
    shown = np.arange(30)
    grid = image_grid(data.X[shown], data.image_shape, data.y[shown], data.y[::-1][shown], data.class_names)
    scale = SHOWN_WIDTH_PX / (grid.width_inches * DPI)
    titles = grid.captions  # no confidence given: only titles
    assert min(t.caption.size for t in titles) / 72 * DPI * scale >= 13
    boxes = caption_boxes(grid)
    per_row = len({round(t.x) for t in titles})
    for k in range(len(titles) - 1):  # neighbours in a row never overlap
        if (k + 1) % per_row:
            assert boxes[k][2] < boxes[k + 1][0]
