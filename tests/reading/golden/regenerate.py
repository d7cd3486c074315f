"""Golden outputs of numbre.reading.preprocess.to_mnist for a few fixed inputs.

The inputs are drawn here with Pillow (no data files, no randomness beyond a
fixed seed), and the 28x28 result of each is stored as tests/reading/golden/NAME.npy.
tests/reading/test_preprocess.py compares to_mnist with these files, so any change to
preprocessing shows up as a failing test. After an intended change, look at
the new outputs (`--png` writes a side-by-side picture), then regenerate:

    python tests/reading/golden/regenerate.py [--png golden.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FOLDER = Path(__file__).resolve().parent

# A 7, a 4 and a 0 as polylines in a unit box (x right, y down).
SHAPES = {
    "7": [[(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)]],
    "4": [[(0.6, 0.05), (0.12, 0.65), (0.85, 0.65)], [(0.65, 0.35), (0.65, 0.95)]],
    "0": [[(0.5 + 0.32 * np.cos(a), 0.5 + 0.45 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 40)]],
}


def draw(shape: str, size: int, pen: float, box: tuple[float, float, float, float],
         ink: int = 0, paper: int = 255, mode: str = "L") -> Image.Image:
    """`shape` drawn with a round pen of `pen` px inside `box` (fractions of the image: x0, y0, x1, y1)."""
    image = Image.new(mode, (size, size), paper)
    pencil = ImageDraw.Draw(image)
    x0, y0, x1, y1 = (value * size for value in box)
    for line in SHAPES[shape]:
        points = [(x0 + x * (x1 - x0), y0 + y * (y1 - y0)) for x, y in line]
        pencil.line(points, fill=ink, width=max(1, round(pen)), joint="curve")
        for x, y in (points[0], points[-1]):
            pencil.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=ink)
    return image


def photographed(image: Image.Image, seed: int = 0) -> np.ndarray:
    """Low contrast, a lighting gradient, paper grain and blur: a phone picture of the page."""
    rng = np.random.default_rng(seed)
    values = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)), np.float64) / 255
    height, width = values.shape
    light = 0.95 - 0.3 * np.linspace(0, 1, width)[None, :] - 0.1 * np.linspace(0, 1, height)[:, None]
    picture = light * (0.55 + 0.45 * values) + rng.normal(0, 0.015, values.shape)
    return np.clip(picture * 255, 0, 255).astype(np.uint8)


def golden_inputs() -> dict[str, np.ndarray | Image.Image]:
    """Name -> input image, each deterministic."""
    transparent = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    transparent.putalpha(draw("4", 280, 18, (0.3, 0.1, 0.8, 0.8), ink=255, paper=0))
    return {
        "canvas_thin_7": draw("7", 280, 3, (0.2, 0.15, 0.7, 0.85)),
        "canvas_marker_7": draw("7", 280, 36, (0.15, 0.1, 0.8, 0.9), ink=255, paper=0),
        "transparent_4": transparent,
        "photo_0": photographed(draw("0", 400, 7, (0.35, 0.25, 0.75, 0.8))),
        "small_0": draw("0", 28, 2, (0.3, 0.15, 0.7, 0.85), ink=255, paper=0),
    }


def main() -> None:
    from numbre.reading.preprocess import to_mnist

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also write inputs and outputs side by side to this PNG")
    args = parser.parse_args()
    outputs = {}
    for name, image in golden_inputs().items():
        outputs[name] = to_mnist(image).image
        np.save(FOLDER / f"{name}.npy", outputs[name])
        print(f"wrote {FOLDER / f'{name}.npy'}")
    if args.png:
        row = np.concatenate([np.kron(image, np.ones((4, 4))) for image in outputs.values()], axis=1)
        Image.fromarray((row * 255).astype(np.uint8)).save(args.png)


if __name__ == "__main__":
    main()
