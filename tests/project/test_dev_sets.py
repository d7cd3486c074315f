"""The dev sets choices are made on (benchmarks/dev_accuracy.py) must never hold what the outside
benchmark measures: no held-out letter form, and style bands exactly as each set says. If a dev set
drifted into the held-out part, every choice made on it would be tuning on the held-out writers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import dev_accuracy
from numbre.data.synthetic import HELDOUT_ALLOGRAPHS, STYLE_BANDS, TRAIN_ALLOGRAPHS

COUNT = 60
BANDED = (*dev_accuracy.BEYOND, "pen")


def styles(name: str) -> list[dict]:
    return [dev_accuracy.dev_digit(name, index)[2] for index in range(COUNT)]


def inside(value: float, bands) -> bool:
    return any(low <= value <= high for low, high in bands)


@pytest.mark.parametrize("name", list(dev_accuracy.SETS))
def test_every_dev_set_writes_training_letter_forms_only(name: str) -> None:
    for index, style in enumerate(styles(name)):
        digit = index % 10
        assert style["allograph"] in TRAIN_ALLOGRAPHS[digit], (name, digit, style["allograph"])
        assert style["allograph"] not in HELDOUT_ALLOGRAPHS[digit]


@pytest.mark.parametrize("name", list(dev_accuracy.SETS))
def test_no_dev_writer_has_a_band_of_the_held_out_part(name: str) -> None:
    for style in styles(name):
        for band in BANDED:
            assert not inside(style[band], STYLE_BANDS["heldout"][band]) or inside(
                style[band], STYLE_BANDS["train"][band]), (name, band, style[band])


def test_training_writers_and_edge_writers_stay_inside_the_training_bands() -> None:
    for name in ("training writers", "every band at its edge"):
        for style in styles(name):
            assert all(inside(style[band], STYLE_BANDS["train"][band]) for band in BANDED), (name, style)
    for style in styles("every band at its edge"):
        for band in BANDED:
            (low, high), = STYLE_BANDS["train"][band]
            margin = dev_accuracy.EDGE * (high - low)
            assert style[band] <= low + margin or style[band] >= high - margin, (band, style[band])


def test_one_band_beyond_moves_exactly_one_band_past_both_splits() -> None:
    moved = []
    for style in styles("one band beyond both splits"):
        beyond = [band for band in dev_accuracy.BEYOND if inside(style[band], dev_accuracy.BEYOND[band])]
        assert len(beyond) == 1, style
        assert all(inside(style[band], STYLE_BANDS["train"][band]) for band in BANDED if band not in beyond)
        moved.append(beyond[0])
    assert set(moved) == set(dev_accuracy.BEYOND)  # every band gets its turn in 60 digits


def test_pens_beyond_change_the_pen_only() -> None:
    for style in styles("pens beyond both splits"):
        assert inside(style["pen"], dev_accuracy.PENS_BEYOND)
        assert all(inside(style[band], STYLE_BANDS["train"][band]) for band in dev_accuracy.BEYOND)


def test_a_dev_set_is_the_same_every_time() -> None:
    first, label, _ = dev_accuracy.dev_digit("every band at its edge", 7)
    again, label_again, _ = dev_accuracy.dev_digit("every band at its edge", 7)
    assert label == label_again == 7 and np.array_equal(first, again)


@pytest.mark.parametrize("name", list(dev_accuracy.SETS))
def test_dev_numbers_are_written_by_the_sets_own_writers_in_training_forms(name: str) -> None:
    for index in range(6):
        for kind in ("apart", "touching", "broken"):
            picture, digits, style = dev_accuracy.dev_number(name, kind, index)
            assert picture.ndim == 3 and 2 <= len(digits) <= 10 and style["kind"] == kind
            assert all(form in TRAIN_ALLOGRAPHS[int(digit)] for digit, form in
                       zip(digits, style["allographs"], strict=True)), style["allographs"]
            for band in BANDED:
                assert not inside(style[band], STYLE_BANDS["heldout"][band]) or inside(
                    style[band], STYLE_BANDS["train"][band]), (name, band, style[band])
    pens = [dev_accuracy.dev_number("pens beyond both splits", "apart", index)[2]["pen"]
            for index in range(6)]
    assert all(inside(pen, dev_accuracy.PENS_BEYOND) for pen in pens)
