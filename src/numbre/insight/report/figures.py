"""The report's figures, each a matplotlib `Figure` built without pyplot.

Building on `matplotlib.figure.Figure` directly needs no backend and no global state: a figure is
an ordinary object that is rendered to PNG bytes and dropped, and tests can read its axes, titles
and data to check that it shows what it claims to.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from numbre.errors import NumbreError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from numbre.insight.report.predictions import Reliability
    from numbre.insight.report.robustness import RobustnessCurves

DPI = 100
WRONG = "#c62828"  # captions of wrong answers


def require_matplotlib() -> None:
    """Fail with an install hint when the training extra (which brings matplotlib) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NumbreError("reports need matplotlib: pip install 'numbre[train]'") from None


def _figure(width: float, height: float) -> Figure:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def image_grid(images: np.ndarray, captions: Sequence[str], columns: int, title: str = "",
               colours: Sequence[str] | None = None) -> Figure:
    """One panel per uint8 28x28 image, captioned; `colours` marks captions (wrong answers in red)."""
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    # Laid out in inches: square 1-inch panels, room above each for its caption lines.
    cell, gap, caption_height = 1.0, 0.15, 0.06 + 0.15 * lines
    title_height = 0.4 if title else 0.0
    width = columns * cell + (columns - 1) * gap + 0.2
    height = title_height + rows * (cell + caption_height) + 0.1
    figure = _figure(width, height)
    figure.subplots_adjust(left=0.1 / width, right=1 - 0.1 / width, bottom=0.1 / height,
                           top=1 - (title_height + caption_height) / height,
                           wspace=gap / cell, hspace=caption_height / cell)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, axis in enumerate(axes):
        if index >= count:
            figure.delaxes(axis)  # the panel count is the image count
            continue
        axis.imshow(images[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axis.set_title(captions[index], fontsize=8, color=colours[index] if colours else "black")
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    return figure


def history_figure(history: list[dict[str, Any]]) -> Figure:
    """Loss and accuracy per epoch, training and (when the run held data out) validation."""
    figure = _figure(10, 3.6)
    epochs = [row["epoch"] for row in history]
    for axis, metric, title in zip(figure.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy"),
                                   strict=True):
        for prefix, name in (("train", "training"), ("val", "validation")):
            key = f"{prefix}_{metric}"
            if any(key in row for row in history):
                values = [row.get(key, np.nan) for row in history]
                axis.plot(epochs, values, marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_xticks(epochs if len(epochs) <= 20 else epochs[:: -(-len(epochs) // 20)])
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return figure


def confusion_figure(confusion: np.ndarray, row_names: Sequence[str], column_names: Sequence[str],
                     title: str) -> Figure:
    """Counts of (true, predicted) as a heat map on a log colour scale, each cell labelled.
    Rows are the data's classes; a model with a "not a digit" answer has one more column."""
    require_matplotlib()
    import matplotlib
    from matplotlib.colors import LogNorm

    rows, columns = confusion.shape
    figure = _figure(1.6 + 0.62 * columns, 1.3 + 0.55 * rows)
    axis = figure.subplots()
    colours = matplotlib.colormaps["Blues"].with_extremes(bad="white")  # zero counts are blank
    axis.imshow(confusion, cmap=colours, norm=LogNorm(vmin=1, vmax=max(2, int(confusion.max()))))
    long_names = max(map(len, column_names)) > 2
    axis.set_xticks(range(columns), labels=column_names, rotation=45 if long_names else 0,
                    ha="right" if long_names else "center", fontsize=8)
    axis.set_yticks(range(rows), labels=row_names, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = np.sqrt(max(1, confusion.max()))  # half way up the log scale
    for row in range(rows):
        for column in range(columns):
            count = int(confusion[row, column])
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > threshold else "black")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def per_class_figure(names: Sequence[str], precision: np.ndarray, recall: np.ndarray) -> Figure:
    """Precision and recall of each class side by side; the y axis starts near the lowest value so
    differences of a tenth of a percent stay visible."""
    figure = _figure(max(6.0, 0.75 * len(names) + 1.5), 3.6)
    axis = figure.subplots()
    positions = np.arange(len(names))
    axis.bar(positions - 0.2, precision, width=0.4, label="precision")
    axis.bar(positions + 0.2, recall, width=0.4, label="recall")
    lowest = float(min(precision.min(), recall.min())) if len(names) else 0.0
    axis.set_ylim(max(0.0, np.floor((lowest - 0.01) * 50) / 50), 1.0)
    axis.set_xticks(positions, labels=names, rotation=45 if max(map(len, names)) > 2 else 0, fontsize=8)
    axis.set_ylabel("share")
    axis.set_title("per-class precision and recall")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    figure.tight_layout()
    return figure


def reliability_figure(table: Reliability) -> Figure:
    """Reliability diagram: accuracy against confidence per bin (on the diagonal when calibrated),
    and below it how many answers fall in each bin."""
    figure = _figure(5.5, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = (table.edges[:-1] + table.edges[1:]) / 2
    width = table.edges[1] - table.edges[0]
    filled = table.counts > 0
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.bar(centres[filled], table.accuracy[filled], width=width * 0.9, alpha=0.8, label="accuracy")
    top.plot(table.confidence[filled], table.accuracy[filled], marker="o", color="black",
             linestyle="none", markersize=4, label="mean confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"reliability (expected calibration error {table.expected_calibration_error:.2%})",
                  fontsize=10)
    top.legend(loc="best", fontsize=8)
    bottom.bar(centres, table.counts, width=width * 0.9, color="grey")
    bottom.set_yscale("log")
    bottom.set_ylabel("answers")
    bottom.set_xlabel("confidence (highest softmax probability)")
    figure.tight_layout()
    return figure


def robustness_figure(curves: RobustnessCurves) -> Figure:
    """One panel per perturbation, one line per model."""
    count = len(curves.perturbations)
    columns = min(3, count)
    rows = -(-count // columns)
    figure = _figure(4.0 * columns, 3.3 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes[count:]:
        figure.delaxes(axis)
    for axis, perturbation in zip(axes, curves.perturbations, strict=False):
        for label, by_name in curves.accuracy.items():
            axis.plot(perturbation.levels, by_name[perturbation.name], marker="o", markersize=3, label=label)
        axis.set_xticks(perturbation.levels, labels=[f"{level:g}" for level in perturbation.levels])
        axis.set_title(perturbation.name)
        axis.set_xlabel(perturbation.axis_label, fontsize=8)
        axis.set_ylabel("accuracy")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle(f"accuracy on {curves.images:,} perturbed test images", fontsize=10)
    figure.tight_layout()
    return figure
