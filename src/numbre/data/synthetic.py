"""Handwritten digits made from pen trajectories: writers numbre has never seen, with known labels.

MNIST's 250 writers are one population; people elsewhere write a 1 with a
flag and a base, a 7 with a crossbar, an open 4, a 2 with a loop, with a
ballpoint at 300 dpi or a fat marker on a blurry phone photo. Each digit here
is a set of pen strokes (control points joined by Catmull-Rom splines), one
of several allographs (letter forms) per class, drawn by a random *writer*:
slant, aspect ratio, loop size, speed (curvature noise, overshoot), tremor,
pen width and pressure; then rasterised anti-aliased at a random resolution
and degraded like a scan, a phone photo or a drawing canvas.

Two forms come out:

- `form="raw"`: the user's image (uint8 RGB or RGBA, any size). Benchmarks
  send it through the reading pipeline (`numbre.reading.preprocess.to_mnist`,
  the Recognizer), exactly like a user's file.
- `form="mnist"`: the 28x28 uint8 digit the network sees, for training. The
  data stage may not import the reading stage, and it need not: the
  synthesiser knows its ink exactly, which is what `to_mnist`'s first half
  (decoding, polarity, background levelling, speck removal) works to recover.
  What remains is MNIST's placing (longer side 20 px, centre of mass at the
  centre, whole pixels), done here the way `center_ink` does it, after the
  same degradations (paper and light aside, which `to_ink` removes) and the
  same ink levelling (`to_ink`'s floor and scale).
  `center_ink` also brings a pen's width into MNIST's band; training writers
  draw with pens inside that band, so that step would leave them alone.

Allographs and style ranges are split in two (`split="train" | "heldout"`):
the held-out part (its own allographs, and bands of slant, aspect, pen
width, resolution, blur, noise and JPEG quality outside the training bands)
is for measuring only, never for training or tuning
(benchmarks/outside_accuracy.py). Every sample records its style, so the
split can be checked.

Everything is deterministic from a seed: sample `i` of seed `s` draws from
its own generator `default_rng((s, stream, i))`, so a set is the same
whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from numbre.data.drawn import arc, erase_band, paper_texture, render, to_uint8, touching_left
from numbre.parallel import index_chunks, map_in_order

SPLITS = ("train", "heldout")
MEDIA = ("scan", "photo", "canvas")
NUMBER_KINDS = ("apart", "touching", "broken")

Point = tuple[float, float]
Strokes = list[list[Point]]

# --- allographs -------------------------------------------------------------------------------
# Control points in a box about 0.7 wide and 1 tall, y pointing down. A point given twice is a
# corner (the spline stops there); strokes are drawn in the order a hand would draw them.


def _seq(*parts: Sequence[Point]) -> list[Point]:
    return [point for part in parts for point in part]


_LOOP9 = arc(0.36, 0.28, 0.26, 0.27, 0, -360, 9)
_TOP2 = arc(0.35, 0.28, 0.3, 0.27, 200, 360, 5)

ALLOGRAPHS: dict[int, dict[str, Strokes]] = {
    0: {"round": [arc(0.35, 0.5, 0.33, 0.49, -100, 268, 12)],
        "narrow": [arc(0.35, 0.5, 0.19, 0.49, -100, 265, 12)],
        "overlap": [arc(0.35, 0.5, 0.31, 0.48, -45, 345, 12)]},
    1: {"plain": [[(0.38, 0.0), (0.35, 1.0)]],
        "flagged": [[(0.16, 0.22), (0.4, 0.0), (0.4, 0.0), (0.36, 1.0)]],
        "flagged base": [[(0.16, 0.22), (0.4, 0.0), (0.4, 0.0), (0.36, 1.0)], [(0.12, 1.0), (0.62, 0.99)]],
        "continental": [[(0.1, 0.3), (0.3, 0.12), (0.46, 0.0), (0.46, 0.0), (0.42, 1.0)]]},
    2: {"plain": [_seq(_TOP2, [(0.58, 0.52), (0.03, 1.0), (0.03, 1.0), (0.7, 0.98)])],
        "looped": [_seq(_TOP2, [(0.55, 0.55), (0.22, 0.84), (0.1, 0.98), (0.22, 1.0), (0.28, 0.9),
                                (0.18, 0.86), (0.14, 0.95), (0.35, 1.0), (0.7, 0.97)])],
        "z-shaped": [[(0.05, 0.04), (0.65, 0.02), (0.65, 0.02), (0.04, 1.0), (0.04, 1.0), (0.7, 1.0)]]},
    3: {"round": [_seq(arc(0.33, 0.25, 0.28, 0.24, 200, 450, 7), arc(0.33, 0.73, 0.32, 0.27, 270, 520, 8))],
        "flat top": [_seq([(0.05, 0.02), (0.62, 0.02), (0.62, 0.02), (0.28, 0.42), (0.28, 0.42)],
                          arc(0.33, 0.7, 0.32, 0.29, 260, 520, 8))]},
    4: {"closed": [[(0.5, 0.0), (0.03, 0.66), (0.03, 0.66), (0.7, 0.66)], [(0.53, 0.25), (0.53, 1.0)]],
        "open": [[(0.12, 0.0), (0.08, 0.62), (0.08, 0.62), (0.7, 0.62)], [(0.55, 0.05), (0.53, 1.0)]],
        "curved open": [[(0.1, 0.0), (0.06, 0.38), (0.16, 0.6), (0.42, 0.64), (0.7, 0.58)],
                        [(0.56, 0.05), (0.52, 1.0)]]},
    5: {"two strokes": [_seq([(0.13, 0.02), (0.09, 0.45), (0.09, 0.45)],
                             arc(0.32, 0.68, 0.3, 0.29, 230, 490, 7)),
                        [(0.13, 0.02), (0.66, 0.0)]],
        "one stroke": [_seq([(0.66, 0.0), (0.13, 0.02), (0.13, 0.02), (0.09, 0.45), (0.09, 0.45)],
                            arc(0.32, 0.68, 0.3, 0.29, 230, 490, 7))]},
    6: {"curved": [_seq([(0.6, 0.02)], arc(0.63, 0.62, 0.55, 0.6, 250, 185, 4),
                        arc(0.35, 0.72, 0.28, 0.27, 180, 530, 9))],
        "straight stem": [_seq([(0.56, 0.0), (0.08, 0.7)], arc(0.35, 0.74, 0.27, 0.25, 180, 530, 9))]},
    7: {"plain": [[(0.02, 0.03), (0.7, 0.0), (0.7, 0.0), (0.28, 1.0)]],
        "crossbar": [[(0.02, 0.03), (0.7, 0.0), (0.7, 0.0), (0.28, 1.0)], [(0.2, 0.52), (0.66, 0.5)]],
        "curved stem": [[(0.02, 0.03), (0.7, 0.0), (0.7, 0.0), (0.46, 0.4), (0.33, 0.75), (0.31, 1.0)]],
        "european": [[(0.0, 0.16), (0.03, 0.03), (0.03, 0.03), (0.7, 0.0), (0.7, 0.0), (0.46, 0.4),
                      (0.34, 1.0)], [(0.24, 0.52), (0.68, 0.5)]]},
    8: {"one stroke": [[(0.6, 0.12), (0.35, 0.0), (0.12, 0.15), (0.2, 0.38), (0.5, 0.56), (0.65, 0.78),
                        (0.4, 1.0), (0.08, 0.85), (0.15, 0.6), (0.45, 0.42), (0.58, 0.24), (0.5, 0.05),
                        (0.33, 0.0)]],
        "two loops": [arc(0.35, 0.24, 0.23, 0.23, 90, 450, 9), arc(0.35, 0.72, 0.28, 0.27, -90, 270, 10)],
        "s and line": [[(0.62, 0.1), (0.35, 0.0), (0.1, 0.18), (0.35, 0.48), (0.62, 0.75), (0.38, 1.0),
                        (0.08, 0.84), (0.08, 0.84), (0.62, 0.1)]]},
    9: {"curved tail": [_seq(_LOOP9, [(0.62, 0.5), (0.56, 0.84), (0.42, 1.0), (0.24, 0.95)])],
        "straight tail": [_seq(_LOOP9, [(0.62, 0.28), (0.62, 0.28), (0.57, 1.0)])],
        "open loop": [[(0.6, 0.12), (0.36, 0.0), (0.1, 0.2), (0.16, 0.46), (0.44, 0.52), (0.62, 0.36)],
                      [(0.64, 0.0), (0.6, 1.0)]]},
}

# Allographs kept for measuring only: one unusual form per class.
HELDOUT_ALLOGRAPHS: dict[int, tuple[str, ...]] = {
    0: ("overlap",), 1: ("continental",), 2: ("z-shaped",), 3: ("flat top",), 4: ("curved open",),
    5: ("one stroke",), 6: ("straight stem",), 7: ("european",), 8: ("s and line",), 9: ("open loop",),
}
TRAIN_ALLOGRAPHS: dict[int, tuple[str, ...]] = {
    digit: tuple(name for name in forms if name not in HELDOUT_ALLOGRAPHS[digit])
    for digit, forms in ALLOGRAPHS.items()
}

# Style ranges per split, as bands [low, high); the held-out bands lie outside the training ones.
# Writer habits that every population shares (speed, tremor, loop size, pressure) are one range.
Band = tuple[float, float]
STYLE_BANDS: dict[str, dict[str, tuple[Band, ...]]] = {
    "train": {
        "slant": ((-0.1, 0.3),),  # horizontal shift per unit height (positive leans right)
        "aspect": ((0.8, 1.2),),  # width multiplier
        "pen": ((0.105, 0.21),),  # pen width / digit height: MNIST's 5-95% stroke widths as
        # `center_ink` measures them, so its stroke step leaves training writers as drawn
        "height": ((16.0, 96.0),),  # digit height in pixels: the resolution it is written at
        "blur": ((0.0, 0.9),),  # Gaussian sigma, in pixels of the digit drawn 32 px tall
        "noise": ((0.0, 0.05),),  # sensor / paper-grain noise, in ink units
        "jpeg": ((45.0, 95.0),),  # photo JPEG quality
    },
    "heldout": {
        "slant": ((-0.25, -0.1), (0.3, 0.45)),
        "aspect": ((0.6, 0.8), (1.2, 1.4)),
        "pen": ((0.045, 0.105), (0.21, 0.28)),  # fine liners and markers: `center_ink` must adapt them
        "height": ((12.0, 16.0), (96.0, 160.0)),
        "blur": ((0.9, 1.4),),
        "noise": ((0.05, 0.08),),
        "jpeg": ((20.0, 45.0),),
    },
}
SHARED_BANDS: dict[str, Band] = {
    "speed": (0.0, 1.0),  # 0 careful .. 1 hurried: curvature noise and overshoot grow with it
    "tremor": (0.0, 0.012),  # wobble amplitude, share of the height
    "loop": (-0.12, 0.12),  # moves the waist up or down: big top loop vs big bottom loop
    "pressure": (0.0, 0.45),  # pen width varies along a stroke by up to this share
}


@dataclass(frozen=True)
class Writer:
    """One person's hand and pen and the medium the digit reaches numbre through."""

    split: str
    slant: float
    aspect: float
    pen: float
    height: float
    blur: float
    noise: float
    jpeg: float
    speed: float
    tremor: float
    loop: float
    pressure: float
    medium: str

    def style(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _draw_band(rng: np.random.Generator, bands: tuple[Band, ...]) -> float:
    """Uniform over the union of the bands."""
    widths = [high - low for low, high in bands]
    position = float(rng.uniform(0.0, sum(widths)))
    for (low, _high), width in zip(bands, widths, strict=True):
        if position < width:
            return low + position
        position -= width
    return bands[-1][1]


def random_writer(rng: np.random.Generator, split: str = "train", medium: str | None = None) -> Writer:
    """A writer drawn from `split`'s style bands; `medium` fixes how the image is made."""
    _check_split(split)
    bands = STYLE_BANDS[split]
    values = {name: _draw_band(rng, options) for name, options in bands.items()}
    values.update({name: float(rng.uniform(*band)) for name, band in SHARED_BANDS.items()})
    chosen = medium if medium is not None else MEDIA[int(rng.integers(len(MEDIA)))]
    if chosen not in MEDIA:
        raise ValueError(f"unknown medium {chosen!r}; choose one of {', '.join(MEDIA)}")
    return Writer(split=split, medium=chosen, **values)


# --- trajectories -----------------------------------------------------------------------------

_SAMPLES = 7  # points per spline segment
_T = np.linspace(0.0, 1.0, _SAMPLES, endpoint=False)
# Catmull-Rom weights of (p0, p1, p2, p3) at each sample of a segment: (samples, 4).
_BASIS = 0.5 * np.stack([-_T + 2 * _T**2 - _T**3, 2 - 5 * _T**2 + 3 * _T**3,
                         _T + 4 * _T**2 - 3 * _T**3, -_T**2 + _T**3], axis=1)


def _spline(points: np.ndarray) -> np.ndarray:
    """A uniform Catmull-Rom spline through `points`, _SAMPLES points per segment (a repeated
    point makes a corner: the curve stops there and turns)."""
    if len(points) == 1:
        return points.copy()
    padded = np.concatenate([points[:1], points, points[-1:]])
    count = len(points) - 1
    windows = np.stack([padded[:count], padded[1:count + 1], padded[2:count + 2], padded[3:count + 3]],
                       axis=1)  # (segments, 4, 2)
    curve = np.einsum("sk,nkd->nsd", _BASIS, windows).reshape(-1, 2)
    return np.concatenate([curve, points[-1:]])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Gaussian noise smoothed over about five samples: a hand's slow wobble, unit-ish amplitude."""
    noise = rng.standard_normal((shape[0] + 4, shape[1]))
    return (noise[:-4] + 2 * noise[1:-3] + 3 * noise[2:-2] + 2 * noise[3:-1] + noise[4:]) / 4.4


# Letter-form variation (`variation` of `trajectories`, for training sources): at 1, each control
# point moves by a further N(0, VARY_POINTS) of the height and the whole digit is bent by a smooth
# wave of amplitude N(0, VARY_BEND) along each axis. People's letter forms are not a list of a few;
# this makes each training digit a form of its own near a listed one. Chosen on the dev sets
# (benchmarks/dev_accuracy.py: training letter forms only), never on the held-out writers.
VARY_POINTS = 0.035
VARY_BEND = 0.05


def _bend(paths: list[np.ndarray], rng: np.random.Generator, amplitude: float) -> list[np.ndarray]:
    """The paths bent by one smooth wave per axis (x moved as a function of y, y of x)."""
    size = rng.normal(0.0, amplitude, 2)
    frequency = rng.uniform(0.5, 1.5, 2)
    phase = rng.uniform(0.0, 2 * math.pi, 2)
    return [np.stack([path[:, 0] + size[0] * np.sin(2 * math.pi * frequency[0] * path[:, 1] + phase[0]),
                      path[:, 1] + size[1] * np.sin(2 * math.pi * frequency[1] * path[:, 0] + phase[1])],
                     axis=1) for path in paths]


def trajectories(digit: int, allograph: str, writer: Writer, rng: np.random.Generator,
                 variation: float = 0.0) -> list[np.ndarray]:
    """The pen paths of one digit in unit coordinates (height 1, y down), the writer's hand applied.

    `variation` > 0 moves the letter form itself (VARY_POINTS, VARY_BEND); at 0 nothing more is
    drawn from `rng`, so every seed gives what it always gave.
    """
    strokes = ALLOGRAPHS[digit][allograph]
    if variation > 0:
        strokes = [np.asarray(stroke, np.float64) + rng.normal(0.0, VARY_POINTS * variation, (len(stroke), 2))
                   for stroke in strokes]
    jitter = 0.008 + 0.022 * writer.speed  # hurried writing strays further from the form
    overshoot = 0.06 * writer.speed
    paths = []
    for stroke in strokes:
        points = np.asarray(stroke, np.float64)
        points = points + rng.normal(0.0, jitter, size=points.shape)
        path = _spline(points)
        if overshoot > 0 and len(path) > 2:  # the pen runs on past where it meant to stop
            tail = path[-1] - path[-2]
            norm = float(np.hypot(*tail))
            if norm > 1e-9:
                extra = overshoot * rng.uniform(0.0, 1.0)
                path = np.concatenate([path, path[-1:] + tail / norm * extra])
        if writer.tremor > 0:
            path = path + _smooth_noise(rng, path.shape) * writer.tremor
        paths.append(path)
    if variation > 0:
        paths = _bend(paths, rng, VARY_BEND * variation)
    out = []
    for path in paths:
        x, y = path[:, 0], path[:, 1]
        y = y + writer.loop * 4 * y * (1 - y) * (y > 0) * (y < 1)  # waist up or down
        x = (x - 0.35) * writer.aspect + writer.slant * (0.5 - y)
        out.append(np.stack([x, y], axis=1))
    return out


def rasterise(paths: list[np.ndarray], height: float, pen: float, pressure: float,
              rng: np.random.Generator) -> np.ndarray:
    """Draw pen paths (unit coordinates) `height` px tall with a `pen` px wide pen: float32 ink in [0, 1].

    Drawn with Pillow at 2-4 times the size, then box-averaged: anti-aliased
    edges at the cost of one small image. The ink is cropped to the strokes
    plus a margin of two pixels.
    """
    supersample = 4 if height < 24 else 3 if height < 80 else 2
    scale = height * supersample
    width_px = max(1.0, pen) * supersample
    every = np.concatenate(paths)
    low = every.min(axis=0)
    margin = width_px / 2 + 2 * supersample
    size_x = math.ceil(((every[:, 0].max() - low[0]) * scale + 2 * margin) / supersample) * supersample
    size_y = math.ceil(((every[:, 1].max() - low[1]) * scale + 2 * margin) / supersample) * supersample
    canvas = Image.new("L", (size_x, size_y), 0)
    draw = ImageDraw.Draw(canvas)
    for path in paths:
        pixels = (path - low) * scale + margin
        # Pressure: the stroke is drawn in pieces whose widths follow a slow random profile.
        pieces = max(1, len(pixels) // 10) if pressure > 0.02 else 1
        phase, frequency = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 3.0)
        bounds = np.linspace(0, len(pixels) - 1, pieces + 1).round().astype(int)
        for index in range(pieces):
            piece = pixels[bounds[index]:bounds[index + 1] + 1]
            factor = 1.0 + pressure * math.sin(phase + frequency * math.pi * index / pieces)
            width = max(supersample, width_px * factor)
            coordinates = [tuple(point) for point in piece.tolist()]
            if len(coordinates) > 1:
                draw.line(coordinates, fill=255, width=round(width))
            # Round pen ends, and round joins where a wide pen would show the corners of the line's
            # segments (Pillow's own joint="curve" costs five times more).
            joins = coordinates if width > 3 * supersample else (coordinates[0], coordinates[-1])
            radius = width / 2
            for x, y in joins:
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    small = canvas.reduce(supersample)
    return np.asarray(small, np.float32) / 255.0


# --- degradation ------------------------------------------------------------------------------

def _degrade_ink(ink: np.ndarray, writer: Writer, rng: np.random.Generator, height: float) -> np.ndarray:
    """The ink map the reader (`to_ink`) would recover from this writer's image: blur, a paler
    pen, noise, for a photo a slight turn and JPEG blocks, then `to_ink`'s levelling.

    Paper tint, lighting and ink colour are left out: `to_ink` removes them.
    """
    sigma = writer.blur * height / 32  # the digit is `height` px tall here
    if sigma > 0.05:
        ink = ndimage.gaussian_filter(ink, sigma)
    strength = rng.uniform(0.6, 1.0)  # a light pen, a pale scan
    ink = ink * strength
    if writer.noise > 0:
        ink = ink + rng.standard_normal(ink.shape, np.float32) * np.float32(writer.noise)
    if writer.medium == "photo":
        picture = Image.fromarray(np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8), "L")
        picture = picture.rotate(rng.uniform(-6, 6), resample=Image.BILINEAR, expand=True)
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(writer.jpeg))
        ink = np.asarray(Image.open(buffer), np.float32) / 255.0
    inked = ink[ink > max(6 * writer.noise, 0.04)]
    rank = int(0.9 * (inked.size - 1))
    level = float(np.partition(inked, rank)[rank]) if inked.size else strength
    floor = min(3 * writer.noise, 0.3 * level)
    return np.clip((ink - floor) / max(level - floor, 1e-3), 0.0, 1.0).astype(np.float32)


