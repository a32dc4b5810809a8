"""Pictures: the normalised confusion heatmap, the comparison's heatmap and the reliability diagram
(matplotlib figures), and image grids (composed with numpy, written with Pillow: a gallery is drawn
on a click, where a matplotlib figure of it took ~0.3 s).

Figures are made with matplotlib's object API, never pyplot: the dashboard draws on its page thread
and on download threads (a report) at the same time, and pyplot's shared state is not thread-safe.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from ..errors import InvalidExplanationError
from .calibration import Calibration
from .compare import Comparison
from .evaluation import Evaluation, Samples, class_name
from .explain import Explanation, WeightMaps
from .flip import Flip
from .ticks import PercentTicks, percent_ticks

DPI = 110  # every picture's PNG
PNG_COMPRESSION = 1  # zlib level of the image grids' PNGs: level 6 (the default) takes a third of the drawing time
_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def confusion_heatmap(evaluation: Evaluation, subject: str = "") -> Figure:
    """Rows normalised, diagonal zeroed: the brighter a cell, the more often that true label was
    taken for that predicted one. `subject` (deployment and test set) heads the title."""
    n = len(evaluation.labels)
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(evaluation.normalized, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n), evaluation.labels, rotation=45 if max(map(len, evaluation.labels)) > 2 else 0,
                  fontsize=13)
    ax.set_yticks(range(n), evaluation.labels, fontsize=13)
    ax.set_xlabel("predicted label", fontsize=13)
    ax.set_ylabel("true label", fontsize=13)
    ax.set_title((f"{subject}\n" if subject else "") + f"errors by class — accuracy {evaluation.accuracy:.2%}",
                 fontsize=12)
    bar = fig.colorbar(image, ax=ax)
    _percent_bar(bar, percent_ticks(0.0, float(evaluation.normalized.max())))
    bar.set_label("share of the true label's images", fontsize=12)
    bar.ax.tick_params(labelsize=11)
    return fig


def _percent_bar(bar: Colorbar, ticks: PercentTicks) -> None:
    """The colour bar's ticks as percentages with enough decimals to tell them apart (0.0%, 0.5%, 1.0%)."""
    bar.set_ticks(list(ticks.values), labels=list(ticks.labels))


def tile_title(prediction: int, label: int, class_names: tuple[str, ...]) -> str:
    """ "pred (true)": what the model said, then the true label."""
    return f"{class_name(class_names, prediction)} ({class_name(class_names, label)})"


def sample_strip(samples: Samples, per_row: int = 10) -> TileGrid:
    """The random strip of images: see `image_grid` (a table's rows are shown as a table: `rows.row_table`)."""
    if samples.image_shape is None:
        raise ValueError("a table's rows are not images: show them with rows.row_table")
    return image_grid(samples.images, samples.image_shape, samples.labels, samples.predictions, samples.class_names,
                      samples.confidence, per_row, value_range=samples.value_range)


@dataclass(frozen=True)
class Caption:
    """One line of text over or under a tile of an image grid ("\\n" starts another line)."""

    text: str
    color: str = "black"
    size: float = 10  # points
    bold: bool = False


@dataclass(frozen=True)
class PlacedCaption:
    """A caption where it goes: centred on `x`, its last line's bottom at `y` (`above` a tile) or its
    first line's top there (beneath one), in mosaic pixels."""

    caption: Caption
    x: float
    y: float
    above: bool


@dataclass(frozen=True)
class TileGrid:
    """An image grid before it is drawn: the tiles composed into one RGB mosaic (values in [0, 1], one
    pixel per image pixel, `per_inch` of them to an inch) and the captions placed on it. `to_png` draws
    it with Pillow: about ten times faster than a matplotlib figure of the same picture."""

    mosaic: np.ndarray
    per_inch: float
    captions: tuple[PlacedCaption, ...]

    @property
    def width_inches(self) -> float:
        return self.mosaic.shape[1] / self.per_inch


