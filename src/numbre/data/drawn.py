"""Realistic user images made from MNIST digits: canvas drawings, paper, marker, photos.

MNIST accuracy says little about what a person sees: they draw with a mouse
on a 280x280 canvas, or photograph a note. These generators turn a 28x28 digit
into such an image, so tests and benchmarks/drawn_accuracy.py can measure the
whole path (decode, preprocess, network) on inputs like the real ones, with
known labels, without collecting any data.

A digit is re-stroked, not just enlarged: its MNIST stroke is thinned to a
centre line (the ridge of the distance transform) and drawn again with the
pen's own width, so a thin pen and a fat marker differ the way they do in life.
`glyph` draws digits from a small stroke font for tests that must not depend
on the MNIST files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

STYLES = ("canvas", "paper", "marker", "photo")
# Pen width in pixels of a 280 px canvas, per style; scaled with the canvas size.
PEN_WIDTHS = {"canvas": (3.0, 20.0), "paper": (2.0, 6.0), "marker": (15.0, 30.0), "photo": (3.0, 10.0)}

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive


def drawn_digit(digit28: np.ndarray, rng: np.random.Generator, *, canvas: int = 280,
                style: str = "canvas") -> np.ndarray:
    """One digit as a user's image: uint8 (canvas, canvas, 3) RGB, or (canvas, canvas, 4) RGBA for
    a transparent canvas export.

    The digit is 40-90% of the canvas height at a random position; the pen
    width is drawn from PEN_WIDTHS[style].
    """
    _check_style(style)
    low, high = PEN_WIDTHS[style]
    pen = rng.uniform(low, high) * canvas / 280
    room = canvas - 2 * (math.ceil(pen / 2) + 2)  # restroke pads by the pen radius + 2 on each side
    height = min(rng.uniform(0.4, 0.9) * canvas, room)
    shape = restroke(digit28, height, pen, max_width=min(0.9 * canvas, room))
    ink = np.zeros((canvas, canvas), np.float32)
    top = int(rng.integers(0, canvas - shape.shape[0] + 1))
    left = int(rng.integers(0, canvas - shape.shape[1] + 1))
    ink[top:top + shape.shape[0], left:left + shape.shape[1]] = shape
    return render(ink, rng, style)


def drawn_number(digits: list[np.ndarray], rng: np.random.Generator, *, touching: bool = False,
                 broken: bool = False, height: int = 200, style: str = "paper") -> np.ndarray:
    """Several digits written on one line, left to right, as a uint8 RGB (or RGBA) image."""
    return drawn_number_with_boxes(digits, rng, touching=touching, broken=broken, height=height,
                                   style=style)[0]


# The kinds of written numbers the benchmarks and the line reader's tuning draw: drawn_number's options.
NUMBER_KINDS = {"apart": {}, "touching": {"touching": True}, "broken strokes": {"broken": True},
                "touching and broken": {"touching": True, "broken": True}}


def written_numbers(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, count: int,
                    **options) -> Iterator[tuple[str, np.ndarray]]:
    """`count` lines of 2-8 digits picked from (images, labels) (MNIST's test set, say), the styles in
    turn: (the number as a string, its image)."""
    for index in range(count):
        chosen = rng.choice(len(images), size=int(rng.integers(2, 9)), replace=False)
        truth = "".join(str(int(labels[i])) for i in chosen)
        yield truth, drawn_number([images[i] for i in chosen], rng, style=STYLES[index % len(STYLES)],
                                  **options)


def drawn_number_with_boxes(digits: list[np.ndarray], rng: np.random.Generator, *, touching: bool = False,
                            broken: bool = False, height: int = 200,
                            style: str = "paper") -> tuple[np.ndarray, list[Box]]:
    """`drawn_number` and each digit's ink box (before a photo's slight turn), for segmentation tests.

    Digits are 55-80% of `height` tall, share one pen, and are written upright
    (none wider than tall). `touching`: each digit is pushed left until its
    strokes overlap the previous digit's by 1-4 px, or their boxes overlap by
    a fifth of the narrower one (then a short joining stroke bridges a small
    gap). `broken`: about half of the digits (at least one) have one stroke
    cut by a small gap, as when a pen skips.
    """
    _check_style(style)
    pen = rng.uniform(3.0, 9.0) * height / 200
    shapes = []
    for digit in digits:
        # Written upright, as people write numbers: no digit wider than tall.
        shapes.append(restroke(digit, rng.uniform(0.55, 0.8) * height, pen, max_aspect=1.0))
    if broken and shapes:
        cut = rng.random(len(shapes)) < 0.5
        cut[rng.integers(len(shapes))] = True
        shapes = [erase_band(shape, rng, pen) if chosen else shape
                  for shape, chosen in zip(shapes, cut, strict=True)]
    margin = int(0.15 * height)
    lefts, tops, widths, links = [], [], [], []
    right_edge = np.full(height, -1, np.int64)  # per row, the rightmost ink column placed so far
    cursor = margin
    for shape in shapes:
        shape_height, shape_width = shape.shape
        top = int(np.clip(height * rng.uniform(0.78, 0.86) - shape_height, 0, height - shape_height))
        if touching and lefts:
            # Strokes touch and overlap by 1-4 px, but the boxes by at most a fifth of the narrower
            # digit: slanted digits would otherwise slide deep under each other. Where the strokes
            # then miss each other by a little, a joining stroke links them, as in hurried writing.
            touch = touching_left(shape, top, right_edge, overlap=int(rng.integers(1, 5)))
            left = max(touch, cursor - int(0.2 * min(shape_width, widths[-1])))
            links.append(_link(shape, top, left, right_edge, pen))
        else:
            left = cursor + (int(rng.uniform(0.1, 0.35) * height) if lefts else 0)
        lefts.append(left)
        tops.append(top)
        widths.append(shape_width)
        rows, columns = np.nonzero(shape >= 0.5)
        np.maximum.at(right_edge, rows + top, columns + left)
        cursor = max(cursor, left + shape_width)
    width = cursor + margin
    ink = np.zeros((height, width), np.float32)
    boxes: list[Box] = []
    for shape, top, left in zip(shapes, tops, lefts, strict=True):
        window = ink[top:top + shape.shape[0], left:left + shape.shape[1]]
        np.maximum(window, shape, out=window)
        rows = np.flatnonzero((shape >= 0.5).any(axis=1))
        columns = np.flatnonzero((shape >= 0.5).any(axis=0))
        boxes.append((left + int(columns[0]), top + int(rows[0]), left + int(columns[-1]) + 1,
                      top + int(rows[-1]) + 1))
    for link in links:
        if link is not None:
            row, start, stop = link
            half = max(1, round(pen / 2))
            ink[max(0, row - half):row + half + 1, start:stop] = 1.0
    return render(ink, rng, style), boxes


def restroke(digit28: np.ndarray, height: float, pen: float, *, max_width: float | None = None,
             max_aspect: float | None = None) -> np.ndarray:
    """A 28x28 digit, enlarged to `height` px and redrawn with a `pen` px wide stroke.

    `max_width` shrinks the whole digit to fit; `max_aspect` narrows a digit
    wider than that times its height (as if written upright). Returns float32
    ink in [0, 1] (anti-aliased), cropped to the ink plus a margin of the pen radius.
    """
    digit = np.asarray(digit28, np.float32)
    digit = digit / max(float(digit.max()), 1e-6)
    rows = np.flatnonzero((digit > 0.2).any(axis=1))
    columns = np.flatnonzero((digit > 0.2).any(axis=0))
    if rows.size == 0:
        raise ValueError("the digit image has no ink")
    digit = np.ascontiguousarray(digit[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1])
    scale = height / digit.shape[0]
    if max_width is not None:
        scale = min(scale, max_width / digit.shape[1])
    new_width, new_height = digit.shape[1] * scale, digit.shape[0] * scale
    if max_aspect is not None:
        new_width = min(new_width, max_aspect * new_height)
    size = (max(1, round(new_width)), max(1, round(new_height)))
    big = np.asarray(Image.fromarray(digit, "F").resize(size, Image.BICUBIC))
    pad = math.ceil(pen / 2) + 2
    shape = np.pad(big >= 0.5, pad)
    # The centre line: pixels on the ridge of the distance to the background, without the
    # short spurs the ridge sends into corners (there the distance is small for the stroke).
    inside = ndimage.distance_transform_edt(shape)
    ridge = shape & (inside >= ndimage.maximum_filter(inside, size=3) - 0.75)
    radius = float(np.median(inside[ridge])) if ridge.any() else 1.0  # the typical stroke's half width
    nearby = ndimage.maximum_filter(inside, size=2 * round(radius) + 1)
    centre = ridge & (inside >= 0.6 * nearby)
    outside = ndimage.distance_transform_edt(~centre)
    stroke = np.clip(pen / 2 + 0.5 - outside, 0.0, 1.0)
    # Parts over twice as thick as the typical stroke (a filled loop, a blot) stay filled: the
    # shape thinned by that much keeps them and adds nothing where strokes are ordinary.
    thinning = 2 * radius - pen / 2
    if thinning > 1:
        stroke = np.maximum(stroke, np.clip(inside - thinning + 0.5, 0.0, 1.0))
    return stroke.astype(np.float32)


def render(ink: np.ndarray, rng: np.random.Generator, style: str) -> np.ndarray:
    """Paint an ink map (float in [0, 1]) the way a given medium shows it; uint8 RGB or RGBA."""
    _check_style(style)
    if style == "canvas":
        value = np.round(ink * 255).astype(np.uint8)
        if rng.random() < 0.5:  # a browser canvas export: black paint, transparency elsewhere
            rgba = np.zeros((*ink.shape, 4), np.uint8)
            rgba[..., 3] = value
            return rgba
        return np.repeat(value[..., None], 3, axis=2)  # white brush on a black canvas
    if style == "marker":
        colour = rng.uniform(0.0, 0.25, size=3)
        paper = np.full(3, rng.uniform(0.92, 1.0))
        return to_uint8(_paint(ink, paper[None, None, :], colour, strength=1.0))
    colour = rng.uniform(0.0, 0.3, size=3) * np.array([1.0, 1.0, rng.uniform(1.0, 2.5)])  # black or blue pens
    ink = _add_specks(ink, rng)
    if style == "paper":
        paper = paper_texture(ink.shape, rng, gradient=0.15)
        return to_uint8(_paint(ink, paper, colour, strength=rng.uniform(0.6, 0.95)))
    # A photo shows paper beyond the frame: paint a larger sheet, turn it, cut the frame out.
    margin = max(ink.shape) // 6
    sheet = np.pad(ink, margin)
    paper = paper_texture(sheet.shape, rng, gradient=0.3)
    image = _photograph(_paint(sheet, paper, colour, strength=rng.uniform(0.3, 0.6)), rng)
    return np.ascontiguousarray(image[margin:margin + ink.shape[0], margin:margin + ink.shape[1]])


def page_export(canvas: np.ndarray) -> np.ndarray:
    """A "canvas" style image as numbre's drawing page sends it: black ink on a white-filled pad,
    which a browser's canvas.toBlob writes as opaque RGBA (Chromium does; checked by
    tests/web/test_web_browser.py). uint8 (H, W, 4)."""
    ink = canvas[..., 3] if canvas.shape[2] == 4 else canvas[..., 0]  # the two forms `render` paints
    page = np.full((*ink.shape, 4), 255, np.uint8)
    page[..., :3] = (255 - ink)[..., None]
    return page


def glyph(digit: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A 28x28 uint8 digit (white on black) drawn from a small stroke font, MNIST-sized.

    With `rng`, each call varies the slant, width, stroke and points a little,
    like handwriting; without it, the plain form. For tests that must not
    depend on the MNIST files.
    """
    supersample = 4
    size = 28 * supersample
    slant = rng.uniform(-0.25, 0.25) if rng is not None else 0.0
    stretch = rng.uniform(0.8, 1.15) if rng is not None else 1.0
    stroke = (rng.uniform(1.8, 3.0) if rng is not None else 2.4) * supersample
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for line in STROKE_FONT[digit]:
        points = np.asarray(line, np.float64)
        if rng is not None:
            points = points + rng.normal(0.0, 0.015, size=points.shape)
        x = (points[:, 0] - 0.35) * stretch + slant * (0.5 - points[:, 1])
        y = points[:, 1]
        pixels = [(float(14 + 20 * px) * supersample, float(4 + 20 * py) * supersample)
                  for px, py in zip(x, y, strict=True)]
        draw.line(pixels, fill=255, width=round(stroke), joint="curve")
        for px, py in (pixels[0], pixels[-1]):  # round pen ends
            radius = stroke / 2
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=255)
    return np.asarray(canvas.resize((28, 28), Image.BOX))


