"""One image in, one MNIST-style 28x28 digit out: the preprocessing every front end uses.

A network trained on MNIST has only seen digits made the way MNIST made them:
white ink on black, the digit scaled so its longer side is 20 px (aspect kept),
pasted into 28x28 with its centre of mass at the centre, strokes about 2-3 px
wide. A photo of paper or a 280x280 canvas drawing is none of that, and most
"the model is bad on my drawing" reports are this gap. The stages:

1. `ink_map`: decode (`numbre.reading.images`), shrink to a working size, then `to_ink`:
   which side is ink (dark on paper or light on a canvas), a photo's grain blurred,
   background levelled out (uneven light in photos), ink scaled to 1, specks and
   paper grain removed.
2. `center_ink`: crop to the ink, bring the stroke width to MNIST's (a 3 px pen
   and a 40 px marker must look alike), scale to 20 px, place by centre of mass.

`to_mnist` runs both for one digit; a reader of whole numbers runs `ink_map`,
`numbre.reading.segment.split_digits`, then `center_ink` per digit. A blank or nearly
blank image is `empty`, with an all-zero image, never a guess.

Speed: a 280x280 canvas PNG goes from bytes to 28x28 in well under a
millisecond, about half of it PNG decoding. The costly steps run on reduced
copies (the ink is found at 140x140, components are labelled at 80 px, stroke
morphology on a 60 px copy) with numpy and Pillow, and no per-pixel Python.
On arrays this small, numpy's per-call overhead is most of the cost, so the
common cases take short cuts that give the same result. scipy.ndimage is
imported only for photos (levelling their background): importing it takes a
quarter of a second, which would double the start of `numbre predict`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from numbre.reading.images import ImageSource, Picture, box_reduce, grey_pixels, open_image

SIDE = 28  # MNIST's image size
DIGIT = 20  # MNIST's digit box: the longer side of the ink
INK = 0.5  # an ink-map pixel at or above this is "ink" for masks and boxes
# Thresholds sit just below their level: a pixel half covered by a stroke averages to exactly 0.5,
# and float rounding must not decide whether it counts (dark-on-light and light-on-dark would differ).
_TOLERANCE = 1e-3
OVERVIEW_SIDE = 160  # ink is first looked for on a copy box-shrunk by a whole factor to at most this
DETAIL_SIDE = 40  # writing less tall than this on the overview is read again from the full image

# Stroke width (`stroke_width`) of a copy scaled so the digit's longer side is
# STROKE_SCALE * 20 px. The target is the median over MNIST's training digits
# (benchmarks/drawn_accuracy.py --calibrate: 5.96; 5-95% 4.0-9.2); widths within the
# band around it are left alone, so MNIST-like input passes unchanged.
STROKE_SCALE = 3
STROKE_TARGET = 6.0
STROKE_BAND = (0.66, 1.55)
GROW_STEPS = 5  # a fine pen is grown by at most this many pixels of the scaled copy on each side
# MNIST's mean centre of mass (row, column) in the 28x28 image, measured on its test set.
MNIST_CENTRE = (14.0, 14.0)

LABEL_SIDE = 80  # specks are looked for on a copy box-shrunk to at most this: labelling is costly
GRAIN_AVERAGED = 3  # a copy box-shrunk this many times or more is not blurred (see _smooth)
# A picture whose frame spans less than this is one flat level (a canvas, a clean scan); more is a
# photo or a grainy scan: its grain is blurred, its background levelled, its edge strips dropped.
FLAT_FRAME = 0.08
# A frame's median further than this share of the picture's range from both its extremes is not
# the paper's level alone (see _to_ink): in a photo turned by a few degrees, the corners it turned
# away from (filled with the table's or another shade) can be half the frame, and measured against
# its median the paper looked like light ink on a dark ground. The whole picture's median is the
# paper's then: 1,200 synthesised training-part photos (seed 102) read 99.58% against 98.92%,
# 1,500 training-part writers (seed 310) 99.93% against 99.80%, 1,000 with pens beyond both splits
# (seed 320) 93.5% against 93.1%. Always taking the picture's median instead rejected 94.36% of
# Fashion-MNIST (96.93% with this rule): a garment covers most of its picture, and the frame, at
# the black extreme, is the background there.
MIXED_FRAME = 0.25
EDGE_SLIVER = 8  # a component touching a photo's edge and under 1/8 of it deep is the page's edge
SPECK_FRACTION = 0.05  # ink components under this share of the biggest one's ink mass are specks
# Ink at or above FAINT belongs to a stroke when it is connected to ink at or above INK (a hysteresis
# threshold, as edge finders use): a fine pen blurred on a photo or shrunk below a pixel is fainter
# along some of its length than at its darkest, and a single threshold at INK broke such strokes into
# pieces and dropped the fainter ones as grain. Chosen on synthesised training-part writers with pens
# finer and bolder than they write (see `_drop_specks` and `_normalise_stroke`).
FAINT = 0.25
MIN_EXTENT = 0.015  # ink whose box is under this share of the image's longer side is no digit
MIN_STROKES = 2.5  # nor is ink whose box is shorter than this many of its stroke widths (a dot)


@dataclass(frozen=True)
class Prepared:
    """A digit ready for the network, or a statement that there is none."""

    image: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black
    empty: bool  # True for a blank or nearly blank input; image is then all zeros
    ink_box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) of the ink in input pixels, x1/y1 exclusive
    stages: tuple[tuple[str, np.ndarray], ...] = ()  # (name, image) per stage when explain=True


@dataclass(frozen=True)
class InkMap:
    """The ink of one image at working resolution, and the way back to input pixels.

    What every reader needs before the network: `to_mnist` centres it as one
    digit, `numbre.reading.segment.split_digits` cuts it into several.
    """

    ink: np.ndarray  # (h, w) float32: background 0, ink 1, specks removed
    empty: bool  # blank or nearly blank: no digit to read
    box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) of the ink in `ink` pixels, x1/y1 exclusive
    origin: tuple[int, int] = (0, 0)  # input pixel (x, y) of ink[0, 0]
    scale: int = 1  # input pixels per ink pixel
    input_size: tuple[int, int] = (0, 0)  # (width, height) of the input image

    def input_box(self, box: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        """A box in `ink` pixels as input pixels (x1/y1 exclusive, within the image)."""
        if box is None:
            return None
        x0, y0, x1, y1 = box
        (left, top), scale, (width, height) = self.origin, self.scale, self.input_size
        return (left + x0 * scale, top + y0 * scale,
                min(width, left + x1 * scale), min(height, top + y1 * scale))


def ink_map(source: ImageSource | np.ndarray) -> InkMap:
    """Find the ink of an image: load it, pick its polarity, level its background, drop specks.

    The ink is found on an overview shrunk to at most OVERVIEW_SIDE px (a
    280x280 canvas is read at 140x140). When the writing is small in a large
    picture, its surroundings are read again from the full-resolution image,
    so a phone photo of a small note loses nothing.
    """
    return _ink_map(source, None)


def to_mnist(source: ImageSource | np.ndarray, *, explain: bool = False, normalise_stroke: bool = True,
             deskew: bool = False) -> Prepared:
    """Preprocess one image into the 28x28 form an MNIST model expects.

    `explain=True` records every stage's image in `Prepared.stages` (for
    `save_stages_png` and debugging). `normalise_stroke` and `deskew` exist to
    measure each step (benchmarks/drawn_accuracy.py); the defaults are the
    combination that reads drawings best.
    """
    stages: list[tuple[str, np.ndarray]] | None = [] if explain else None
    found = _ink_map(source, stages)
    if found.empty:
        return Prepared(np.zeros((SIDE, SIDE), np.float32), True, None, _frozen(stages))
    image = _center_ink(found.ink, found.box, stages, normalise_stroke=normalise_stroke, deskew=deskew)
    return Prepared(image, False, found.input_box(found.box), _frozen(stages))


def _ink_map(source: ImageSource | np.ndarray, stages: list | None) -> InkMap:
    picture = open_image(source)
    size = picture.size
    factor = max(1, -(-max(size) // OVERVIEW_SIDE))
    grey = grey_pixels(picture, factor)
    _record(stages, "grey", grey)
    ink = _to_ink(grey, stages, shrunk_by=factor)
    box = ink_box(ink)
    origin = (0, 0)
    if box is not None and factor > 1 and _longer(box) >= MIN_EXTENT * max(grey.shape) \
            and box[3] - box[1] < DETAIL_SIDE:
        grey, ink, box, origin, factor = _read_closer(picture, box, factor, stages)
    empty = box is None or _longer(box) < MIN_EXTENT * max(grey.shape) or _is_dot(ink, box)
    if empty:
        ink = np.zeros_like(ink)
    return InkMap(ink, empty, None if empty else box, origin, factor, size)


def _longer(box: tuple[int, int, int, int]) -> int:
    return max(box[2] - box[0], box[3] - box[1])


def _is_dot(ink: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """A blot, a dot or a speck: ink no longer than a few of its own stroke widths is no digit."""
    x0, y0, x1, y1 = box
    return _longer(box) < MIN_STROKES * stroke_width(ink[y0:y1, x0:x1])


def _read_closer(picture: Picture, box: tuple[int, int, int, int], factor: int, stages: list | None):
    """Read the region around small writing again, at a resolution that makes it 2 * DETAIL_SIDE+ px tall."""
    x0, y0, x1, y1 = (value * factor for value in box)
    margin = max(x1 - x0, y1 - y0) // 3 + 2 * factor  # enough paper around the ink for its statistics
    region = (max(0, x0 - margin), max(0, y0 - margin),
              min(picture.width, x1 + margin), min(picture.height, y1 + margin))
    closer = max(1, (y1 - y0) // (2 * DETAIL_SIDE))
    grey = grey_pixels(picture.crop(region), closer)
    _record(stages, "closer", grey)
    ink = _to_ink(grey, stages, shrunk_by=closer)
    return grey, ink, ink_box(ink), (region[0], region[1]), closer


def prepare_batch(sources: Iterable[ImageSource | np.ndarray]) -> np.ndarray:
    """(N, 28, 28) float32 for N sources; blank ones are all zeros (check `to_mnist` to tell them apart)."""
    images = [to_mnist(source).image for source in sources]
    return np.stack(images) if images else np.zeros((0, SIDE, SIDE), np.float32)


def to_ink(grey: np.ndarray, *, shrunk_by: int = 1) -> np.ndarray:
    """Grey (H, W) in [0, 1] of either polarity -> float32 ink map: background 0, ink 1, specks removed.

    `shrunk_by` is the whole factor `grey` was box-shrunk by from the picture: from GRAIN_AVERAGED
    on, that averaged the grain away already and it is not blurred (see `_smooth`)."""
    return _to_ink(np.asarray(grey, dtype=np.float32), None, shrunk_by=shrunk_by)


def center_ink(ink: np.ndarray, *, normalise_stroke: bool = True, deskew: bool = False,
               box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """An ink map (white on black, any size) -> (28, 28) float32 placed the way MNIST placed digits.

    An all-zero ink map gives an all-zero image. `box` is `ink_box(ink)` when
    the caller has it already (`InkMap.box`), to save finding it again.
    """
    ink = np.asarray(ink, dtype=np.float32)
    if box is None:
        box = ink_box(ink)
    if box is None:
        return np.zeros((SIDE, SIDE), np.float32)
    return _center_ink(ink, box, None, normalise_stroke=normalise_stroke, deskew=deskew)


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels at or above `INK`, x1/y1 exclusive; None if there are none."""
    mask = ink >= INK - _TOLERANCE
    columns = np.flatnonzero(mask.any(axis=0))
    if columns.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