def _tile_grid(images: np.ndarray, image_shape: tuple[int, int], cols: int, inverted: Sequence[bool],
               above: Sequence[Caption], below: Sequence[Sequence[Caption]], cell_inches: tuple[float, float],
               above_inches: float, line_inches: float, value_range: tuple[float, float] = (0.0, 1.0)) -> TileGrid:
    """Images in a grid with their captions. Every tile is drawn on the set's own `value_range` (low is
    background, high full ink; values beyond are clipped), not each on its own, so images on the wrong
    scale show as such; ink dark on white, or light on black where `inverted`; `above[k]` heads tile k
    and the lines `below[k]` follow it. A tile's longer side spans 0.95 in of a cell `cell_inches` wide.
    A grid of fewer than `cols` images keeps `cols` cells, so its tiles show as large as a full row's."""
    n = len(images)
    rows = max(1, math.ceil(n / cols))
    height, width = image_shape
    per_inch = max(height, width) / 0.95  # mosaic pixels per inch
    cell_w = max(width + 2, round(cell_inches[0] * per_inch))
    top = round(above_inches * per_inch)
    lines = max((len(under) for under in below), default=0)
    cell_h = top + height + round((0.08 + lines * line_inches) * per_inch)
    mosaic = np.ones((rows * cell_h, cols * cell_w, 3))
    inks = {False: colormaps["binary"], True: colormaps["Greys_r"]}
    low, high = (float(v) for v in value_range)
    placed = []
    for k in range(n):
        tile = images[k].reshape(image_shape).astype(np.float64)
        scaled = np.clip((tile - low) / (high - low), 0.0, 1.0)
        x0 = (k % cols) * cell_w + (cell_w - width) // 2
        y0 = (k // cols) * cell_h + top
        mosaic[y0:y0 + height, x0:x0 + width] = inks[bool(inverted[k])](scaled)[..., :3]
        centre = x0 + width / 2
        placed.append(PlacedCaption(above[k], centre, y0 - 0.03 * per_inch, above=True))
        placed += [PlacedCaption(caption, centre, y0 + height + (0.04 + line * line_inches) * per_inch, above=False)
                   for line, caption in enumerate(below[k])]
    return TileGrid(mosaic, per_inch, tuple(placed))


def image_grid(images: np.ndarray, image_shape: tuple[int, int], labels: np.ndarray, predictions: np.ndarray,
               class_names: tuple[str, ...], confidence: np.ndarray | None = None, per_row: int = 10, *,
               value_range: tuple[float, float] = (0.0, 1.0)) -> TileGrid:
    """Each image titled "prediction (true label)" in a size a projector shows (about 18 px at
    1280x720), with the confidence in the prediction beneath when known; misclassified ones with a
    bold red title on an inverted colormap. Tiles are drawn on the set's `value_range`."""
    n = len(labels)
    titles = [tile_title(int(p), int(t), class_names) for p, t in zip(predictions, labels, strict=True)]
    short = max(map(len, titles), default=1) <= 7
    # Long class names go on two lines ("Ankle boot" over "(Sneaker)"), half as many tiles a row in wider cells,
    # so neighbours never overlap and titles stay as large as short ones on a projector's narrow page.
    size = 16 if short else 15
    if not short:
        per_row = max(1, per_row // 2)
        titles = [f"{class_name(class_names, int(p))}\n({class_name(class_names, int(t))})"
                  for p, t in zip(predictions, labels, strict=True)]
    right = [bool(labels[k] == predictions[k]) for k in range(n)]
    colors = ["black" if ok else "red" for ok in right]
    above = [Caption(titles[k], colors[k], size, not right[k]) for k in range(n)]
    below = [[Caption(f"{confidence[k]:.0%}", colors[k], max(9, size - 4))] if confidence is not None else []
             for k in range(n)]
    return _tile_grid(images, image_shape, per_row, [not ok for ok in right], above, below,
                      (1.1, 1.0) if short else (1.9, 1.0), above_inches=0.36 if short else 0.56, line_inches=0.22,
                      value_range=value_range)


def case_grid(images: np.ndarray, image_shape: tuple[int, int], labels: np.ndarray, class_names: tuple[str, ...],
              answers: np.ndarray | None = None, per_row: int = 10, *,
              value_range: tuple[float, float] = (0.0, 1.0)) -> TileGrid:
    """Flagged cases, numbered from 1 beneath: each titled with its right label, or once replayed "answer (label)",
    the wrong ones red on an inverted colormap (as the strip draws them)."""
    n = len(labels)
    right = [True] * n if answers is None else [bool(answers[k] == labels[k]) for k in range(n)]
    titles = [class_name(class_names, int(t)) if answers is None else tile_title(int(answers[k]), int(t), class_names)
              for k, t in enumerate(labels)]
    above = [Caption(titles[k], "black" if right[k] else "red", 16 if len(titles[k]) <= 7 else 11, not right[k])
             for k in range(n)]
    below = [[Caption(f"#{k + 1}", "grey", 10)] for k in range(n)]
    return _tile_grid(images, image_shape, per_row, [not ok for ok in right], above, below, (1.1, 1.0),
                      above_inches=0.36, line_inches=0.22, value_range=value_range)


def to_png(picture: Figure | TileGrid, dpi: int = DPI) -> bytes:
    """The figure or image grid as PNG bytes."""
    buffer = io.BytesIO()
    if isinstance(picture, TileGrid):
        _draw(picture, dpi).save(buffer, format="PNG", dpi=(dpi, dpi), compress_level=PNG_COMPRESSION)
    else:
        picture.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _draw(grid: TileGrid, dpi: int) -> Image.Image:
    """The grid's mosaic scaled to `dpi` (each image pixel a sharp square) with its captions written on it."""
    height, width = grid.mosaic.shape[:2]
    scale = dpi / grid.per_inch
    picture = Image.fromarray(np.round(grid.mosaic * 255).astype(np.uint8)).resize(
        (round(width * scale), round(height * scale)), Image.Resampling.NEAREST)
    pen = ImageDraw.Draw(picture)
    for line in _caption_lines(grid, dpi):
        pen.text(line.xy, line.text, fill=line.color, font=line.font, anchor=line.anchor)
    return picture


@dataclass(frozen=True)
class _Line:
    text: str
    xy: tuple[float, float]  # output pixels
    anchor: str  # Pillow's: "md" its bottom (descender) at xy, "mt" its top (the glyphs' top)
    font: ImageFont.FreeTypeFont
    color: str
    caption: int  # index into the grid's captions


def _caption_lines(grid: TileGrid, dpi: int) -> list[_Line]:
    """Every line of every caption where it is written at `dpi`, in DejaVu Sans (matplotlib's font, as
    the other pictures). Fonts are loaded per call (a tenth of a millisecond): a FreeType face is not
    to be shared by threads drawing at once (a report downloading while the page draws a gallery)."""
    scale = dpi / grid.per_inch
    fonts: dict[tuple[float, bool], ImageFont.FreeTypeFont] = {}
    found = []
    for index, placed in enumerate(grid.captions):
        caption = placed.caption
        key = (caption.size, caption.bold)
        if key not in fonts:
            fonts[key] = ImageFont.truetype(str(_FONTS / ("DejaVuSans-Bold.ttf" if caption.bold else "DejaVuSans.ttf")),
                                            caption.size * dpi / 72)
        font = fonts[key]
        ascent, descent = font.getmetrics()
        texts = caption.text.split("\n")
        for k, text in enumerate(texts):
            step = (k - len(texts) + 1 if placed.above else k) * (ascent + descent)
            found.append(_Line(text, (placed.x * scale, placed.y * scale + step), "md" if placed.above else "mt", font,
                               caption.color, index))
    return found


def caption_boxes(grid: TileGrid, dpi: int = DPI) -> list[tuple[float, float, float, float]]:
    """Each caption's (left, top, right, bottom) in the PNG `to_png(grid, dpi)` makes, in pixels."""
    boxes: list[tuple[float, float, float, float]] = [(math.inf, math.inf, -math.inf, -math.inf)] * len(grid.captions)
    for line in _caption_lines(grid, dpi):
        left, top, right, bottom = line.font.getbbox(line.text, anchor=line.anchor)
        x, y = line.xy
        old = boxes[line.caption]
        boxes[line.caption] = (min(old[0], x + left), min(old[1], y + top), max(old[2], x + right),
                               max(old[3], y + bottom))
    return boxes


def disagreement_grid(images: np.ndarray, image_shape: tuple[int, int], labels: np.ndarray,
                      predictions_a: np.ndarray, predictions_b: np.ndarray, class_names: tuple[str, ...],
                      per_row: int = 10, *, value_range: tuple[float, float] = (0.0, 1.0)) -> TileGrid:
    """Each image titled with its true label, and beneath what A and B said: green when right, red
    (bold) when wrong. Tiles are drawn on the set's `value_range`."""
    n = len(labels)
    longest = max((len(class_name(class_names, int(v))) for v in (*labels, *predictions_a, *predictions_b)),
                  default=1)
    size = 14 if longest <= 3 else 9
    above = [Caption(class_name(class_names, int(labels[k])), size=size) for k in range(n)]
    below = [[Caption(f"{side}: {class_name(class_names, int(said))}", "#1a7f37" if said == labels[k] else "red",
                      max(8, size - 3), bool(said != labels[k]))
              for side, said in (("A", predictions_a[k]), ("B", predictions_b[k]))] for k in range(n)]
    return _tile_grid(images, image_shape, per_row, [False] * n, above, below, (1.2, 1.0),
                      above_inches=0.3 if size > 9 else 0.22, line_inches=0.2, value_range=value_range)


def shadow_grid(images: np.ndarray, image_shape: tuple[int, int], live: Sequence[str], shadow: Sequence[str],
                names: tuple[str, str], per_row: int = 6, *, value_range: tuple[float, float] = (0.0, 1.0)) -> TileGrid:
    """Inputs a live deployment and its shadow answered differently: each titled with what the client got, and
    beneath (red) what the shadow said."""
    n = len(images)
    above = [Caption(f"{names[0]}: {live[k]}", size=11) for k in range(n)]
    below = [[Caption(f"{names[1]}: {shadow[k]}", "red", 11, True)] for k in range(n)]
    return _tile_grid(images, image_shape, per_row, [False] * n, above, below, (1.6, 1.0), above_inches=0.26,
                      line_inches=0.22, value_range=value_range)


def difference_heatmap(comparison: Comparison) -> Figure:
    """B's normalised confusion matrix minus A's on a diverging colormap centred on zero: red where B
    makes that mistake more often than A, blue where less."""
    n = len(comparison.labels)
    reach = float(np.abs(comparison.confusion_delta).max()) or 0.01
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(comparison.confusion_delta, cmap="RdBu_r", vmin=-reach, vmax=reach, interpolation="nearest")
    ax.set_xticks(range(n), comparison.labels, rotation=45 if max(map(len, comparison.labels)) > 2 else 0, fontsize=13)
    ax.set_yticks(range(n), comparison.labels, fontsize=13)
    ax.set_xlabel("predicted label", fontsize=13)
    ax.set_ylabel("true label", fontsize=13)
    ax.set_title(f"{comparison.b.deployment} − {comparison.a.deployment}: change in errors by class", fontsize=12)
    bar = fig.colorbar(image, ax=ax)
    _percent_bar(bar, percent_ticks(-reach, reach, signed=True))
    bar.set_label("B − A, share of the true label's images", fontsize=12)
    return fig


def reliability_diagram(calibration: Calibration, subject: str = "") -> Figure:
    """The reliability diagram: per confidence bin, how often the answers were right (bars) against
    the diagonal a perfectly calibrated model would follow, the mean confidence a red line across each bin and,
    beneath, how many answers each bin holds. `subject` heads the title."""
    filled = [b for b in calibration.bins if b.count]
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.2))
    widths = [b.high - b.low for b in filled]
    top.bar([b.low for b in filled], [b.accuracy for b in filled], widths, align="edge", color="#2f4b7c",
            edgecolor="white", label="share right")
    top.hlines([b.confidence for b in filled], [b.low for b in filled], [b.high for b in filled], color="#c0392b",
               linewidth=2.5, label="mean confidence in the band")
    top.plot([0, 1], [0, 1], "--", color="#5f6b7a", label="perfectly calibrated")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("share of answers right", fontsize=12)
    top.legend(loc="upper left", fontsize=10)
    top.set_title((f"{subject}\n" if subject else "") + f"calibration — expected calibration error "
                  f"{calibration.ece:.1%} ({len(calibration.bins)} bins)", fontsize=12)
    bottom.bar([b.low for b in filled], [b.count for b in filled], widths, align="edge", color="#a5b4cf",
               edgecolor="white")
    for b in filled:
        bottom.text((b.low + b.high) / 2, b.count, f"{b.count:,}", ha="center", va="bottom", fontsize=8)
    bottom.set_ylim(0, max((b.count for b in filled), default=1) * 1.3)
    bottom.set_ylabel("answers", fontsize=12)
    bottom.set_xlabel("confidence in the answer given", fontsize=12)
    for ax in (top, bottom):
        ax.tick_params(labelsize=10)
    ticks = percent_ticks(0.0, 1.0, target=5)
    bottom.set_xticks(list(ticks.values), labels=list(ticks.labels))
    top.set_yticks(list(ticks.values), labels=list(ticks.labels))
    return fig