# --- painting ---------------------------------------------------------------------------------

def paper_texture(shape: tuple[int, int], rng: np.random.Generator, gradient: float) -> np.ndarray:
    """(H, W, 3) off-white paper: a tint, a lighting gradient in a random direction, fibre texture."""
    height, width = shape
    base = rng.uniform(0.82, 0.97) + rng.uniform(-0.03, 0.03, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    rows, columns = np.mgrid[:height, :width]
    ramp = (np.cos(angle) * columns / width + np.sin(angle) * rows / height)
    light = 1.0 - rng.uniform(0.3, 1.0) * gradient * (ramp - ramp.min())
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0) * rng.uniform(0.01, 0.03) * 2
    return np.clip(base[None, None, :] * (light + texture)[..., None], 0, 1)


def _paint(ink: np.ndarray, paper: np.ndarray, colour: np.ndarray, strength: float) -> np.ndarray:
    cover = (ink * strength)[..., None]
    return paper * (1 - cover) + colour[None, None, :] * cover


def _add_specks(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few dust specks and dots, 1.5-5 px across, anywhere on the page."""
    ink = ink.copy()
    height, width = ink.shape
    rows, columns = np.ogrid[:height, :width]
    for _ in range(int(rng.integers(2, 7))):
        row, column = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.7, 2.5)
        distance = np.sqrt((rows - row) ** 2 + (columns - column) ** 2)
        np.maximum(ink, np.clip(radius + 0.5 - distance, 0, 1) * rng.uniform(0.5, 1.0), out=ink)
    return ink


def _photograph(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-held phone picture: slightly rotated, out of focus, JPEG-compressed (corners: cut them off)."""
    picture = Image.fromarray(to_uint8(image), "RGB")
    picture = picture.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR)
    blur = rng.uniform(0.6, 1.8)
    blurred = ndimage.gaussian_filter(np.asarray(picture, np.float32), sigma=(blur, blur, 0))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(blurred, 0, 255).astype(np.uint8), "RGB").save(
        buffer, "JPEG", quality=int(rng.integers(25, 71)))
    return np.asarray(Image.open(buffer).convert("RGB"))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def erase_band(shape: np.ndarray, rng: np.random.Generator, pen: float) -> np.ndarray:
    """Cut one stroke across, near the middle height: a gap where the pen skipped.

    The gap is a thin band perpendicular to the stroke's local direction (the
    main axis of the ink around a random stroke pixel), only as long as the
    stroke is wide, so it breaks that stroke and nothing else.
    """
    height, width = shape.shape
    rows, columns = np.nonzero(shape >= 0.5)
    middle = (rows > 0.3 * height) & (rows < 0.7 * height)
    if not middle.any():
        return shape
    pick = rng.choice(np.flatnonzero(middle))
    row, column = rows[pick], columns[pick]
    near = (rows - row) ** 2 + (columns - column) ** 2 <= (2 * pen + 3) ** 2
    offsets = np.stack([rows[near] - row, columns[near] - column]).astype(np.float64)
    direction = np.linalg.eigh(offsets @ offsets.T)[1][:, -1]  # (row, column) along the stroke
    grid_rows, grid_columns = np.mgrid[:height, :width]
    along = (grid_rows - row) * direction[0] + (grid_columns - column) * direction[1]
    across = np.hypot(grid_rows - row, grid_columns - column)
    gap = max(2.0, rng.uniform(0.3, 0.6) * pen)
    cut = (np.abs(along) < gap / 2 + 0.5) & (across < pen + 3)
    return np.where(cut, shape * np.clip(np.abs(along) - gap / 2, 0, 1), shape)


