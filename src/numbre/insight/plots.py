"""PNG figures: labelled sample grids, confusion-matrix heat maps and the preprocessing stages of one
image (matplotlib, no display). matplotlib is not a base dependency, so it is imported only when a
figure is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from numbre.atomic import atomic_save
from numbre.errors import NumbreError

if TYPE_CHECKING:
    from numbre.reading.preprocess import Prepared


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NumbreError("plots need matplotlib: pip install 'numbre[train]'") from None
    matplotlib.use("Agg")  # files only; never needs a screen
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    atomic_save(path, lambda temp: figure.savefig(temp, format="png", dpi=100))


def save_png_with_text(figure, path: Path | str, key: str, value: object) -> Path:
    """Write `figure` atomically as a PNG whose text chunk `key` holds `value` as JSON (what the
    figure shows, for tests and tools to read back), then release the figure."""
    import json

    plt = pyplot()
    path = Path(path)
    metadata = {key: json.dumps(value)}
    try:
        atomic_save(path, lambda temp: figure.savefig(temp, format="png", dpi=100, metadata=metadata))
    finally:
        plt.close(figure)
    return path


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names, path: Path,
                columns: int = 10, title: str = "") -> None:
    """A grid of images, each captioned with its class name."""
    plt = pyplot()
    rows = int(np.ceil(len(images) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3 + 0.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, label in zip(axes.flat, images, labels, strict=False):
        axis.imshow(image, cmap="gray", vmin=0, vmax=255)
        axis.set_title(class_names[int(label)], fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def confusion_heatmap(confusion: np.ndarray, class_names, path: Path, title: str = "") -> None:
    """The confusion matrix as a heat map with counts in the cells (log colour scale)."""
    plt = pyplot()
    from matplotlib.colors import LogNorm

    size = len(class_names)
    figure, axis = plt.subplots(figsize=(1.0 + 0.6 * size, 0.8 + 0.6 * size))
    axis.imshow(confusion + 1, cmap="Blues", norm=LogNorm())
    long_names = size and max(map(len, class_names)) > 2
    axis.set_xticks(range(size), labels=class_names, rotation=45 if long_names else 0)
    axis.set_yticks(range(size), labels=class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = confusion.max() / 3
    for row in range(size):
        for column in range(size):
            count = confusion[row, column]
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > threshold else "black")
    axis.set_title(title or "confusion matrix")
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def save_stages_png(prepared: Prepared, path: Path | str) -> None:
    """Write each stage of `prepared` (made with explain=True) as one row of panels to a PNG: when a
    drawing is misread, this answers "what did the network actually see?"."""
    plt = pyplot()  # raises NumbreError with install advice when matplotlib is missing
    stages = list(prepared.stages) or [("28x28", prepared.image)]
    figure, axes = plt.subplots(1, len(stages), figsize=(1.9 * len(stages), 2.3), squeeze=False)
    for axis, (name, image) in zip(axes[0], stages, strict=True):
        axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axis.set_title(f"{name}\n{image.shape[1]}x{image.shape[0]}", fontsize=8)
        axis.axis("off")
    if prepared.empty:
        figure.suptitle("no digit found: the image is blank or nearly blank", fontsize=9)
    figure.tight_layout()
    atomic_save(Path(path), lambda temp: figure.savefig(temp, format="png", dpi=100))
    plt.close(figure)
