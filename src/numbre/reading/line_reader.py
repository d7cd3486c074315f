"""Reading a whole number in one pass: the line network (CTC) reads the line, no cutting first.

The line's ink (`preprocess.ink_map`) is scaled to the network's height
(`numbre.model.line_model.line_input`); the network scores every 4-column
frame, and greedy CTC decoding gives the digits left to right. Each digit's
box comes from the alignment: the frame where the network is surest of it
marks it (shifted by how far the line's peaks sit off the digits' centres),
the boundary between two neighbours is the column with the least ink between
their marks, and the box is the ink between two boundaries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from numbre.model.line_model import STRIDE, LineInput, LineModel, Token, greedy_decode, line_input
from numbre.reading.preprocess import INK, InkMap

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in ink-map pixels, x1/y1 exclusive


@dataclass(frozen=True)
class LineTokens:
    """What the line network read: its symbols left to right and each one's box in ink-map pixels."""

    tokens: list[Token]
    boxes: list[Box]


def prepare_line(found: InkMap) -> LineInput | None:
    """The network's input for an image's ink, or None for an empty image."""
    if found.empty or found.box is None:
        return None
    return line_input(found.ink, found.box)


def read_tokens(found: InkMap, model: LineModel) -> LineTokens:
    """Read the line in `found` with `model`: decoded symbols and their boxes (empty ink: none)."""
    prepared = prepare_line(found)
    if prepared is None:
        return LineTokens([], [])
    tokens = greedy_decode(model.logits(prepared.image))
    return LineTokens(tokens, token_boxes(found.ink, prepared, tokens))


def token_boxes(ink: np.ndarray, prepared: LineInput, tokens: list[Token]) -> list[Box]:
    """Each symbol's box: between the emptiest ink columns separating its mark from its neighbours'."""
    if not tokens:
        return []
    y0, y1 = prepared.y0, prepared.y1
    x0 = prepared.x0
    band = ink[y0:y1]
    mask = band >= INK
    columns = mask.any(axis=0)
    inked = np.flatnonzero(columns[x0:]) + x0
    x1 = int(inked[-1]) + 1 if inked.size else ink.shape[1]
    peaks = [prepared.ink_column(token.peak * STRIDE + STRIDE / 2) for token in tokens]
    # Where in its digit a symbol peaks depends on the network (CTC fixes no position; this one
    # peaks near a digit's left edge). The first and last digits show it: the line's ink starts
    # and ends with them, so half the difference of their margins is how far peaks sit off centre.
    offset = ((peaks[0] - x0) - (x1 - peaks[-1])) / 2 if len(peaks) > 1 else 0.0
    marks = [min(max(peak - offset, x0), x1 - 1) for peak in peaks]
    weight = band.sum(axis=0)
    bounds = [x0]
    for left, right in itertools.pairwise(marks):
        a, b = int(np.ceil(left)), int(np.floor(right)) + 1
        if b - a <= 1:
            bounds.append(round((left + right) / 2) + 1)
            continue
        window = weight[a:b]
        lowest = np.flatnonzero(window <= window.min() + 1e-6)
        bounds.append(a + int(lowest[len(lowest) // 2]))  # the middle of the emptiest stretch
    bounds.append(x1)
    boxes: list[Box] = []
    for left, right in itertools.pairwise(bounds):
        right = max(right, left + 1)
        piece = mask[:, left:right]
        rows = np.flatnonzero(piece.any(axis=1))
        cols = np.flatnonzero(piece.any(axis=0))
        if rows.size == 0:
            boxes.append((left, y0, right, y1))
        else:
            boxes.append((left + int(cols[0]), y0 + int(rows[0]), left + int(cols[-1]) + 1,
                          y0 + int(rows[-1]) + 1))
    return boxes
