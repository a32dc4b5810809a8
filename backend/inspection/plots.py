"""Matplotlib figures: the normalised confusion heatmap and the strip of sample images."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .evaluation import Evaluation, Samples  # noqa: E402


def confusion_heatmap(evaluation: Evaluation, title: str | None = None) -> Figure:
    """Rows normalised, diagonal zeroed: the brighter a cell, the more often that true label was
    taken for that predicted one."""
    n = len(evaluation.labels)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    image = ax.imshow(evaluation.normalized, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n), evaluation.labels, rotation=45 if max(map(len, evaluation.labels)) > 2 else 0)
    ax.set_yticks(range(n), evaluation.labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title or f"Errors by class (accuracy {evaluation.accuracy:.2%}; rows normalised, diagonal zeroed)",
                 fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true label's images")
    return fig


def sample_strip(samples: Samples, per_row: int = 15) -> Figure:
    """Each image titled with its prediction; misclassified ones with a red title on an inverted colormap."""
    n = len(samples.labels)
    cols = min(per_row, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.1), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ok = bool(samples.correct[k])
        ax.imshow(samples.images[k].reshape(samples.image_shape), cmap="binary" if ok else "Greys_r")
        ax.set_title(samples.class_names[int(samples.predictions[k])] if 0 <= int(samples.predictions[k]) <
                     len(samples.class_names) else str(samples.predictions[k]),
                     color="black" if ok else "red", fontsize=11, fontweight="normal" if ok else "bold")
    fig.tight_layout(pad=0.3)
    return fig


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (and closes it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()
