"""A picture of what preprocessing did to one image: every stage side by side, named.

When a drawing is misread, this answers "what did the network actually see?".
matplotlib is not a base dependency (the inference install stays small), so it
is imported only here, and only when a picture is asked for.
"""

from __future__ import annotations

from pathlib import Path

from numbre.atomic import atomic_save
from numbre.plots import _pyplot
from numbre.preprocess import Prepared


def save_stages_png(prepared: Prepared, path: Path) -> None:
    """Write each stage of `prepared` (made with explain=True) as one row of panels to a PNG."""
    plt = _pyplot()  # raises NumbreError with install advice when matplotlib is missing
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
