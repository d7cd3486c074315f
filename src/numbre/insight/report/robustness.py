"""Robustness curves: accuracy as the test digits are rotated, shifted, scaled, thickened, thinned and
noised.

MNIST's test digits are all upright, centred, 20 px tall and drawn with one pen; real drawings are
not. Each curve measures how fast a model's accuracy falls as one of those regularities is broken.
The perturbed images are made once per level (NumPy/SciPy on (N, 28, 28) float images in [0, 1])
and every model is scored on the same ones, so the curves of compared models differ only by model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SEED = 0  # shift directions and noise are random but the same on every run and for every model
CENTRE = 13.5  # the centre of a 28x28 image in pixel coordinates
PLUS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)[None]  # one pixel, no diagonal step


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the image centre; positive degrees turn the digit counter-clockwise on screen."""
    if degrees == 0:
        return images.copy()
    return ndimage.rotate(images, degrees, axes=(1, 2), reshape=False, order=1, mode="constant")


def shift(images: np.ndarray, pixels: int, seed: int = SEED) -> np.ndarray:
    """Move each digit `pixels` px up, down, left or right (a seeded random choice per image);
    ink pushed over the edge is lost, as it would be off a cropped photo."""
    directions = np.random.default_rng(seed).integers(0, 4, len(images))
    moved = images.copy()
    for direction, (down, right) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
        chosen = directions == direction
        moved[chosen] = ndimage.shift(images[chosen], (0, down * pixels, right * pixels), order=0,
                                      mode="constant")
    return moved


def scale(images: np.ndarray, factor: float) -> np.ndarray:
    """Zoom about the image centre: 0.5 halves the digit's size, 1.4 lets it touch the border."""
    if factor == 1:
        return images.copy()
    inverse = 1 / factor  # affine_transform maps output coordinates to input ones
    matrix = np.diag([1.0, inverse, inverse])
    offset = np.array([0.0, CENTRE - CENTRE * inverse, CENTRE - CENTRE * inverse])
    return ndimage.affine_transform(images, matrix, offset=offset, order=1, mode="constant")


def thicken(images: np.ndarray, steps: int) -> np.ndarray:
    """Grey dilation, one pixel per step in each direction: a broader pen."""
    for _ in range(steps):
        images = ndimage.grey_dilation(images, footprint=PLUS)
    return images.copy() if steps == 0 else images


def thin(images: np.ndarray, steps: int) -> np.ndarray:
    """Grey erosion, one pixel per step: a finer pen (two steps erase MNIST's thinnest strokes)."""
    for _ in range(steps):
        images = ndimage.grey_erosion(images, footprint=PLUS)
    return images.copy() if steps == 0 else images


def noise(images: np.ndarray, sigma: float, seed: int = SEED) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sigma` (1 = full ink) and clip to [0, 1]."""
    if sigma == 0:
        return images.copy()
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0.0, sigma, images.shape).astype(images.dtype), 0.0, 1.0)


@dataclass(frozen=True)
class Perturbation:
    name: str
    axis_label: str
    levels: tuple[float, ...]  # includes the level that leaves images unchanged
    identity: float
    apply: Callable[[np.ndarray, float], np.ndarray]


PERTURBATIONS = (
    Perturbation("rotated", "rotation (degrees, + is counter-clockwise)",
                 (-45, -30, -15, 0, 15, 30, 45), 0, rotate),
    Perturbation("shifted", "shift (pixels, random direction)", (0, 1, 2, 3, 4, 5), 0,
                 lambda images, level: shift(images, int(level))),
    Perturbation("scaled", "scale factor", (0.5, 0.7, 0.85, 1.0, 1.2, 1.4), 1.0, scale),
    Perturbation("thickened", "dilation (pixels)", (0, 1, 2, 3), 0,
                 lambda images, level: thicken(images, int(level))),
    Perturbation("thinned", "erosion (pixels)", (0, 1, 2), 0, lambda images, level: thin(images, int(level))),
    Perturbation("noised", "Gaussian noise (standard deviation, 1 = full ink)",
                 (0, 0.1, 0.2, 0.3, 0.4, 0.5), 0, noise),
)


@dataclass(frozen=True)
class RobustnessCurves:
    """accuracy[model label][perturbation name] holds one accuracy per level of that perturbation."""

    perturbations: tuple[Perturbation, ...]
    accuracy: dict[str, dict[str, list[float]]]
    images: int


Scorer = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float images in [0, 1] -> (N,) predicted class


def robustness_curves(scorers: dict[str, Scorer], images: np.ndarray, labels: np.ndarray,
                      perturbations: Sequence[Perturbation] = PERTURBATIONS) -> RobustnessCurves:
    """Accuracy of every model (label -> predict function) at every level of every perturbation.
    `images` are uint8 (N, 28, 28); the unchanged images are scored once and shared by all curves."""
    clean = images.astype(np.float32) / 255
    clean_accuracy = {label: float((predict(clean) == labels).mean()) for label, predict in scorers.items()}
    accuracy: dict[str, dict[str, list[float]]] = {label: {} for label in scorers}
    for perturbation in perturbations:
        for label in scorers:
            accuracy[label][perturbation.name] = []
        for level in perturbation.levels:
            perturbed = None if level == perturbation.identity else perturbation.apply(clean, level)
            for label, predict in scorers.items():
                if perturbed is None:
                    accuracy[label][perturbation.name].append(clean_accuracy[label])
                else:
                    accuracy[label][perturbation.name].append(float((predict(perturbed) == labels).mean()))
    return RobustnessCurves(tuple(perturbations), accuracy, len(images))