# --- stage 2: ink -----------------------------------------------------------------------------

def _to_ink(grey: np.ndarray, stages: list | None, *, shrunk_by: int = 1) -> np.ndarray:
    height, width = grey.shape
    if min(height, width) < 3:  # too small to hold a stroke, let alone a digit
        return np.zeros_like(grey)
    border = _border(grey)
    lowest, highest = border.min(), border.max()
    spread = float(highest - lowest)
    flat = spread < FLAT_FRAME
    if not flat and shrunk_by < GRAIN_AVERAGED:  # a photo or a grainy scan, its grain not yet averaged
        grey = _smooth(grey)
        border = _border(grey)
    # A canvas's frame is one level; np.median's overhead is then wasted on finding it.
    background_level = float(lowest) if lowest == highest else float(np.median(border))
    # Ink is whichever extreme lies farther from the background: dark pen on paper,
    # light chalk or a white brush on a dark canvas.
    darkest, brightest = float(grey.min()), float(grey.max())
    if not flat and min(background_level - darkest, brightest - background_level) > MIXED_FRAME * (
            brightest - darkest):
        # A frame whose level sits between the extremes is paper mixed with the table beyond a
        # turned page or a photo's filled corners; the paper is most of the picture.
        background_level = float(np.median(_sample(grey)))
    dark_ink = background_level - darkest >= brightest - background_level
    if flat:
        # A flat background (canvas, scan): one level, and the noise is at most the border's spread.
        ink = background_level - grey if dark_ink else grey - background_level
        noise = spread / 6
    else:
        oriented = 1.0 - grey if dark_ink else grey
        ink = oriented - _background(oriented)
        # The paper's noise: each estimate can only come out too high (the frame holds a turned
        # page's table or a shadow; a bold digit fills much of the picture), so the lower one is kept.
        noise = min(_paper_noise(ink), _robust_sigma(_border(ink)))
    _record(stages, "oriented", ink)

    candidates = ink[ink > max(6 * noise, 0.04)]
    if candidates.size == 0:
        return np.zeros_like(grey)
    if candidates.size > 4000:
        candidates = candidates[:: candidates.size // 4000]
    rank = int(0.9 * (candidates.size - 1))
    level = float(np.partition(candidates, rank)[rank])  # the ink's own level, robust to a few darker specks
    if level < max(0.05, 5 * noise):  # no contrast above the paper's texture: blank
        return np.zeros_like(grey)
    floor = min(3 * noise, 0.3 * level)
    scale = 1.0 / (level - floor)
    if floor != 0:  # on a clean canvas both are no-ops: x - 0 and x * 1 are x exactly
        ink -= floor
    if scale != 1:
        ink *= scale
    np.minimum(ink, 1.0, out=ink)  # np.clip, at a quarter of its overhead on these small arrays
    np.maximum(ink, 0.0, out=ink)
    _record(stages, "ink", ink)
    # Strips along the edge are dropped from photos of about a digit's shape; in a wide picture of a
    # line, a 1 at either end touching the edge would look like one.
    edges = not flat and _digit_shaped(grey)
    ink = _drop_specks(ink, grainy=noise > 0, edges=edges)
    _record(stages, "denoised", ink)
    return ink


def _digit_shaped(image: np.ndarray) -> bool:
    """About a digit's shape (the longer side at most twice the shorter): a picture of one digit,
    not of a line of them."""
    height, width = image.shape
    return max(height, width) <= 2 * min(height, width)


def _smooth(image: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur ((1 2 1) / 4 along each axis, edge pixels repeated), in float32.

    A photo's or a scan's grain is a pixel or two wide; a stroke is wider. Blurring before the
    ink is measured and thresholded cuts the sigma of pixel grain to 0.375 of itself and a
    stroke's level hardly at all, so a fine pen on a noisy, blurry photo keeps its strokes whole
    instead of falling apart into specks. A copy box-shrunk by a whole factor f from the picture
    has had its grain's sigma cut to 1/f already, which from f = GRAIN_AVERAGED (3) on is as much
    as the blur would do, and its strokes can be a pixel wide or less, which the blur would fade:
    a line of thin, broken digits on a photo 1,156 px wide, read on a copy shrunk 8 times, came
    out blank. So only pictures read at full size or shrunk twice are blurred. On 1,200
    synthesised training-part photos (`synthetic.synth_digits(1200, seed=102, split="train",
    medium="photo")`) 99.08% read right against 98.25% without it, scans (seed 103) 99.67%
    against 99.42%; a Gaussian of sigma 0.6-1.0 and a 3x3 mean did as well within a few digits, a
    3x3 median worse (98.25%). Canvases and clean scans (a frame within FLAT_FRAME of one level) are
    not blurred: they have no grain to speak of.
    """
    # Each output is ((above + below) + 2 * centre) * 0.25 in float32 (the browser's port does the same
    # sums); written into preallocated arrays, a 900x200 line takes 0.4 ms instead of 1.3 ms.
    height, width = image.shape
    rows = np.empty((height, width), np.float32)
    np.add(image[:-2], image[2:], out=rows[1:-1])
    rows[0] = image[0] + image[1]  # the edge pixel is its own neighbour outside the picture
    rows[-1] = image[-2] + image[-1]
    twice = image * 2
    rows += twice
    rows *= 0.25
    smooth = np.empty((height, width), np.float32)
    np.add(rows[:, :-2], rows[:, 2:], out=smooth[:, 1:-1])
    smooth[:, 0] = rows[:, 0] + rows[:, 1]
    smooth[:, -1] = rows[:, -2] + rows[:, -1]
    np.multiply(rows, 2, out=twice)
    smooth += twice
    smooth *= 0.25
    return smooth


def _paper_noise(ink: np.ndarray) -> float:
    """The robust sigma of the whole levelled image: paper is most of a picture of a digit.

    Measured on the frame alone, a turned page's table tripled it on 2% of the
    synthesiser's training-part photos and their faint ink fell under the threshold.
    It takes every so many pixels, 2,000-4,000 of them: two medians of a whole line's
    picture cost more than the rest of finding its ink's level.
    """
    return _robust_sigma(_sample(ink))


def _sample(image: np.ndarray) -> np.ndarray:
    """Every so many pixels of a picture, 2,000-4,000 of them (all of a smaller one): enough for a
    median, at a fraction of its cost on a whole line's picture."""
    sample = image.ravel()
    if sample.size > 4_000:
        sample = sample[:: sample.size // 2_000]
    return sample


def _robust_sigma(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: a Gaussian's sigma, unmoved by a minority of outliers."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _border(image: np.ndarray) -> np.ndarray:
    """The outer frame of pixels, about 2% of the shorter side thick: mostly background."""
    thickness = max(1, min(image.shape) // 50)
    return np.concatenate((image[:thickness], image[-thickness:], image[thickness:-thickness, :thickness],
                           image[thickness:-thickness, -thickness:]), axis=None)


# The opening's width on the 32 px copy. 5 px mistook a marker's strokes on a photo for paper and
# cut them away; 7 px read 96.9% of 1,200 synthesised training-part photos against 94.4%
# (synthetic.synth_digits(1200, seed=102, split="train", medium="photo"), never the held-out part).
# With the noise taken from the whole picture and the page's edge dropped (2026-12-06), 9 px reads
# 98.25% of them against 98.00% at 7 and 98.08% at 11, and the drawn MNIST styles as before
# (benchmarks/drawn_accuracy.py --n 1000: photo 98.0%, marker 97.9%).
# A picture of about a digit's shape (its longer side at most twice the shorter) has 11 px since
# 2026-12-07: there the digit fills some 20 px of the copy, and a bold marker's loop (a 9's, an 8's,
# a 0's), its hole blurred shut, is a bright patch wider than 9 px that the opening took for light
# on the paper and cut out of the digit. Measured with the fine-tuned model on training writers
# given pens finer and bolder than either split's (0.025-0.045 and 0.28-0.34 of the height, 1,000
# digits, seed 320): 91.5% -> 93.1% (photos 87.1% -> 90.2%, scans 92.0% -> 93.5%); 1,500
# training-part digits (seed 310) 99.87% -> 99.80% (one digit); 1,200 digits with another band
# beyond both splits (aspect, blur, noise, JPEG, slant or height; seed 340) and 1,600 drawn MNIST
# digits unchanged; 1,200 training-part photos (seed 102) 99.17% -> 98.92% (three digits). In a
# line's copy a digit is a few pixels wide, 9 px already spans its loops, and 11 px only reached
# further into the page's uneven light: numbers of training writers with one band beyond both
# splits (200 a kind, seed 350) read 89.0 / 91.0 / 77.0% (apart / touching / broken) at 9 px,
# 87.5 / 88.5 / 77.5% at 11 px. So lines keep 9 px.
BACKGROUND_OPENING = 11
LINE_BACKGROUND_OPENING = 9


def _background(image: np.ndarray) -> np.ndarray:
    """A smooth estimate of the background under the ink: paper brightness and lighting gradients.

    A grey opening (minimum then maximum filter, BACKGROUND_OPENING px, or
    LINE_BACKGROUND_OPENING for a picture more than twice as wide as tall or tall as
    wide) on a copy about 32 px across removes every stroke narrower than about a
    third of the image, leaving the light falling on the paper, which is then
    scaled back up.
    """
    height, width = image.shape
    size = BACKGROUND_OPENING if _digit_shaped(image) else LINE_BACKGROUND_OPENING
    factor = max(height, width) / 32
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    from scipy import ndimage  # only photos need it: drawings are read without importing it

    small = np.asarray(Image.fromarray(image, "F").resize(small_size, Image.BOX))
    small = ndimage.grey_opening(small, size=(size, size), mode="nearest")
    small = ndimage.uniform_filter(small, size=3, mode="nearest")
    return np.asarray(Image.fromarray(small, "F").resize((width, height), Image.BILINEAR))


def _drop_specks(ink: np.ndarray, *, grainy: bool = True, edges: bool = False) -> np.ndarray:
    """Zero every ink component whose ink mass is under SPECK_FRACTION of the biggest one's, and
    (on `grainy` paper) whatever faint grain lies outside the components, and (with `edges`)
    thin strips along the picture's edge (`_edge_slivers`).

    Components are found on a copy box-shrunk to at most LABEL_SIDE px
    (labelling is the costly step) by hysteresis: a cell counts as inked if it
    holds at least FAINT of a pixel's worth of ink, and a component counts only
    if one of its cells holds at least INK (half a pixel's worth) of it. So thin
    strokes stay connected and keep their fainter stretches, and specks a few
    pixels from a stroke merge with it, where they do no harm. Areas are counted
    in cells, which is close enough to compare sizes. On synthesised
    training-part photos written with pens finer than the training writers'
    (0.045-0.07 of the digit's height, 240 digits), 95.8% read right against
    91.2% with components at INK alone.
    """
    height, width = ink.shape
    pool = max(1, -(-max(height, width) // LABEL_SIDE))
    mass = box_reduce(ink, pool)
    strong = mass >= INK / pool**2 - _TOLERANCE
    found = components(mass >= FAINT / pool**2 - _TOLERANCE)
    if found.count == 0 or not strong.any():
        return np.zeros_like(ink)
    if not grainy and found.count == 1:
        return ink  # a clean canvas with one component: nothing to drop, nothing faint between strokes
    labels = found.labels()
    seeded = np.zeros(found.count + 1, bool)  # the components holding ink at INK or above
    seeded[labels[strong]] = True  # strong cells lie inside the FAINT components: never label 0
    areas = np.bincount(labels.ravel(), weights=mass.ravel(), minlength=found.count + 1)
    areas[~seeded] = 0
    keep = seeded & (areas >= SPECK_FRACTION * areas.max())
    if edges:
        keep &= ~_edge_slivers(found, areas)
    if not grainy and keep[seeded].all():
        return ink  # a clean canvas: nothing to drop, nothing faint between the strokes
    # A one-cell rim around the kept components keeps their anti-aliased edges.
    kept = morph_step(keep[labels], square=True, grow=True)
    if pool == 1:
        return ink * kept
    if height % pool == 0 and width % pool == 0:  # multiply each cell's block without enlarging the mask
        blocks = ink.reshape(height // pool, pool, width // pool, pool) * kept[:, None, :, None]
        return blocks.reshape(height, width)
    return ink * kept.repeat(pool, axis=0).repeat(pool, axis=1)[:height, :width]


def _edge_slivers(found: Components, areas: np.ndarray) -> np.ndarray:
    """Per component: a thin strip along the picture's edge, not the biggest ink.

    A photo's frame holds the page's edge, the table beyond a turned page, a
    shadow: after levelling they are strips of "ink" a few pixels deep along a
    side, and kept, they stretch the digit's box and shrink the digit.
    """
    height, width = found.mask.shape
    sliver = np.zeros(found.count + 1, bool)
    depth_rows, depth_columns = max(2, height // EDGE_SLIVER), max(2, width // EDGE_SLIVER)
    biggest = int(np.argmax(areas))
    for number, (x0, y0, x1, y1) in enumerate(found.boxes(), start=1):
        if number == biggest:
            continue
        top, bottom, left, right = y0 == 0, y1 == height, x0 == 0, x1 == width
        sliver[number] = (((top or bottom) and y1 - y0 <= depth_rows)
                          or ((left or right) and x1 - x0 <= depth_columns))
    return sliver


# --- connected components ---------------------------------------------------------------------

@dataclass(frozen=True)
class Components:
    """The 8-connected components of a boolean image, held as its runs of consecutive set pixels.

    Numbered 1.. in the raster order of their first pixel, the way
    scipy.ndimage.label numbers them with a 3x3 structure: the same labels,
    without importing scipy.ndimage (a quarter of a second at every start of
    `numbre predict`) and without its per-call overhead on these small images.
    Per-run arrays are made when first asked for: most callers only need `count`.
    """

    mask: np.ndarray  # (h, w) bool: the image
    count: int  # how many components
    stride: int  # row length of the framed raster the runs are found in
    starts: np.ndarray  # per run, in raster order: where it starts in the framed raster,
    ends: np.ndarray  # where it ends (exclusive),
    root: list[int]  # and the first run of its component

    @functools.cached_property
    def row(self) -> np.ndarray:
        """Per run, its row."""
        return self.starts // self.stride

    @functools.cached_property
    def x0(self) -> np.ndarray:
        """Per run, its first column."""
        return self.starts - self.row * self.stride

    @functools.cached_property
    def x1(self) -> np.ndarray:
        """Per run, the column after its last."""
        return self.ends - self.row * self.stride

    @functools.cached_property
    def number(self) -> np.ndarray:
        """Per run, its component's number (1..count)."""
        root = np.array(self.root, dtype=np.intp)
        return np.cumsum(root == np.arange(root.size), dtype=np.int32)[root]

    def labels(self) -> np.ndarray:
        """(h, w) int32: 0 for background, else the pixel's component number (scipy.ndimage.label's)."""
        labels = np.zeros(self.mask.shape, np.int32)
        labels[self.mask] = np.repeat(self.number, self.ends - self.starts)
        return labels

    def areas(self) -> np.ndarray:
        """int64 pixels per component; index 0 is component 1."""
        areas = np.zeros(self.count + 1, np.int64)
        np.add.at(areas, self.number, self.ends - self.starts)
        return areas[1:]

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) per component, x1/y1 exclusive; component 1 first."""
        top = np.full(self.count + 1, self.mask.shape[0])
        bottom, left, right = np.zeros_like(top), np.full_like(top, self.mask.shape[1]), np.zeros_like(top)
        np.minimum.at(top, self.number, self.row)
        np.maximum.at(bottom, self.number, self.row + 1)
        np.minimum.at(left, self.number, self.x0)
        np.maximum.at(right, self.number, self.x1)
        return list(zip(left[1:].tolist(), top[1:].tolist(), right[1:].tolist(), bottom[1:].tolist(),
                        strict=True))


def components(mask: np.ndarray) -> Components:
    """Find the 8-connected components of a 2-D boolean image (see `Components`).

    Each run of set pixels touches the runs of the row above that overlap its
    columns widened by one (diagonal neighbours). Runs and contacts are found
    with whole-array operations; then each run joins the first run it touches
    above, and the rarer second contacts (the bottom of a U or a 0) merge
    components by union-find, every root being the first run of its component
    in raster order. The Python loops run once per run, a few hundred on a
    working-size ink map.
    """
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    stride = width + 1  # a clear column after each row, so that no run continues into the next row
    flat = np.zeros(1 + height * stride, bool)  # and a clear pixel before the first row
    flat[1:].reshape(height, stride)[:, :width] = mask
    changes = (flat[1:] != flat[:-1]).nonzero()[0]
    starts, ends = changes[0::2], changes[1::2]  # in the framed raster, ends exclusive
    runs = starts.size
    # The runs above that a run touches: those ending at or after its start - 1 and starting at or
    # before its end, a contiguous range [low, high) of the previous row's runs.
    low = ends.searchsorted(starts - stride, "left")
    high = starts.searchsorted(ends - stride, "right")
    contacts = high - low
    touching = contacts > 0
    count = runs - int(np.count_nonzero(touching))  # the runs touching none above start a component
    root = np.where(touching, low, np.arange(runs)).tolist()  # always an earlier run, or itself
    for run in range(runs):  # earlier runs already point at their roots
        root[run] = root[root[run]]
    several = (contacts > 1).nonzero()[0]
    if several.size:
        for run, first, last in zip(several.tolist(), low[several].tolist(), high[several].tolist(),
                                    strict=True):
            for other in range(first + 1, last):
                a, b = _find(root, run), _find(root, other)
                if a != b:
                    root[max(a, b)] = min(a, b)  # a root stays the first run of its component
                    count -= 1
        for run in range(runs):
            root[run] = root[root[run]]
    return Components(mask, count, stride, starts, ends, root)


def _find(parent: list[int], item: int) -> int:
    """The root of `item` in a union-find forest, halving the path on the way."""
    while parent[item] != item:
        parent[item] = parent[parent[item]]
        item = parent[item]
    return item


# --- stage 3: centre --------------------------------------------------------------------------

def _center_ink(ink: np.ndarray, box: tuple[int, int, int, int], stages: list | None, *,
                normalise_stroke: bool, deskew: bool) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(ink[y0:y1, x0:x1])
    _record(stages, "cropped", crop)
    scaled = None
    if normalise_stroke:
        crop, scaled = _normalise_stroke(crop)
        _record(stages, "stroke", crop)
    if scaled is not None and max(crop.shape) >= STROKE_SCALE * DIGIT:
        digit = box_reduce(scaled, STROKE_SCALE)  # the 60 px copy made for measuring, averaged down
    else:
        digit = _fit_longer_side(crop, DIGIT)
    _record(stages, "20px", digit)
    image = _place_by_centre_of_mass(digit)
    if deskew:
        image = _deskew(image)
    top = float(image.max())
    if top > 0:
        image *= 1.0 / top  # a new array, made by the placing above
    _record(stages, "28x28", image)
    return image.astype(np.float32, copy=False)


def stroke_width(soft: np.ndarray) -> float:
    """Mean stroke width in pixels of an ink image (background 0): 2 * ink mass / outline length.

    A stroke of width w and length L holds ink w*L and has an outline of about
    2L, whatever its shape. The mass comes from the grey values, so a pen line
    thinner than a pixel (faint after shrinking) still measures its true width;
    the outline is counted as 4-neighbour edges of everything inked, which
    over-counts slanted strokes by a constant factor that calibrating the
    target on MNIST absorbs.
    """
    inked = _framed(soft > 0.1, 1, False)
    edges = np.count_nonzero(inked[1:] != inked[:-1]) + np.count_nonzero(inked[:, 1:] != inked[:, :-1])
    return 2.0 * float(soft.sum()) / edges if edges else 0.0


def _normalise_stroke(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Make the stroke width what MNIST's would be at this digit size.

    Works on a copy scaled so the longer side is STROKE_SCALE * 20 px: small
    enough for cheap morphology, large enough that MNIST's 2-3 px strokes are
    6-9 px and one step is a fraction of a final pixel. Returns the new ink
    crop, and the scaled copy when the crop was left as it was (it can then
    serve to make the 20 px image).
    """
    height, width = crop.shape
    soft = _resize(crop, STROKE_SCALE * DIGIT / max(height, width))
    measured = stroke_width(soft)
    if measured == 0 or STROKE_BAND[0] <= measured / STROKE_TARGET <= STROKE_BAND[1]:
        return crop, soft
    # A fine pen is faint along some of its length (blurred, thinner than a pixel here, pressed
    # lightly): thickened, its mask takes all the ink that belongs to a stroke (FAINT), else the
    # fainter bars and curves were lost and the rest grown into a blob. The mask's own width is
    # measured as it grows (a step widens a slanted stroke by less than two pixels), so the stroke
    # comes out nearest the target whatever the threshold took.
    thin = measured < STROKE_TARGET
    mask = soft >= (FAINT if thin else INK) - _TOLERANCE
    width = stroke_width(mask.astype(np.float32))
    if thin:  # grown a step at a time while that brings the width closer to the target
        mask = _framed(mask, GROW_STEPS + 1, False)
        for step in range(GROW_STEPS):
            grown = morph_step(mask, square=step % 2 == 1, grow=True)
            grown_width = stroke_width(grown.astype(np.float32))
            if abs(grown_width - STROKE_TARGET) >= abs(width - STROKE_TARGET):
                break
            mask, width = grown, grown_width
    else:
        steps = round((width - STROKE_TARGET) / 2)  # radius change in pixels of the scaled copy
        steps = min(steps, max(0, round(width / 2) - 2))  # never erode a stroke away
        mask = _morph(mask, steps, grow=False)
    if not mask.any():
        return crop, soft
    return _crop_to_ink(mask.astype(np.float32)), None


def _morph(mask: np.ndarray, steps: int, *, grow: bool) -> np.ndarray:
    """Dilate or erode by `steps` pixels, alternating cross and square steps (an octagon, near a disk)."""
    for step in range(steps):
        mask = morph_step(mask, square=step % 2 == 1, grow=grow)
    return mask


def morph_step(mask: np.ndarray, *, square: bool, grow: bool) -> np.ndarray:
    padded = _framed(mask, 1, not grow)
    combine = np.logical_or if grow else np.logical_and
    out = padded[1:-1, 1:-1].copy()
    shifts = ((0, 1), (1, 0), (1, 2), (2, 1))
    if square:
        shifts += ((0, 0), (0, 2), (2, 0), (2, 2))
    height, width = mask.shape
    for row, column in shifts:
        combine(out, padded[row:row + height, column:column + width], out=out)
    return out


def _framed(mask: np.ndarray, width: int, value: bool) -> np.ndarray:
    """`mask` inside a frame `width` pixels wide of `value` (np.pad, without its Python overhead)."""
    framed = np.full((mask.shape[0] + 2 * width, mask.shape[1] + 2 * width), value, bool)
    framed[width:width + mask.shape[0], width:width + mask.shape[1]] = mask
    return framed


def _crop_to_ink(image: np.ndarray) -> np.ndarray:
    box = ink_box(image)
    if box is None:
        return image
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Scale a float image; area averaging when shrinking (anti-aliased, thin lines fade but survive)."""
    height, width = image.shape
    return _pil_resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), scale)


def _fit_longer_side(image: np.ndarray, side: int) -> np.ndarray:
    """Scale so the longer side is `side` px, keeping the aspect ratio (a thin 1 stays thin)."""
    height, width = image.shape
    scale = side / max(height, width)
    size = (max(1, min(side, round(width * scale))), max(1, min(side, round(height * scale))))
    return _pil_resize(image, size, scale)


def _pil_resize(image: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """Pillow's resize of a float (H, W) array to `size` (width, height): BOX when shrinking, else BILINEAR.

    The pixels go in and out as raw buffers: `Image.fromarray` and `np.asarray`
    add 25 us to a call that takes 30, and digits are resized on every prediction.
    """
    image = np.ascontiguousarray(image, np.float32)
    picture = Image.frombuffer("F", (image.shape[1], image.shape[0]), image, "raw", "F", 0, 1)
    resized = picture.resize(size, Image.BOX if scale < 1 else Image.BILINEAR)
    return np.frombuffer(resized.tobytes(), np.float32).reshape(size[1], size[0])


def _place_by_centre_of_mass(digit: np.ndarray) -> np.ndarray:
    """Paste into 28x28 so the centre of mass lands on MNIST's, to the nearest whole pixel.

    MNIST itself was placed in whole pixels (its centres of mass spread with a
    standard deviation of 0.29 px, that of rounding), and a sub-pixel shift
    would blur the strokes the network learned sharp.
    """
    height, width = digit.shape
    total = float(digit.sum())
    if total <= 0:
        return np.zeros((SIDE, SIDE), np.float32)
    row_mass = digit.sum(axis=1) @ np.arange(height) / total
    column_mass = digit.sum(axis=0) @ np.arange(width) / total
    # To a ten-thousandth of a pixel first: a drawing symmetric about a half pixel puts its centre on
    # the tie, where the last bit of the sums (added in another order by the browser's port) decided.
    top = round(round(MNIST_CENTRE[0] - row_mass, 4))
    left = round(round(MNIST_CENTRE[1] - column_mass, 4))
    # Paste the part of the digit that falls inside the 28x28 window.
    image = np.zeros((SIDE, SIDE), np.float32)
    rows = slice(max(top, 0), min(top + height, SIDE))
    columns = slice(max(left, 0), min(left + width, SIDE))
    image[rows, columns] = digit[rows.start - top:rows.stop - top, columns.start - left:columns.stop - left]
    return image


def _deskew(image: np.ndarray) -> np.ndarray:
    """Shear so the ink's principal axis is vertical (the classic moment deskew of MNIST papers)."""
    total = float(image.sum())
    if total <= 0:
        return image
    rows, columns = np.mgrid[:SIDE, :SIDE]
    row_mean = float((rows * image).sum() / total)
    column_mean = float((columns * image).sum() / total)
    variance_rows = float(((rows - row_mean) ** 2 * image).sum() / total)
    if variance_rows < 1e-6:
        return image
    covariance = float(((rows - row_mean) * (columns - column_mean) * image).sum() / total)
    skew = covariance / variance_rows
    # Output (r, c) samples input (r, c + skew * (r - row_mean)).
    matrix = np.array([[1.0, 0.0], [skew, 1.0]])
    offset = np.array([0.0, -skew * row_mean])
    from scipy import ndimage  # only for measuring deskewing; reading digits never imports it

    return ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant")


# --- helpers ----------------------------------------------------------------------------------

def _record(stages: list | None, name: str, image: np.ndarray) -> None:
    if stages is not None:
        stages.append((name, np.array(image, dtype=np.float32)))


def _frozen(stages: list | None) -> tuple[tuple[str, np.ndarray], ...]:
    return tuple(stages) if stages else ()
