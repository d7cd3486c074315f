"""Lines of handwritten digits with known labels: the training source of the whole-number reader.

A reader that takes a line in one pass (numbre.reading.line_reader) has to learn
where digits start and end from lines that look like users' lines: digits that
stand apart at uneven gaps, touch, overlap, have a stroke broken where the pen
skipped, sit on a wavering baseline and differ in size. Each line here holds
1-12 digits from one of two training sources, written by one hand:

- "mnist": MNIST *training* digits re-stroked with the line's pen
  (`numbre.data.drawn.restroke`) and painted in one of drawn.py's styles
  (canvas, paper, marker, photo);
- "synthetic": digits of `numbre.data.synthetic`'s *training* part (its
  allographs and style bands, never the held-out ones), drawn by one writer and
  degraded as that writer's medium (scan, photo, canvas);
- "mixed": both in one line (one pen, drawn.py's styles).

About one line in eight also holds a scribble (a tangle, a zigzag or a coil)
among its digits, labelled JUNK: the reader learns to name ink that is no
digit instead of reading it as the nearest digit.

Never used here (kept for independent checks): MNIST's test set (the
benchmarks draw from it), the synthesiser's held-out part, scikit-learn's
digits and handwriting fonts.

Deterministic: line `i` of seed `s` draws from its own generator
`default_rng((s, STREAM, i))`, so a set is the same whatever the number of
worker processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from numbre.data.drawn import STYLES, erase_band, render, restroke, touching_left
from numbre.data.synthetic import digit_ink, page_image, random_writer

JUNK = 10  # the label of ink that is no digit
JUNK_TEXT = "?"
STREAM = 11  # the generator stream of lines (synthetic.py uses 0-3)
LENGTHS = (1, 12)  # digits per line, inclusive
LINE_KINDS = ("apart", "touching", "overlapping", "broken", "touching and broken")
SOURCES = ("mnist", "synthetic", "mixed")
SOURCE_SHARES = (0.5, 0.35, 0.15)
JUNK_SHARE = 0.12  # lines holding one scribble
# How each gap between neighbours is made, per kind: (apart, touching, overlapping) weights.
GAPS = {"apart": (1.0, 0.0, 0.0), "touching": (0.25, 0.6, 0.15), "overlapping": (0.2, 0.3, 0.5),
        "broken": (1.0, 0.0, 0.0), "touching and broken": (0.25, 0.55, 0.2)}


@dataclass(frozen=True)
class Line:
    """One written line: the user's image (uint8 RGB or RGBA) and its labels left to right."""

    image: np.ndarray
    labels: tuple[int, ...]  # 0-9 for digits, JUNK for a scribble
    kind: str
    source: str

    @property
    def text(self) -> str:
        """The labels as a string, "?" for a scribble: "40?7"."""
        return "".join(JUNK_TEXT if label == JUNK else str(label) for label in self.labels)


def make_lines(count: int, seed: int, images: np.ndarray, labels: np.ndarray, *, start: int = 0,
               junk_share: float = JUNK_SHARE, variation: float = 0.0) -> list[Line]:
    """Lines `start` .. `start + count - 1` of `seed`, with digits drawn from (images, labels), which
    should be MNIST's training set (`variation`: see `make_line`)."""
    if count < 0:
        raise ValueError("count must be at least 0")
    return [make_line(np.random.default_rng((seed, STREAM, index)), images, labels, junk_share=junk_share,
                      variation=variation)
            for index in range(start, start + count)]


