"""The line model's input and its CTC decoding, without torch."""

from __future__ import annotations

import numpy as np
import pytest

from numbre.model.line_model import (
    BLANK,
    CLASSES,
    CONTENT,
    HEIGHT,
    JUNK_CLASS,
    PAD_X,
    STRIDE,
    greedy_decode,
    line_input,
)


def frames(*best: int, sure: float = 8.0) -> np.ndarray:
    """Logits whose best class per frame is `best` (each frame's winner `sure` above the rest)."""
    logits = np.zeros((len(best), CLASSES), np.float32)
    logits[np.arange(len(best)), best] = sure
    return logits


def test_runs_collapse_and_blanks_separate_repeats() -> None:
    # blank, 0 0, blank, 0, 1 1 1, 9, blank, not-a-digit, blank -> "0 0 1 9 ?"
    tokens = greedy_decode(frames(BLANK, 1, 1, BLANK, 1, 2, 2, 2, 10, BLANK, JUNK_CLASS, BLANK))
    assert [token.digit for token in tokens] == [0, 0, 1, 9, None]
    assert [(token.first, token.last) for token in tokens] == [(1, 2), (4, 4), (5, 7), (8, 8), (10, 10)]
    assert [token.label for token in tokens] == [1, 1, 2, 10, JUNK_CLASS]


def test_all_blank_is_nothing_and_a_repeat_without_blank_is_one_digit() -> None:
    assert greedy_decode(frames(BLANK, BLANK, BLANK)) == []
    assert [token.digit for token in greedy_decode(frames(8, 8, 8, 8))] == [7]


def test_each_symbol_reports_its_peak_and_probability() -> None:
    logits = frames(BLANK, 4, 4, 4, BLANK)
    logits[2, 4] = 12.0  # the middle frame of the run is the surest
    logits[2, 6] = 3.0  # with a 5 far behind
    (token,) = greedy_decode(logits)
    assert token.peak == 2 and token.digit == 3
    e = np.exp([12.0, 3.0])
    assert token.probability == pytest.approx(e[0] / (e.sum() + CLASSES - 2))
    assert sum(token.digit_probabilities) == pytest.approx(1.0)
    assert token.digit_probabilities[3] == pytest.approx(e[0] / (e.sum() + 8))
    assert token.digit_probabilities[5] == pytest.approx(e[1] / (e.sum() + 8))


def test_a_line_is_scaled_to_the_network_height_and_maps_back() -> None:
    ink = np.zeros((100, 400), np.float32)
    ink[20:76, 50:306] = 1.0  # 56 px tall, 256 px wide
    prepared = line_input(ink, (50, 20, 306, 76))
    assert prepared.image.shape[0] == HEIGHT and prepared.image.shape[1] % STRIDE == 0
    assert prepared.scale == pytest.approx(CONTENT / 56)
    inked = np.flatnonzero(prepared.image.max(axis=0) > 0.5)
    assert inked[0] == PAD_X and inked[-1] + 1 == PAD_X + 128
    assert prepared.ink_column(PAD_X) == pytest.approx(50)
    assert prepared.ink_column(PAD_X + 128) == pytest.approx(306)
    rows = np.flatnonzero(prepared.image.max(axis=1) > 0.5)
    assert rows[-1] + 1 - rows[0] == CONTENT