def patch_reach(explanation: Explanation) -> float:
    """The largest patch's contribution, either way: where a patch picture's colour scale ends."""
    return float(np.abs(explanation.contributions).max(initial=0.0)) or 0.01


def patch_explanation(explanation: Explanation, image_shape: tuple[int, int], value_range: tuple[float, float],
                      class_names: tuple[str, ...], reach: float | None = None) -> Figure:
    """An image's explanation: the image as the model got it, and each patch's contribution to the class's output
    over it (blue toward the class, red away, on a scale centred on zero that ends at `reach`: the largest patch's
    by default; pictures shown side by side share one)."""
    if explanation.patch_grid is None:
        raise InvalidExplanationError("this explanation is of a table's row: its columns are a bar chart, not a picture")
    height, width = image_shape
    side = explanation.patch_side
    rows, cols = explanation.patch_grid
    per_pixel = np.kron(explanation.contributions.reshape(rows, cols), np.ones((side, side)))[:height, :width]
    points = explanation.scale == "probability"
    reach = reach or patch_reach(explanation)
    name = class_name(class_names, explanation.class_index)
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    picture, explained = fig.subplots(1, 2)
    image = explanation.values.reshape(image_shape)
    for ax in (picture, explained):
        ax.imshow(image, cmap="gray", vmin=value_range[0], vmax=value_range[1], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    what = f"P({name})" if points else f"log-odds of {name}"
    picture.set_title("as the model got it", fontsize=14)
    overlay = explained.imshow(per_pixel, cmap="RdBu", vmin=-reach, vmax=reach, alpha=0.65, interpolation="nearest")
    explained.set_title(f"each {side}x{side} patch's part", fontsize=14)
    bar = fig.colorbar(overlay, ax=explained, shrink=0.9)
    bar.set_label(f"blue: toward {name}, red: away", fontsize=13)
    if points:
        _percent_bar(bar, percent_ticks(-reach, reach, signed=True))
    bar.ax.tick_params(labelsize=12)
    shown_output = f"{explanation.output:.1%}" if points else f"{explanation.output:+.2f}"
    shown_base = f"{explanation.base:.1%}" if points else f"{explanation.base:+.2f}"
    fig.suptitle(f"{what}: {shown_output} here, {shown_base} for a blank image", fontsize=14)
    return fig


def flip_figure(found: Flip, image_shape: tuple[int, int], value_range: tuple[float, float],
                class_names: tuple[str, ...]) -> Figure:
    """What would make it another class: the image, the edited image (each with what the model says of it), and the
    difference (green: ink added, pink: ink taken away; not the explanations' blue and red, which mean toward and
    away)."""
    low, high = value_range
    fig = Figure(figsize=(7.2, 3.6), layout="constrained")
    before, after, change = fig.subplots(1, 3)
    for ax, row, probabilities in ((before, found.original, found.start), (after, found.edited, found.probabilities)):
        said = int(np.argmax(probabilities))
        ax.imshow(row.reshape(image_shape), cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(f"says {class_name(class_names, said)} ({probabilities[said]:.0%})", fontsize=15,
                     color="black" if ax is before or found.found else "#b3261e")
    difference = (found.edited - found.original).reshape(image_shape) / ((high - low) or 1.0)
    change.imshow(difference, cmap="PiYG", vmin=-1, vmax=1, interpolation="nearest")
    change.set_title(f"{found.changed_pixels} pixels changed", fontsize=15)
    for ax in (before, after, change):
        ax.set_xticks([])
        ax.set_yticks([])
    before.set_xlabel("the image", fontsize=13)
    after.set_xlabel("edited" if found.found else f"closest to {class_name(class_names, found.target)}: not it",
                     fontsize=13)
    change.set_xlabel("green: ink added\npink: taken away", fontsize=13)
    return fig


def weight_figure(maps: WeightMaps, image_shape: tuple[int, int], class_names: tuple[str, ...]) -> Figure:
    """What the model looks for in each class: per class, where ink raises it (blue) or lowers it (red), one scale
    for all."""
    n = len(class_names)
    cols = min(n, 5)
    rows = -(-n // cols)
    reach = float(np.abs(maps.maps).max()) or 1.0
    fig = Figure(figsize=(1.6 * cols + 0.6, 1.75 * rows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    shown_image = None
    for k, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.set_visible(False)
            continue
        shown_image = ax.imshow(maps.maps[k].reshape(image_shape), cmap="RdBu", vmin=-reach, vmax=reach,
                                interpolation="nearest")
        ax.set_title(class_name(class_names, k), fontsize=15)
    if shown_image is not None:
        bar = fig.colorbar(shown_image, ax=list(axes), shrink=0.8)
        bar.set_label("ink here: blue raises the class,\nred lowers it (log-odds)", fontsize=13)
        bar.ax.tick_params(labelsize=12)
    return fig