def to_mnist_form(ink: np.ndarray) -> np.ndarray:
    """An ink map -> 28x28 uint8 placed as MNIST placed digits (and as `center_ink` places them).

    Crop to the ink (>= 0.5), longer side to 20 px keeping the aspect (Pillow
    BOX when shrinking, BILINEAR when enlarging), centre of mass on (14, 14)
    in whole pixels, brightest pixel 255.
    """
    mask = ink >= 0.5 - 1e-3
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    image = np.zeros((28, 28), np.float32)
    if rows.size == 0:
        return image.astype(np.uint8)
    crop = np.ascontiguousarray(ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1], np.float32)
    height, width = crop.shape
    scale = 20 / max(height, width)
    size = (max(1, min(20, round(width * scale))), max(1, min(20, round(height * scale))))
    digit = np.asarray(Image.fromarray(crop, "F").resize(size, Image.BOX if scale < 1 else Image.BILINEAR))
    total = float(digit.sum())
    if total > 0:
        row_mass = digit.sum(axis=1) @ np.arange(digit.shape[0]) / total
        column_mass = digit.sum(axis=0) @ np.arange(digit.shape[1]) / total
        top, left = round(14.0 - row_mass), round(14.0 - column_mass)
        r0, r1 = max(top, 0), min(top + digit.shape[0], 28)
        c0, c1 = max(left, 0), min(left + digit.shape[1], 28)
        image[r0:r1, c0:c1] = digit[r0 - top:r1 - top, c0 - left:c1 - left]
    top_value = float(image.max())
    if top_value > 0:
        image *= 255.0 / top_value
    return np.round(image).astype(np.uint8)


