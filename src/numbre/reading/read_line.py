"""Reading a line of digits: the network chooses where one digit ends and the next begins.

`numbre.reading.segment.split_digits` decides from shapes alone where digits touch or
fall apart, and one wrong guess there makes a wrong number however well each
crop is read. Here the shapes only propose and the network decides, as in the
classic readers of handwritten words and numbers (over-segmentation, then a
Viterbi search over the ways of joining the pieces):

1. Cuts. The ink (specks dropped as split_digits drops them) is searched for
   top-to-bottom cuts by seam carving, the dynamic program of
   `segment.carve` run from the top and from the bottom, so that every
   pixel knows the cheapest cut through it. The local minima of that cost
   along three rows are candidate cuts: a clear gap costs nothing, a cut
   through a joint the stroke widths it crosses. Cheaper cuts are kept first; a
   cut is dropped if it crosses a kept one, crosses more than MAX_CROSSING
   stroke widths, or leaves beside it a sliver that could be no digit (see
   `_Slices`). Kept cuts never cross, so they slice the line into ordered
   slices: a digit broken by a skipping pen is several slices (as
   `segment._merge_pieces` would join them), two touching digits are cut apart.
2. Candidate digits: every run of up to MAX_SLICES consecutive slices, no
   wider than MAX_WIDTH line heights. Each is cropped with its own ink through
   `preprocess.center_ink`, and all are read in one network call: 3.8
   candidates per digit on drawn numbers.
3. The reading: dynamic programming (`best_path`) picks the candidates that
   cover every slice once with the highest total score. A candidate scores
   the log of the calibrated probability of its best digit (among all
   classes, so a likely "not a digit" lowers it), plus a bonus, minus
   penalties for shapes no digit on the line has (`Scoring`): too short or too
   wide for the line, a clear gap between its slices, ink cut at its ends.

The scoring constants (`Scoring`) were chosen by random search for exact match on
1,600 lines of 2-8 MNIST test digits drawn with `numbre.data.drawn` (100 per kind,
apart, touching, broken, touching and broken, times four seeds, none of them
the benchmark's), then rounded: about 80% of those lines are read exactly
(81% cross-validated over the seeds). `scripts/tune_read_line.py` re-runs the
search: the shipped constants read 80.3% of those lines and 77.2% of 400 on
a held-out seed; its best of 600 trials 81.1% and 78.8% (6 more lines of
400), less than the spread between seeds (77-82%), so the constants stay.
The network alone cannot choose: half of the fragments of digits (a 0 cut
into "11") are read at 90% or surer, and a linear model of 13 features
(network outputs and shape) fitted there read no more lines than these
penalties.

A digit cut out of touching ink (a cut through ink at either end) and read
less surely than CUT_CONFIDENCE is "not a digit": a scribble is often cut into
digit-like pieces. Of 300 other lines with a scribble among the digits, 11.7%
are read as a number (13.0% without the rule, 9.0% with split_digits alone),
for 1-2 points of exact match on touching lines.

Measured on 400 other lines (100 per kind, seed 15), exact match went from 59%
with split_digits to 77%: apart 78 -> 86%, touching 43 -> 68%, broken
79 -> 89%, touching and broken 36 -> 66%. `Recognizer.read` takes about
twice as long, mostly `center_ink` for each candidate: a median 23 ms instead
of 12 ms on those lines, 27 ms instead of 18 ms for five digits on a 1000x200
image (2 shared cores). Measured and left out: split_digits' own boundaries as extra cuts,
more cuts (thinner slices, costlier crossings), cutting on a shrunk copy (each
1-3% fewer lines right), at most 3 slices per digit (9% fewer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numbre.model.probabilities import log_softmax
from numbre.model.rejection import DIGITS, Rejector
from numbre.reading.preprocess import INK, SIDE, center_ink, components, morph_step, stroke_width
from numbre.reading.segment import SEAM_ROWS, SPECK_FRACTION, carve, pooled_mask

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in ink-map pixels, x1/y1 exclusive
Logits = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 -> (N, classes) logits

# --- candidate cuts -----------------------------------------------------------------------------
ANCHORS = (0.25, 0.5, 0.75)  # cuts are sought through these shares of the line's rows
# A seam's diagonal step costs as much as this many ink pixels: mostly straight cuts. With
# _cheapest_seam's 0.05 the cuts wander, twice as many candidates, the right one 5% less often.
DIAGONAL = 1.5
MAX_CROSSING = 2.5  # a cut may cross at most this many stroke widths of ink
NEAR = 0.1  # two cuts through ink are this share of the line height apart at least
MIN_SLICE = 0.18  # a cut through ink leaves slices of ink at least this share of the line height wide,
TALL_SLICE = 0.45  # or at least this share tall
THIN = 3.0  # and at most this many stroke widths wide (a "1")
# --- candidate digits ---------------------------------------------------------------------------
MAX_SLICES = 4  # a digit is made of at most this many consecutive slices (3: 9% fewer lines right)
MAX_WIDTH = 1.3  # and, when of several, at most this many line heights wide
# Fewer slices per digit when a line would give more candidates than this (a median 17, at most
# 65 on 1,600 drawn lines of 2-8 digits): it bounds the time of very long lines.
MAX_CANDIDATES = 96
CUT_CONFIDENCE = 0.8  # a digit cut out of touching ink is named only when at least this sure



@dataclass(frozen=True)
class Scoring:
    """A candidate's score: its log-probability, plus `bonus`, minus its shape's penalties.

    The defaults are the ones `scripts/tune_read_line.py` found (see the module docstring).
    """

    bonus: float = 0.25  # per digit: log-probabilities alone favour fewer, larger pieces
    short: float = 0.65  # a digit shorter than this many line heights pays
    short_weight: float = 8.0  # this much per line height it falls short
    wide: float = 0.75  # a digit wider than this many line heights pays
    wide_weight: float = 1.0  # this much per line height beyond
    gap_weight: float = 5.0  # per line height of clear gap between its slices (digits stand apart)
    cut_weight: float = 0.33  # per stroke width of ink cut at its ends


SCORING = Scoring()


@dataclass(frozen=True)
class Candidates:
    """Every candidate digit of a line: each is a run of consecutive slices of its ink."""

    spans: np.ndarray  # (N, 2) int: slice index range [i, j) per candidate
    boxes: list[Box]  # per candidate, in ink-map pixels
    images: np.ndarray  # (N, 28, 28) float32: the crops through center_ink
    geometry: np.ndarray  # (N, 5): width and height / line height, cut, gap / line height, slices
    slices: int  # how many slices the line is cut into


@dataclass(frozen=True)
class LineDigits:
    """The chosen reading: per digit, left to right, its box, what the network saw and its logits."""

    boxes: list[Box]
    images: np.ndarray  # (n, 28, 28) float32
    logits: np.ndarray  # (n, classes)
    doubtful: list[bool]  # cut out of touching ink and read less surely than CUT_CONFIDENCE


def read_line(ink: np.ndarray, logits: Logits, rejector: Rejector, scoring: Scoring = SCORING) -> LineDigits:
    """Cut a line of ink into digits where the network reads it best (one network call)."""
    found = candidates(ink)
    if found is None:
        return LineDigits([], np.zeros((0, SIDE, SIDE), np.float32), np.zeros((0, DIGITS), np.float32), [])
    scores = logits(found.images)
    log_p = best_log_probability(scores, rejector)
    chosen = best_path(found.spans, found.slices, segment_scores(found.geometry, log_p, scoring))
    doubtful = doubtful_cuts(found.geometry, log_p)
    return LineDigits([found.boxes[k] for k in chosen], found.images[chosen], scores[chosen],
                      [bool(doubtful[k]) for k in chosen])


def doubtful_cuts(geometry: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """(N,) bool: candidates cut out of touching ink and read less surely than CUT_CONFIDENCE."""
    return (geometry[:, 2] > 0) & (log_p < np.log(CUT_CONFIDENCE))


def best_log_probability(logits: np.ndarray, rejector: Rejector) -> np.ndarray:
    """(N,) log of the calibrated probability of each image's most likely digit, among all classes
    (so a likely "not a digit" lowers it)."""
    return log_softmax(np.asarray(logits, np.float64) / rejector.temperature)[:, :DIGITS].max(axis=1)


def segment_scores(geometry: np.ndarray, log_p: np.ndarray, scoring: Scoring = SCORING) -> np.ndarray:
    """(N,) what a reading gains by taking each candidate (its `Candidates.geometry` row) as one
    digit, in log-probability units."""
    width, height, cut, gap, _ = geometry.T
    return (log_p + scoring.bonus - scoring.short_weight * np.maximum(0.0, scoring.short - height)
            - scoring.wide_weight * np.maximum(0.0, width - scoring.wide) - scoring.gap_weight * gap
            - scoring.cut_weight * cut)


# What a candidate whose score is not a number (a model answering NaN) counts as: far below any
# real score, so it is taken only where nothing else covers its slices and a path always exists.
UNSCORED = -1e9


def best_path(spans: np.ndarray, slices: int, scores: np.ndarray) -> list[int]:
    """The candidates, left to right, that cover slices 0..slices-1 once each with the highest total
    score (Viterbi over cut positions); [] if no run of candidates covers them all.

    The work is bounded by the input, whatever the scores: one pass over the candidates,
    then at most `slices` steps back. A NaN score compares false with everything, which
    once left a slice without a way back and the walk back running for ever; scores
    that are not finite now count as UNSCORED.
    """
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=UNSCORED, posinf=-UNSCORED, neginf=UNSCORED)
    best = np.full(slices + 1, -np.inf)
    best[0] = 0.0
    back = np.full(slices + 1, -1)
    for index in np.argsort(spans[:, 1], kind="stable").tolist():  # by where they end
        start, end = spans[index]
        total = best[start] + scores[index]
        if total > best[end]:
            best[end], back[end] = total, index
    path: list[int] = []
    end = slices
    for _ in range(slices):  # every candidate covers at least one slice
        if end <= 0:
            break
        index = int(back[end])
        if index < 0 or not 0 <= spans[index, 0] < end:
            return []  # no candidate ends here: the slices cannot all be covered
        path.append(index)
        end = int(spans[index, 0])
    return path[::-1] if end == 0 else []


def candidates(ink: np.ndarray) -> Candidates | None:
    """Cut the line into slices at candidate cuts; every run of a few slices is a candidate digit."""
    ink = np.asarray(ink, np.float32)
    line = _Line.of(ink)
    if line is None:
        return None
    seams, crossed = _seams(line.mask, line.height, line.stroke)
    # The ink right of k seams and left of the next (seams never cross) is a slice, unless there is
    # none: slices are numbered left to right, skipping those.
    rows, columns = np.nonzero(line.mask)
    right_of = _count_left(seams, line.mask.shape)[rows, columns]  # per ink pixel: seams on its left
    inked = np.zeros(len(seams) + 1, bool)
    inked[right_of] = True
    count = int(inked.sum())
    of_pixel = (np.cumsum(inked, dtype=np.int32) - 1)[right_of]  # per ink pixel: its slice
    x0, y0 = np.full(count, line.mask.shape[1]), np.full(count, line.mask.shape[0])
    x1, y1 = np.zeros(count, np.int64), np.zeros(count, np.int64)
    np.minimum.at(x0, of_pixel, columns)
    np.minimum.at(y0, of_pixel, rows)
    np.maximum.at(x1, of_pixel, columns + 1)
    np.maximum.at(y1, of_pixel, rows + 1)
    left, top = line.origin
    slice_boxes: list[Box] = list(zip((x0 + left).tolist(), (y0 + top).tolist(), (x1 + left).tolist(),
                                      (y1 + top).tolist(), strict=True))
    # Stroke widths of ink crossed by the seams between each slice and the one before (none before
    # the first nor after the last).
    crossed_by_first = np.concatenate([[0.0], np.cumsum(crossed)])  # [k]: by the first k seams together
    seams_left = np.flatnonzero(inked)  # [n]: how many seams run left of slice n
    cut_before = [0.0, *np.diff(crossed_by_first[seams_left]).tolist(), 0.0]
    slice_map = np.full(ink.shape, -1, np.int32)
    height, width = line.mask.shape
    slice_map[top:top + height, left:left + width][rows, columns] = of_pixel
    spans = _spans(slice_boxes, line.height)
    crops, span_boxes, geometry = [], [], []
    for start, end in spans:
        members = slice_boxes[start:end]
        x0, y0 = min(box[0] for box in members), min(box[1] for box in members)
        x1, y1 = max(box[2] for box in members), max(box[3] for box in members)
        window = slice_map[y0:y1, x0:x1]
        # Its own ink, grown by a pixel so anti-aliased edges below INK come along (as in split_digits).
        own = morph_step((window >= start) & (window < end), square=True, grow=True)
        crops.append(center_ink(ink[y0:y1, x0:x1] * own))
        span_boxes.append((x0, y0, x1, y1))
        reach, gap = members[0][2], 0
        for box in members[1:]:
            gap = max(gap, box[0] - reach)
            reach = max(reach, box[2])
        geometry.append(((x1 - x0) / line.height, (y1 - y0) / line.height,
                         (cut_before[start] + cut_before[end]) / 2, gap / line.height, end - start))
    return Candidates(np.array(spans, np.int64).reshape(-1, 2), span_boxes, np.stack(crops),
                      np.array(geometry, np.float64).reshape(-1, 5), len(slice_boxes))


@dataclass(frozen=True)
class _Line:
    """The ink of a line without specks (as split_digits drops them), framed by a clear column."""

    mask: np.ndarray  # (h, w) bool: ink that is not a speck, cropped to the line (plus a clear column)
    origin: tuple[int, int]  # (x, y) of mask[0, 0] in the ink map
    height: int  # of the tallest piece of ink: the line height
    stroke: float  # stroke width in pixels

    @classmethod
    def of(cls, ink: np.ndarray) -> _Line | None:
        inked = ink >= INK
        found = components(inked)
        if found.count == 0:
            return None
        areas = found.areas()
        keep = areas >= SPECK_FRACTION * areas.max()
        boxes = [box for box, kept in zip(found.boxes(), keep, strict=True) if kept]
        if not keep.all():
            inked &= np.concatenate([[False], keep])[found.labels()]
        left, top = max(0, min(box[0] for box in boxes) - 1), min(box[1] for box in boxes)
        right, bottom = min(ink.shape[1], max(box[2] for box in boxes) + 1), max(box[3] for box in boxes)
        mask = inked[top:bottom, left:right]
        return cls(mask, (left, top), max(y1 - y0 for _, y0, _, y1 in boxes),
                   max(1.0, stroke_width(mask.astype(np.float32))))


def _count_left(seams: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(h, w) int32: per pixel, how many seams (a column per row) run at or left of it."""
    height, width = shape
    marks = np.zeros((height, width + 1), np.int32)
    rows = np.arange(height)
    for seam in seams:
        np.add.at(marks, (rows, np.minimum(seam, width)), 1)
    return np.cumsum(marks[:, :width], axis=1, dtype=np.int32)