def make_line(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, *,
              length: int | None = None, kind: str | None = None, source: str | None = None,
              junk_share: float = JUNK_SHARE, variation: float = 0.0) -> Line:
    """One line of `length` digits (default 1-12, short lines as likely as long ones) of `kind`.

    `variation` moves the synthesised writers' letter forms away from the listed ones, as it does
    for the digit model's training (`numbre.data.synthetic.trajectories`); at 0 every line is what it
    was before the option existed."""
    kind = kind if kind is not None else LINE_KINDS[int(rng.integers(len(LINE_KINDS)))]
    source = source if source is not None else SOURCES[int(rng.choice(len(SOURCES), p=SOURCE_SHARES))]
    if kind not in LINE_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(LINE_KINDS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    count = length if length is not None else int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    tall = float(rng.uniform(24.0, 48.0))  # digit height in pixels (the network sees 28)
    writer = random_writer(rng, "train") if source == "synthetic" else None
    pen = writer.pen * tall if writer is not None else tall * float(rng.uniform(0.06, 0.2))
    marks: list[int] = [int(labels[i]) for i in rng.integers(0, len(labels), size=count)]
    picks = rng.integers(0, len(labels), size=count)
    if rng.random() < junk_share:
        position = int(rng.integers(0, count + 1))
        marks.insert(position, JUNK)
        picks = np.insert(picks, position, 0)
    shapes = []
    for index, mark in enumerate(marks):
        size = tall * float(rng.uniform(0.85, 1.08))
        if mark == JUNK:
            shapes.append(scribble(rng, size, pen))
        elif source == "synthetic" or (source == "mixed" and rng.random() < 0.5):
            hand = writer if writer is not None else random_writer(rng, "train")
            shapes.append(digit_ink(mark, rng, hand, height=size, variation=variation)[0])
        else:
            # MNIST digits of the drawn label: search from a random start for one with that label.
            chosen = _digit_of(int(picks[index]), mark, labels)
            upright = 1.0 if rng.random() < 0.7 else None
            shapes.append(restroke(images[chosen], size, pen, max_aspect=upright))
    if kind in ("broken", "touching and broken"):
        cut = rng.random(len(shapes)) < 0.5
        cut[rng.integers(len(shapes))] = True
        shapes = [erase_band(shape, rng, max(1.0, pen)) if chosen and marks[i] != JUNK else shape
                  for i, (shape, chosen) in enumerate(zip(shapes, cut, strict=True))]
    ink = _place(shapes, kind, tall, rng)
    margin_y, margin_x = int(rng.uniform(0.1, 0.5) * tall) + 2, int(rng.uniform(0.1, 0.6) * tall) + 2
    if writer is not None:
        image = page_image(ink, writer, rng, tall)
    else:
        ink = np.pad(ink, ((margin_y, margin_y), (margin_x, margin_x)))
        image = render(ink, rng, STYLES[int(rng.integers(len(STYLES)))])
    return Line(image, tuple(marks), kind, source)


def _digit_of(start: int, digit: int, labels: np.ndarray) -> int:
    """The first index from `start` on (wrapping round) whose label is `digit`."""
    found = np.flatnonzero(labels[start:] == digit)
    if found.size:
        return start + int(found[0])
    return int(np.flatnonzero(labels == digit)[0])


def _place(shapes: list[np.ndarray], kind: str, tall: float, rng: np.random.Generator) -> np.ndarray:
    """Shapes left to right on one ink map: gaps of the kind's mix, a wavering baseline."""
    weights = np.asarray(GAPS[kind])
    spacing = float(rng.uniform(0.08, 0.45))  # this writer's usual gap, a share of the height
    wander = float(rng.uniform(0.0, 0.2))  # how far the baseline strays, a share of the height
    drift = float(rng.uniform(-0.06, 0.06))  # a line that climbs or falls (per digit height of travel)
    line_height = int(max(shape.shape[0] for shape in shapes) + (wander + 0.1) * tall
                      + abs(drift) * len(shapes) * tall) + 4
    right_edge = np.full(line_height, -1, np.int64)
    lefts, tops, cursor = [], [], 0
    base = line_height - 2 - (abs(drift) * len(shapes) * tall if drift > 0 else 0)
    for index, shape in enumerate(shapes):
        height, width = shape.shape
        bottom = base - drift * index * tall - rng.uniform(0, wander) * tall
        top = int(np.clip(bottom - height, 0, line_height - height))
        if not lefts:
            left = 0
        else:
            how = int(rng.choice(3, p=weights / weights.sum()))
            narrower = min(width, shapes[index - 1].shape[1])
            if how == 0:
                left = cursor + int(max(0.0, rng.normal(spacing, 0.35 * spacing)) * tall)
            elif how == 1:
                left = max(touching_left(shape, top, right_edge, overlap=int(rng.integers(1, 5))),
                           cursor - int(0.2 * narrower))
            else:
                deep = max(2, int(rng.uniform(0.05, 0.15) * tall))
                left = max(touching_left(shape, top, right_edge, overlap=deep), cursor - int(0.4 * narrower))
            left = max(left, lefts[-1] + max(2, shapes[index - 1].shape[1] // 3))  # keep the order
        lefts.append(left)
        tops.append(top)
        rows, columns = np.nonzero(shape >= 0.5)
        np.maximum.at(right_edge, rows + top, columns + left)
        cursor = max(cursor, left + width)
    ink = np.zeros((line_height, cursor), np.float32)
    for shape, top, left in zip(shapes, tops, lefts, strict=True):
        window = ink[top:top + shape.shape[0], left:left + shape.shape[1]]
        np.maximum(window, shape, out=window)
    return ink


def scribble(rng: np.random.Generator, height: float, pen: float) -> np.ndarray:
    """Ink that is no digit, about a digit's size: a tangle, a zigzag or a coil (float32 in [0, 1])."""
    supersample = 2
    width = height * float(rng.uniform(0.6, 1.3))
    form = int(rng.integers(3))
    if form == 0:  # a tangle through random points
        points = rng.uniform(0, 1, size=(int(rng.integers(6, 14)), 2))
    elif form == 1:  # a zigzag, across or down
        steps = int(rng.integers(4, 9))
        along = np.linspace(0, 1, steps)
        across = np.where(np.arange(steps) % 2 == 0, 0.0, 1.0) + rng.normal(0, 0.05, steps)
        pairs = (along, across) if rng.random() < 0.5 else (across, along)
        points = np.stack(pairs, axis=1)
    else:  # a coil of loops moving right
        turns = float(rng.uniform(2.0, 4.0))
        angle = np.linspace(0, 2 * math.pi * turns, int(24 * turns))
        points = np.stack([0.5 + 0.3 * np.cos(angle) + (angle / angle[-1] - 0.5) * 0.6,
                           0.5 + 0.45 * np.sin(angle)], axis=1)
    margin = pen / 2 + 2
    pixels = (np.clip(points, 0, 1) * [width, height] + margin) * supersample
    size = (math.ceil((width + 2 * margin) * supersample), math.ceil((height + 2 * margin) * supersample))
    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).line([tuple(point) for point in pixels.tolist()], fill=255,
                                width=max(supersample, round(pen * supersample)), joint="curve")
    return np.asarray(canvas.reduce(supersample), np.float32) / 255.0