def page_image(ink: np.ndarray, writer: Writer, rng: np.random.Generator, height: float) -> np.ndarray:
    """An ink map with digits `height` px tall on a page: the image a user would hand over, uint8 RGB(A)."""
    height, width = ink.shape
    margin_y = int(rng.uniform(0.15, 0.5) * height) + 2
    margin_x = int(rng.uniform(0.15, 0.5) * max(height, width)) + 2
    ink = np.pad(ink, ((margin_y, margin_y), (margin_x, margin_x)))
    if writer.medium == "canvas":  # a mouse or finger on a drawing canvas: crisp, no paper
        return render(ink, rng, "canvas")
    colour = rng.uniform(0.0, 0.3, size=3) * np.array([1.0, 1.0, rng.uniform(1.0, 2.5)])  # black or blue
    strength = rng.uniform(0.55, 0.95)
    photo = writer.medium == "photo"
    if photo:  # uneven light, tinted paper with grain
        paper = paper_texture(ink.shape, rng, gradient=0.3)
    else:  # a flatbed scan: one even paper level
        paper = np.full((*ink.shape, 3), rng.uniform(0.85, 1.0), np.float32)
    cover = (ink * strength)[..., None]
    image = paper * (1 - cover) + colour[None, None, :] * cover
    sigma = writer.blur * height / 32
    if sigma > 0.05:
        image = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0))
    if writer.noise > 0:
        image = image + rng.normal(0.0, writer.noise, size=image.shape[:2])[..., None]
    picture = Image.fromarray(to_uint8(image), "RGB")
    if photo:  # a phone photo: a slight turn and JPEG compression
        picture = picture.rotate(rng.uniform(-6, 6), resample=Image.BILINEAR,
                                 fillcolor=picture.getpixel((0, 0)))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(writer.jpeg))
        picture = Image.open(buffer).convert("RGB")
    return np.asarray(picture)


