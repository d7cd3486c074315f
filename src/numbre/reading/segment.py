"""Reading a whole number: cutting a line of handwriting into single digits, left to right.

The network reads one digit at a time, so a written "2024" must become four
ink crops. Connected components are the starting point, and handwriting breaks
the one-component-one-digit rule both ways:

- a digit falls apart (a 5 with a detached top bar, a 4 in two strokes, a pen
  that skipped): pieces that share columns, sit one above the other, or are
  small beside a bigger piece are merged (`_same_digit`);
- neighbours touch, often where a slanted stroke reaches into the next
  digit's columns: a group as wide as several of the line's digits (their
  width is learnt from the digits standing alone) is cut along the path from
  top to bottom that crosses the least ink (a seam, which may run diagonally
  between slanted digits), and both sides are examined again, so three
  touching digits become three. A group only as wide as one digit is cut
  only if the cheapest seam crosses a single stroke and leaves two tall
  halves (two narrow digits joined at one point, not a 4 and its "L").

Touching groups are cut first, then broken pieces joined: a piece of a broken
digit may touch the neighbour, and only once cut free can it rejoin its digit.
On lines of 1-8 drawn digits (numbre.data.drawn), digits standing apart or with cut
strokes come out right in 95-100% of lines, touching ones in about 60-65%.

Specks are dropped first. Input is an ink map (`numbre.reading.preprocess.ink_map(...).ink`
or `to_ink`: background 0, ink 1); each `Segment.ink` goes to `preprocess.center_ink`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numbre.reading.preprocess import INK, components, morph_step, stroke_width

SPECK_FRACTION = 0.02  # components under this share of the biggest one's area are dropped
SPLIT_ASPECT = 1.15  # a group wider than this times its height holds touching digits
JOINED_ASPECT = 0.75  # a narrower group may too, if one stroke joins two tall halves:
SINGLE_CROSSING = 1.3  # the cut crosses at most this many stroke widths of ink
TALL_SIDES = 0.9  # and leaves both sides at least this share of the height (a 4's "L" is shorter)
MIN_PART = 0.2  # each side at least this share of the height wide
SEAM_ROWS = 48  # seams through taller groups are sought on a copy pooled to about this many rows
# Ink in more pieces than this is no line of broken digits (20 digits of 3 pieces each) but a texture:
# a dithered 1-bit scan, a screen, a halftone. Its pieces are left unjoined; joining them would take
# time growing as the cube of their number (a 252x573 dithered image: a minute).
MAX_PIECES = 60
TYPICAL_ASPECT = 0.7  # width / height of a handwritten digit, when no lone digit shows the line's own

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in ink-map pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Segment:
    """One digit of a line: where it is and its ink (other digits' strokes removed)."""

    box: Box
    ink: np.ndarray  # crop of the ink map at `box`, float32, background 0


@dataclass
class _Part:
    x0: int
    y0: int
    x1: int
    y1: int
    area: float
    labels: list[int]  # the connected components it is made of
    mask: np.ndarray | None = None  # (height, width) ink of this part within its box

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def split_digits(ink: np.ndarray) -> list[Segment]:
    """The digits of one line of writing, left to right; an empty list for a blank ink map."""
    ink = np.asarray(ink, dtype=np.float32)
    return [_segment(part, ink) for part in _digit_parts(ink)]


def count_digits(ink: np.ndarray) -> int:
    """How many digits the ink map holds (0 for a blank one): answers "one digit or several?".

    Always `len(split_digits(ink))`, without cutting out each digit's ink.
    """
    return len(_digit_parts(np.asarray(ink, dtype=np.float32), masks=False))


def _digit_parts(ink: np.ndarray, *, masks: bool = True) -> list[_Part]:
    """The digits of a float32 ink map as parts, left to right (`masks=False`: a texture's parts
    come without their masks, which only counting needs)."""
    mask = ink >= INK
    found = components(mask)
    if found.count == 0:
        return []
    if found.count == 1:
        x0, x1 = int(found.x0.min()), int(found.x1.max())
        y0, y1 = int(found.row[0]), int(found.row[-1]) + 1
        if x1 - x0 <= JOINED_ASPECT * (y1 - y0):
            # One piece no wider than one digit: nothing to cut or join (what `predict` mostly sees).
            area = float(np.sum(found.ends - found.starts))
            return [_Part(x0, y0, x1, y1, area, [1], mask[y0:y1, x0:x1])]
    areas = found.areas()
    parts = []
    for index, (x0, y0, x1, y1) in enumerate(found.boxes()):
        if areas[index] < SPECK_FRACTION * areas.max():
            continue
        parts.append(_Part(x0, y0, x1, y1, float(areas[index]), [index + 1]))
    labels = found.labels()
    if len(parts) > MAX_PIECES:  # a texture: nothing to cut apart or join (see MAX_PIECES)
        if masks:
            for part in parts:
                part.mask = labels[part.y0:part.y1, part.x0:part.x1] == part.labels[0]
        return sorted(parts, key=lambda part: (part.x0 + part.x1) / 2)
    line_height = max(part.height for part in parts)
    stroke = max(1.0, stroke_width(mask.astype(np.float32)))
    # The width of one digit here: the median of the components that are not wider than tall
    # (most of them single digits), kept within a plausible range; without any, a typical proportion.
    narrow = [part.width for part in parts if part.width <= part.height]
    digit_width = float(np.median(narrow)) if narrow else TYPICAL_ASPECT * line_height
    digit_width = float(np.clip(digit_width, 0.45 * line_height, 0.9 * line_height))
    # Cut touching digits apart first, then join broken pieces (see the module's docstring).
    pieces: list[_Part] = []
    for part in parts:
        part.mask = labels[part.y0:part.y1, part.x0:part.x1] == part.labels[0]
        pieces.extend(_split_touching(part, line_height, digit_width, stroke))
    digits = _merge_pieces(pieces, line_height)
    digits.sort(key=lambda part: (part.x0 + part.x1) / 2)
    return digits


# --- merging the pieces of broken digits -------------------------------------------------------

def _merge_pieces(parts: list[_Part], line_height: int) -> list[_Part]:
    """Join the pieces of broken digits, closest pairs first, until no pair qualifies.

    More than MAX_PIECES pieces are a texture, not digits, and are returned as they are.
    """
    parts = sorted(parts, key=lambda part: part.x0)
    if len(parts) > MAX_PIECES:
        return parts
    reach = 1.5 * line_height  # `_same_digit`'s widest merged box: pieces starting farther apart never join
    while len(parts) > 1:
        pairs = []
        for i, a in enumerate(parts):
            for j in range(i + 1, len(parts)):  # parts stay sorted by x0: a union keeps the smaller x0
                b = parts[j]
                if b.x0 - a.x0 > reach:
                    break
                if _same_digit(a, b, line_height):
                    pairs.append((_gap(a, b), i, j))
        if not pairs:
            break
        _, i, j = min(pairs)
        parts[i] = _union(parts[i], parts[j])
        del parts[j]
    return parts


def _union(a: _Part, b: _Part) -> _Part:
    x0, y0, x1, y1 = min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for part in (a, b):
        mask[part.y0 - y0:part.y1 - y0, part.x0 - x0:part.x1 - x0] |= part.mask
    return _Part(x0, y0, x1, y1, a.area + b.area, a.labels + b.labels, mask)


def _gap(a: _Part, b: _Part) -> int:
    """Horizontal distance between two boxes; negative when their columns overlap."""
    return max(a.x0, b.x0) - min(a.x1, b.x1)


def _same_digit(a: _Part, b: _Part, line_height: int) -> bool:
    """Whether two ink pieces are parts of one digit.

    Digits on a line stand side by side: they neither share most of their
    columns (or share many and make a narrow box together) nor sit one above
    the other. So pieces that do (a stroke cut by a skipping pen, a 5's
    detached bar, a 0 drawn in two arcs) belong together.
    So does a short, small piece right beside a bigger one or reaching into
    its columns (a tick, a tail, the arc that closes a 0), and two pieces that
    meet at the top where one is much shorter (a 4 or a 5 written in two
    strokes). The merged box may not be much wider than the line is tall.
    """
    if max(a.x1, b.x1) - min(a.x0, b.x0) > 1.5 * line_height:
        return False
    gap = _gap(a, b)
    narrower = min(a.width, b.width)
    overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
    small, big = (a, b) if a.area < b.area else (b, a)
    merged_width, merged_height = max(a.x1, b.x1) - min(a.x0, b.x0), max(a.y1, b.y1) - min(a.y0, b.y0)
    shares_columns = gap < 0 and (-gap >= 0.6 * narrower or (-gap >= 0.4 * narrower
                                                           and merged_width <= 0.75 * merged_height))
    stacked = overlap_y < 0.4 * min(a.height, b.height) and gap < 0.05 * line_height
    beside = small.y0 >= big.y0 - 0.1 * line_height and small.y1 <= big.y1 + 0.1 * line_height
    tick = (small.area < 0.15 * big.area and small.height < 0.5 * big.height and gap < 0.1 * line_height
            and beside)
    closing = gap < 0 and small.area < 0.35 * big.area and small.height < 0.8 * big.height
    two_strokes = (gap <= 0.06 * line_height and min(a.height, b.height) < 0.75 * max(a.height, b.height)
                   and abs(a.y0 - b.y0) < 0.15 * line_height)
    return shares_columns or stacked or tick or closing or two_strokes


# --- cutting touching digits apart -------------------------------------------------------------

def _split_touching(part: _Part, line_height: int, digit_width: float, stroke: float) -> list[_Part]:
    """Cut a group wider than tall into digits, one seam at a time.

    Handwritten digits are at most about as wide as tall, so a wider group
    holds several; probably width / digit_width of them. The first cut is
    sought around where the first digit would end, and both sides are
    examined again.
    """
    height = max(part.height, 0.8 * line_height)
    if part.width <= JOINED_ASPECT * height:
        return [part]
    wide = part.width > SPLIT_ASPECT * height
    if wide:
        expected = max(2, round(part.width / digit_width))
        step = part.width / expected
        found = _cheapest_seam(part.mask, int(0.5 * step), int(1.5 * step), step, stroke)
    else:  # as narrow as one digit: cut only where one stroke joins two digit-sized halves
        margin = int(MIN_PART * height)
        found = _cheapest_seam(part.mask, margin, part.width - margin, part.width / 2, stroke)
    if found is None:
        return [part]
    seam, crossed = found
    left_side = np.arange(part.width)[None, :] < seam[:, None]
    sides = [_trimmed(part, part.mask & left_side), _trimmed(part, part.mask & ~left_side)]
    if any(side is None for side in sides):
        return [part]
    short_side = min(side.height for side in sides) < TALL_SIDES * height
    if not wide and (crossed > SINGLE_CROSSING * stroke or short_side):
        return [part]
    return [piece for side in sides for piece in _split_touching(side, line_height, digit_width, stroke)]


def _cheapest_seam(mask: np.ndarray, low: int, high: int, target: float,
                   stroke: float) -> tuple[np.ndarray, float] | None:
    """The top-to-bottom path crossing the least ink: (column in each row, ink pixels crossed).

    Seam carving by dynamic programming: each row the path moves at most one
    column, so it can slip diagonally between slanted digits. It stays within
    columns [low, high); ending far from `target` costs up to one stroke width,
    so a cut through a single stroke inside a digit (the bar of a 7) does not
    beat the real joint by a hair. Tall groups are searched on a copy
    max-pooled to about SEAM_ROWS rows (the loop runs once per row).
    """
    height, width = mask.shape
    pool = max(1, round(height / SEAM_ROWS))
    if pool > 1:
        small = pooled_mask(mask, pool)
        found = _cheapest_seam(small, low // pool, -(-high // pool), target / pool, stroke / pool)
        if found is None:
            return None
        seam = np.clip(np.repeat(found[0], pool)[:height] * pool + pool // 2, low, high - 1)
        return seam, found[1] * pool
    low, high = max(1, low), min(width - 1, high)
    if high - low < 1:
        return None
    outside = np.ones(width, bool)
    outside[low:high] = False
    # Straight down unless a diagonal step, which costs a little more, is cheaper; columns outside
    # [low, high) cost infinitely much, so no path enters them.
    totals, moves = carve(np.where(outside, np.inf, mask.astype(np.float64)), 0.05)
    total = totals[-1]
    off_target = np.minimum(np.abs(np.arange(width) - target) / max(target - low, high - target, 1), 1.0)
    end = int(np.argmin(total + stroke * off_target))
    if not np.isfinite(total[end]):
        return None
    seam = np.empty(height, np.int64)
    seam[-1] = end
    for row in range(height - 1, 0, -1):
        seam[row - 1] = seam[row] + moves[row, seam[row]]
    return seam, float(mask[np.arange(height), seam].sum())


def carve(cost: np.ndarray, diagonal: float) -> tuple[np.ndarray, np.ndarray]:
    """Seam carving's dynamic program: (rows, columns) cost of the cheapest top-to-bottom path from
    the top row to each pixel of `cost`, and each pixel's move (-1, 0, 1: the column step from the
    row above). A diagonal step costs `diagonal` more than a straight one.

    Shared by `_cheapest_seam` and `numbre.reading.read_line`'s cuts; the loop runs once per row.
    """
    rows, columns = cost.shape
    total = np.empty((rows, columns))
    total[0] = cost[0]
    moves = np.zeros((rows, columns), np.int8)
    shifted = np.empty(columns)
    for row in range(1, rows):
        above = total[row - 1]
        best = above.copy()
        shifted[0] = np.inf
        shifted[1:] = above[:-1] + diagonal
        better = shifted < best
        best[better] = shifted[better]
        moves[row][better] = -1
        shifted[:-1] = above[1:] + diagonal
        shifted[-1] = np.inf
        better = shifted < best
        best[better] = shifted[better]
        moves[row][better] = 1
        total[row] = best + cost[row]
    return total, moves


def pooled_mask(mask: np.ndarray, pool: int) -> np.ndarray:
    """`mask` max-pooled by `pool` x `pool` (ceil-sized): a seam that misses the ink here misses it
    at full size, and the seam search runs once per pooled row."""
    height, width = mask.shape
    small = np.zeros((-(-height // pool), -(-width // pool)), bool)
    for row in range(pool):
        for column in range(pool):
            view = mask[row::pool, column::pool]
            small[: view.shape[0], : view.shape[1]] |= view
    return small


def _trimmed(part: _Part, mask: np.ndarray) -> _Part | None:
    """A new part holding only `mask` (in `part`'s box), its box shrunk to that ink."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    return _Part(part.x0 + x0, part.y0 + y0, part.x0 + x1, part.y0 + y1, float(mask.sum()), part.labels,
                 mask[y0:y1, x0:x1])


def _segment(part: _Part, ink: np.ndarray) -> Segment:
    """The part's ink crop; its mask grown by a pixel so anti-aliased edges below INK come along."""
    grown = morph_step(part.mask, square=True, grow=True)
    window = ink[part.y0:part.y1, part.x0:part.x1]
    return Segment((part.x0, part.y0, part.x1, part.y1), (window * grown).astype(np.float32))