def _spans(boxes: list[Box], line_height: int) -> list[tuple[int, int]]:
    """Runs [i, j) of consecutive slices that could be one digit; fewer slices per run if too many."""
    spans: list[tuple[int, int]] = []
    for limit in range(MAX_SLICES, 0, -1):
        spans = []
        for start in range(len(boxes)):
            x0, x1 = boxes[start][0], boxes[start][2]
            for end in range(start + 1, min(len(boxes), start + limit) + 1):
                x0, x1 = min(x0, boxes[end - 1][0]), max(x1, boxes[end - 1][2])
                if end > start + 1 and x1 - x0 > MAX_WIDTH * line_height:
                    break
                spans.append((start, end))
        if len(spans) <= MAX_CANDIDATES:
            break
    return spans


# --- cuts -----------------------------------------------------------------------------------------

def _seams(mask: np.ndarray, line_height: int, stroke: float) -> tuple[list[np.ndarray], list[float]]:
    """Non-crossing top-to-bottom cuts through the line, left to right, and the stroke widths of ink
    each crosses.

    Seam carving both ways (top down and bottom up, `segment.carve`)
    gives for every pixel the cheapest path through it. Along a few rows, the
    local minima of that cost are candidate cuts; cheaper ones are kept first,
    and a cut that crosses one already kept, or leaves a sliver beside it, is dropped.
    """
    height, width = mask.shape
    pool = max(1, round(height / SEAM_ROWS))
    small = mask
    if pool > 1:
        small = pooled_mask(mask, pool)
    ink = small.astype(np.float64)
    down, down_moves = carve(ink, DIAGONAL)
    up, up_moves = carve(ink[::-1], DIAGONAL)
    through = down + up[::-1] - ink  # (rows, columns): the cheapest path through each pixel
    rows = ink.shape[0]
    starts = [(cost, anchor, column) for anchor in sorted({round(share * (rows - 1)) for share in ANCHORS})
              for cost, column in _minima(through[anchor])]
    starts.sort()
    anchors = np.array([anchor for _, anchor, _ in starts], np.int64)
    paths = np.zeros((len(starts), rows), np.int64)
    paths[np.arange(len(starts)), anchors] = [column for _, _, column in starts]
    for row in range(rows - 1, 0, -1):  # from each anchor up, then down
        going = anchors >= row
        paths[going, row - 1] = paths[going, row] + down_moves[row, paths[going, row]]
    for row in range(rows - 1):
        going = anchors <= row
        paths[going, row + 1] = paths[going, row] + up_moves[rows - 1 - row, paths[going, row]]
    paths = paths[np.sort(np.unique(paths, axis=0, return_index=True)[1])]  # anchors often agree
    seams = np.clip(np.repeat(paths, pool, axis=1)[:, :height] * pool + pool // 2, 0, width - 1)
    crossed = mask[np.arange(height), seams].sum(axis=1) / stroke
    seams, crossed = seams[crossed <= MAX_CROSSING], crossed[crossed <= MAX_CROSSING]
    middles = seams.mean(axis=1)
    slices = _Slices(mask, line_height, stroke)
    kept: list[int] = []
    for index in range(len(seams)):  # the cheapest first
        seam = seams[index]
        others = seams[kept]
        if crossed[index] > 0 and np.any(
                (np.abs(middles[kept] - middles[index]) < NEAR * line_height) & (crossed[kept] > 0)):
            continue  # near a cut through ink kept already
        left_of, right_of = (others <= seam).all(axis=1), (others >= seam).all(axis=1)
        if not (left_of | right_of).all():
            continue  # it crosses a cut already kept
        left = others[left_of][np.argmax(others[left_of].sum(axis=1))] if left_of.any() else None
        right = others[right_of][np.argmin(others[right_of].sum(axis=1))] if right_of.any() else None
        strict = crossed[index] > 0  # a cut through ink must leave digit-like slices; a gap only ink
        if slices.check(left, seam, strict) and slices.check(seam, right, strict):
            kept.append(index)
    kept.sort(key=lambda index: middles[index])
    return [seams[index] for index in kept], [float(crossed[index]) for index in kept]


def _minima(values: np.ndarray) -> list[tuple[float, int]]:
    """(value, column) of each local minimum: a run of equal values lower than both neighbours, at
    its middle column. The first and last columns are never cuts."""
    inner = values[1:-1]
    if inner.size == 0:
        return []
    steps = np.flatnonzero(np.abs(np.diff(inner)) > 1e-9) + 1
    starts, stops = np.concatenate([[0], steps]), np.concatenate([steps, [inner.size]])
    minima = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        value = inner[start]
        if (start == 0 or inner[start - 1] > value) and (stop == inner.size or inner[stop] > value):
            minima.append((float(value), 1 + (start + stop - 1) // 2))
    return minima


class _Slices:
    """Answers "is the ink between two seams digit-like?" in one pass over the rows.

    Per pixel, the nearest ink column at or right of it, and at or left of
    it: the ink between two seams in a row runs from the first to the last.
    """

    def __init__(self, mask: np.ndarray, line_height: int, stroke: float) -> None:
        height, width = mask.shape
        columns = np.broadcast_to(np.arange(width, dtype=np.int32), mask.shape)
        self.next = np.minimum.accumulate(np.where(mask, columns, np.int32(width))[:, ::-1], axis=1)[:, ::-1]
        self.last = np.maximum.accumulate(np.where(mask, columns, np.int32(-1)), axis=1)
        self.rows = np.arange(height)
        self.width = width
        self.wide = MIN_SLICE * line_height
        self.tall = TALL_SLICE * line_height
        self.thin = THIN * stroke

    def check(self, left: np.ndarray | None, right: np.ndarray | None, strict: bool) -> bool:
        """Whether there is ink between two seams (None: the line's end) and, if `strict`, whether it
        could be a digit or much of one: MIN_SLICE wide, or TALL_SLICE tall and THIN as a "1"."""
        low = np.zeros(len(self.rows), np.int64) if left is None else left
        high = np.full(len(self.rows), self.width, np.int64) if right is None else right
        first = self.next[self.rows, np.minimum(low, self.width - 1)]
        last = self.last[self.rows, np.maximum(high - 1, 0)]
        inked = (first < high) & (last >= low) & (first <= last)
        if not inked.any():
            return False
        if not strict:
            return True
        rows = np.flatnonzero(inked)
        wide = int(last[inked].max()) + 1 - int(first[inked].min())
        return bool(wide >= self.wide or (rows[-1] + 1 - rows[0] >= self.tall and wide <= self.thin))
