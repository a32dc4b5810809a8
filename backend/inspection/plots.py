"""Matplotlib figures: the normalised confusion heatmap, image grids, the comparison's pictures.

Figures are made with matplotlib's object API, never pyplot: the dashboard draws on its page thread
and on download threads (a report) at the same time, and pyplot's shared state is not thread-safe.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.figure import Figure

from .compare import Comparison
from .evaluation import Evaluation, Samples, class_name


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
    bar.set_label("share of the true label's images", fontsize=12)
    bar.ax.tick_params(labelsize=11)
    return fig


def tile_title(prediction: int, label: int, class_names: tuple[str, ...]) -> str:
    """ "pred (true)": what the model said, then the true label."""
    return f"{class_name(class_names, prediction)} ({class_name(class_names, label)})"


def sample_strip(samples: Samples, per_row: int = 10) -> Figure:
    """The random strip: see `image_grid`."""
    return image_grid(samples.images, samples.image_shape, samples.labels, samples.predictions, samples.class_names,
                      samples.confidence, per_row)


def image_grid(images: np.ndarray, image_shape: tuple[int, int], labels: np.ndarray, predictions: np.ndarray,
               class_names: tuple[str, ...], confidence: np.ndarray | None = None, per_row: int = 10) -> Figure:
    """Each image titled "prediction (true label)" in a size a projector shows (about 18 px at
    1280x720), with the confidence in the prediction beneath when known; misclassified ones with a
    bold red title on an inverted colormap."""
    n = len(labels)
    cols = max(1, min(per_row, n))
    rows = max(1, math.ceil(n / cols))
    longest = max((len(tile_title(int(p), int(t), class_names)) for p, t in zip(predictions, labels, strict=True)),
                  default=1)
    size = 16 if longest <= 7 else 10  # long class names ("Ankle boot (Sneaker)") must not overlap
    fig = Figure(figsize=(cols * 1.0, rows * (1.75 if confidence is not None else 1.4)))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ok = bool(labels[k] == predictions[k])
        ax.imshow(images[k].reshape(image_shape), cmap="binary" if ok else "Greys_r")
        ax.set_title(tile_title(int(predictions[k]), int(labels[k]), class_names),
                     color="black" if ok else "red", fontsize=size, fontweight="normal" if ok else "bold")
        if confidence is not None:
            ax.text(0.5, -0.08, f"{confidence[k]:.0%}", transform=ax.transAxes, ha="center", va="top",
                    fontsize=max(9, size - 4), color="black" if ok else "red")
    fig.tight_layout(pad=0.3, h_pad=0.8)
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def disagreement_grid(images: np.ndarray, image_shape: tuple[int, int], labels: np.ndarray,
                      predictions_a: np.ndarray, predictions_b: np.ndarray, class_names: tuple[str, ...],
                      per_row: int = 10) -> Figure:
    """Each image titled with its true label, and beneath what A and B said: green when right, red
    (bold) when wrong."""
    n = len(labels)
    cols = max(1, min(per_row, n))
    rows = max(1, math.ceil(n / cols))
    longest = max((len(class_name(class_names, int(v))) for v in (*labels, *predictions_a, *predictions_b)),
                  default=1)
    size = 14 if longest <= 3 else 9
    fig = Figure(figsize=(cols * 1.1, rows * 2.0))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k].reshape(image_shape), cmap="binary")
        ax.set_title(class_name(class_names, int(labels[k])), fontsize=size)
        for line, (side, said) in enumerate((("A", predictions_a[k]), ("B", predictions_b[k]))):
            right = bool(said == labels[k])
            ax.text(0.5, -0.06 - 0.2 * line, f"{side}: {class_name(class_names, int(said))}", transform=ax.transAxes,
                    ha="center", va="top", fontsize=max(8, size - 3), color="#1a7f37" if right else "red",
                    fontweight="normal" if right else "bold")
    fig.tight_layout(pad=0.3, h_pad=1.6)
    return fig


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
    bar.set_label("B − A, share of the true label's images", fontsize=12)
    return fig