# --- digits -----------------------------------------------------------------------------------

def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose train or heldout")


def _check_kind(kind: str) -> None:
    if kind not in NUMBER_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(NUMBER_KINDS)}")


def _allographs(split: str) -> dict[int, tuple[str, ...]]:
    return TRAIN_ALLOGRAPHS if split == "train" else HELDOUT_ALLOGRAPHS


def digit_ink(digit: int, rng: np.random.Generator, writer: Writer, *, height: float | None = None,
              allograph: str | None = None, variation: float = 0.0) -> tuple[np.ndarray, str]:
    """One digit's clean ink map at `height` px (the writer's resolution by default), and its allograph
    (`variation`: see `trajectories`)."""
    forms = _allographs(writer.split)[digit]
    chosen = allograph if allograph is not None else forms[int(rng.integers(len(forms)))]
    tall = writer.height if height is None else height
    paths = trajectories(digit, chosen, writer, rng, variation)
    return rasterise(paths, tall, writer.pen * tall, writer.pressure, rng), chosen


def synth_digit(digit: int, rng: np.random.Generator, *, split: str = "train", form: str = "raw",
                medium: str | None = None, forms: str | None = None,
                variation: float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """One synthesised digit and its recorded style (writer, allograph, digit).

    The writer's style bands come from `split`, the letter forms from `forms` (default: the same
    split); mixing the two measures what each part of the held-out split costs. The record's
    `split` names the letter forms' split, `bands` the bands'.

    `form="raw"`: the user's image, uint8 (H, W, 3) or (H, W, 4). `form="mnist"`:
    (28, 28) uint8, white on black, placed as MNIST's. For MNIST form the
    digit is rendered at its writer's height up to 40 px (beyond that the
    20 px result no longer changes, only the cost), its noise scaled along.
    `variation` moves the letter form itself (training sources; see `trajectories`).
    """
    writer = random_writer(rng, split, medium)
    if forms is not None and forms != split:
        _check_split(forms)
        writer = dataclasses.replace(writer, split=forms)
    if form == "raw":
        ink, allograph = digit_ink(digit, rng, writer, variation=variation)
        image = page_image(ink, writer, rng, writer.height)
    elif form == "mnist":
        tall = min(writer.height, 40.0)
        factor = tall / writer.height
        ink, allograph = digit_ink(digit, rng, writer, height=tall, variation=variation)
        scaled = Writer(**{**writer.style(), "noise": writer.noise * factor})  # averaged down
        image = to_mnist_form(_degrade_ink(ink, scaled, rng, tall))
    else:
        raise ValueError(f"unknown form {form!r}; choose raw or mnist")
    return image, {**writer.style(), "bands": split, "digit": digit, "allograph": allograph}


_Chunk = tuple[int, int, int, str, str, str | None, str | None, float]


def _digits_chunk(args: _Chunk) -> tuple[list[np.ndarray], list[dict]]:
    seed, start, stop, split, form, medium, forms, variation = args
    images, styles = [], []
    for index in range(start, stop):
        rng = np.random.default_rng((seed, 0, index))
        image, style = synth_digit(index % 10, rng, split=split, form=form, medium=medium, forms=forms,
                                   variation=variation)
        images.append(image)
        styles.append(style)
    return images, styles


def synth_digits(count: int, seed: int = 0, *, split: str = "train", form: str = "mnist",
                 medium: str | None = None, workers: int = 1,
                 forms: str | None = None, variation: float = 0.0) -> tuple[Any, np.ndarray, list[dict]]:
    """`count` digits, labels cycling 0-9: (images, uint8 labels, per-image style records).
    `forms` takes the letter forms from another split than the bands, `variation` moves the letter
    forms themselves (see `synth_digit`).

    MNIST form gives one (count, 28, 28) uint8 array; raw form a list of
    images of various sizes. `workers > 1` spreads the work over processes
    (the result is the same: each sample has its own seed).
    """
    _check_split(split)
    if count < 0:
        raise ValueError("count must be at least 0")
    if not 0.0 <= variation <= 3.0:
        raise ValueError(f"variation must be in [0, 3], got {variation}")
    workers = max(1, min(workers, os.cpu_count() or 1, max(1, count // 500)))
    tasks = [(seed, start, stop, split, form, medium, forms, variation)
             for start, stop in index_chunks(count, workers * 4 if workers > 1 else 1)]
    parts = map_in_order(_digits_chunk, tasks, workers)
    images = [image for part in parts for image in part[0]]
    styles = [style for part in parts for style in part[1]]
    labels = (np.arange(count) % 10).astype(np.uint8)
    if form == "mnist":
        return (np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)), labels, styles
    return images, labels, styles


# --- whole numbers ----------------------------------------------------------------------------

def synth_number(digits: Sequence[int], rng: np.random.Generator, *, split: str = "heldout",
                 kind: str = "apart", medium: str | None = None,
                 writer: Writer | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Several digits written on one line by one writer: the user's image (uint8 RGB/RGBA) and its style.

    `kind`: "apart" (gaps of 10-40% of the height), "touching" (each digit
    pushed left until its strokes overlap the previous digit's by 1-3 px, its
    box overlapping by at most a fifth of the narrower digit) or
    "broken" (about half the digits have one stroke cut, as when a pen skips).
    `writer` writes instead of one drawn from `split`'s bands (dev sets give writers of their own).
    """
    _check_kind(kind)
    writer = random_writer(rng, split, medium) if writer is None else writer
    tall = max(writer.height, 16.0)  # numbers are read line by line: a line this small is no test
    shapes, allographs = [], []
    for digit in digits:
        ink, allograph = digit_ink(int(digit), rng, writer, height=tall * rng.uniform(0.9, 1.05))
        shapes.append(ink)
        allographs.append(allograph)
    pen = max(1.0, writer.pen * tall)
    if kind == "broken":
        cut = rng.random(len(shapes)) < 0.5
        cut[rng.integers(len(shapes))] = True
        shapes = [erase_band(shape, rng, pen) if chosen else shape
                  for shape, chosen in zip(shapes, cut, strict=True)]
    line_height = int(max(shape.shape[0] for shape in shapes) + 0.3 * tall) + 4
    right_edge = np.full(line_height, -1, np.int64)
    lefts, tops, widths, cursor = [], [], [], 0
    for shape in shapes:
        top = int(np.clip(line_height - shape.shape[0] - 2 - rng.uniform(0, 0.12) * tall, 0,
                          line_height - shape.shape[0]))
        if not lefts:
            left = 0
        elif kind == "touching":
            # Strokes overlap by 1-3 px, boxes by at most a fifth of the narrower digit (as in drawn.py).
            left = max(touching_left(shape, top, right_edge, overlap=int(rng.integers(1, 4))),
                       cursor - int(0.2 * min(shape.shape[1], widths[-1])))
        else:
            left = cursor + int(rng.uniform(0.1, 0.4) * tall)
        lefts.append(left)
        tops.append(top)
        widths.append(shape.shape[1])
        rows, columns = np.nonzero(shape >= 0.5)
        np.maximum.at(right_edge, rows + top, columns + left)
        cursor = max(cursor, left + shape.shape[1])
    ink = np.zeros((line_height, cursor), np.float32)
    for shape, top, left in zip(shapes, tops, lefts, strict=True):
        window = ink[top:top + shape.shape[0], left:left + shape.shape[1]]
        np.maximum(window, shape, out=window)
    image = page_image(ink, writer, rng, tall)
    return image, {**writer.style(), "digits": "".join(str(int(d)) for d in digits), "kind": kind,
                   "allographs": allographs}


def synth_numbers(count: int, seed: int = 0, *, split: str = "heldout", kind: str = "apart",
                  lengths: tuple[int, int] = (2, 10)) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """`count` written numbers of `lengths` digits (inclusive): (the number as a string, image, style)."""
    _check_kind(kind)
    out = []
    for index in range(count):
        rng = np.random.default_rng((seed, 1 + NUMBER_KINDS.index(kind), index))
        digits = rng.integers(0, 10, size=int(rng.integers(lengths[0], lengths[1] + 1)))
        image, style = synth_number(digits.tolist(), rng, split=split, kind=kind)
        out.append((style["digits"], image, style))
    return out