def _shared_rows(shape: np.ndarray, top: int, right_edge: np.ndarray):
    """(row in shape, right edge of the ink already placed on that row, first ink column of `shape`)
    for every row where both have ink."""
    mask = shape >= 0.5
    for row in np.flatnonzero(mask.any(axis=1)):
        placed = right_edge[top + row]
        if placed >= 0:
            yield int(row), int(placed), int(np.argmax(mask[row]))


def touching_left(shape: np.ndarray, top: int, right_edge: np.ndarray, overlap: int) -> int:
    """The left position at which `shape`'s strokes overlap the ink already placed by `overlap` px."""
    best = None
    for _row, placed, first in _shared_rows(shape, top, right_edge):
        candidate = placed + 1 - first - overlap
        best = candidate if best is None else max(best, candidate)
    if best is None:  # no row in common: put the boxes side by side
        return int(right_edge.max()) + 1 - overlap
    return best


def _link(shape: np.ndarray, top: int, left: int, right_edge: np.ndarray,
          pen: float) -> tuple[int, int, int] | None:
    """(row, from column, to column) of a stroke joining `shape` to the ink on its left, or None
    when they already touch."""
    best = None
    for row, placed, first_in_shape in _shared_rows(shape, top, right_edge):
        first = left + first_in_shape
        if best is None or first - placed < best[2] - best[1]:
            best = (top + row, placed, first)
    if best is None or best[2] - best[1] <= 1 or best[2] - best[1] > 3 * pen:
        return None  # touching already, or too far apart for a natural joining stroke
    row, start, stop = best
    return row, start - int(pen), stop + int(pen)


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 16) -> list:
    """Points on an ellipse from angle `start` to `end` in degrees (0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, end, points))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each digit is a list of polylines in a box 0.7 wide and 1 tall, y pointing down.
STROKE_FONT: dict[int, list[list[tuple[float, float]]]] = {
    0: [arc(0.35, 0.5, 0.3, 0.48, -90, 270, 32)],
    1: [[(0.25, 0.12), (0.42, 0.0), (0.37, 1.0)]],
    2: [arc(0.35, 0.27, 0.29, 0.26, 190, 360, 12) + arc(0.35, 0.27, 0.29, 0.26, 0, 40, 4)
        + [(0.05, 1.0), (0.68, 0.98)]],
    3: [arc(0.33, 0.25, 0.28, 0.24, 200, 450, 16) + arc(0.33, 0.73, 0.32, 0.27, 270, 520, 16)],
    4: [[(0.48, 0.0), (0.03, 0.66), (0.7, 0.66)], [(0.53, 0.3), (0.53, 1.0)]],
    5: [[(0.65, 0.0), (0.12, 0.0), (0.08, 0.45), *arc(0.32, 0.68, 0.3, 0.29, 230, 490, 18)]],
    6: [[(0.6, 0.02), *arc(0.63, 0.62, 0.55, 0.6, 250, 180, 8),
         *arc(0.35, 0.72, 0.28, 0.27, 180, 540, 24)]],
    7: [[(0.0, 0.02), (0.7, 0.0), (0.28, 1.0)]],
    8: [arc(0.35, 0.24, 0.23, 0.23, 90, 450, 24), arc(0.35, 0.72, 0.28, 0.27, -90, 270, 24)],
    9: [arc(0.36, 0.28, 0.26, 0.27, 0, 360, 24), [(0.62, 0.28), (0.55, 1.0)]],
}
