"""Synthetic lines for the whole-number reader: one set per seed, labelled as drawn, training writers only."""

from __future__ import annotations

import numpy as np
import pytest

from numbre.data import lines as lines_module
from numbre.data.drawn import glyph
from numbre.data.lines import JUNK, LENGTHS, LINE_KINDS, SOURCES, make_line, make_lines

# Stand-ins for MNIST's training digits: three varied stroke-font glyphs per class.
DIGITS = np.stack([glyph(digit, np.random.default_rng(100 * copy + digit)) for copy in range(3)
                   for digit in range(10)])
LABELS = np.tile(np.arange(10), 3).astype(np.uint8)


def test_a_seed_gives_the_same_lines_however_they_are_split() -> None:
    first = make_lines(8, 3, DIGITS, LABELS, junk_share=0.5)
    again = make_lines(8, 3, DIGITS, LABELS, junk_share=0.5)
    tail = make_lines(4, 3, DIGITS, LABELS, start=4, junk_share=0.5)  # as a second worker makes them
    for one, two in zip(first, again, strict=True):
        assert one.labels == two.labels and np.array_equal(one.image, two.image)
    for one, two in zip(first[4:], tail, strict=True):
        assert one.labels == two.labels and np.array_equal(one.image, two.image)
    other = make_lines(8, 4, DIGITS, LABELS, junk_share=0.5)
    assert [line.labels for line in other] != [line.labels for line in first]


@pytest.mark.parametrize("kind", LINE_KINDS)
@pytest.mark.parametrize("source", SOURCES)
def test_a_line_holds_the_digits_it_is_labelled_with(kind: str, source: str, monkeypatch) -> None:
    drawn: list[int] = []
    restroke = lines_module.restroke
    digit_ink = lines_module.digit_ink

    def recording_restroke(digit28, *args, **kwargs):
        drawn.append(int(LABELS[[np.array_equal(digit28, image) for image in DIGITS].index(True)]))
        return restroke(digit28, *args, **kwargs)

    def recording_digit_ink(digit, *args, **kwargs):
        drawn.append(int(digit))
        return digit_ink(digit, *args, **kwargs)

    monkeypatch.setattr(lines_module, "restroke", recording_restroke)
    monkeypatch.setattr(lines_module, "digit_ink", recording_digit_ink)
    line = make_line(np.random.default_rng(7), DIGITS, LABELS, length=6, kind=kind, source=source,
                     junk_share=0.0)
    assert len(line.labels) == 6 and all(0 <= label <= 9 for label in line.labels)
    assert tuple(drawn) == line.labels and line.text == "".join(map(str, line.labels))
    assert line.kind == kind and line.source == source
    assert line.image.dtype == np.uint8 and line.image.ndim == 3 and line.image.shape[2] in (3, 4)


def test_a_scribble_is_labelled_where_it_stands() -> None:
    for seed in range(5):
        line = make_line(np.random.default_rng(seed), DIGITS, LABELS, length=4, junk_share=1.0)
        assert len(line.labels) == 5 and line.labels.count(JUNK) == 1
        assert line.text.count("?") == 1 and line.text.index("?") == line.labels.index(JUNK)


def test_lengths_run_from_one_to_twelve_digits() -> None:
    lengths = {len(line.labels) for line in make_lines(120, 0, DIGITS, LABELS, junk_share=0.0)}
    assert min(lengths) == LENGTHS[0] == 1 and max(lengths) == LENGTHS[1] == 12


def test_only_the_synthesisers_training_writers_are_used(monkeypatch) -> None:
    splits: list[str] = []
    random_writer = lines_module.random_writer

    def recording(rng, split="train", medium=None):
        splits.append(split)
        return random_writer(rng, split, medium)

    monkeypatch.setattr(lines_module, "random_writer", recording)
    make_lines(40, 1, DIGITS, LABELS)
    assert splits and set(splits) == {"train"}


def test_unknown_kinds_and_sources_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown kind 'wavy'"):
        make_line(rng, DIGITS, LABELS, kind="wavy")
    with pytest.raises(ValueError, match="unknown source 'fonts'"):
        make_line(rng, DIGITS, LABELS, source="fonts")


def test_letter_form_variation_moves_only_the_synthesised_writers_digits() -> None:
    """At 0 a line is what it always was; above 0 a synthesised writer's digits change shape (their
    labels, kind and source do not), while a line of MNIST digits alone stays byte for byte."""
    for source, changes in (("synthetic", True), ("mnist", False)):
        rng_args = dict(length=5, kind="apart", source=source, junk_share=0.0)
        plain = make_line(np.random.default_rng(21), DIGITS, LABELS, **rng_args)
        zero = make_line(np.random.default_rng(21), DIGITS, LABELS, variation=0.0, **rng_args)
        varied = make_line(np.random.default_rng(21), DIGITS, LABELS, variation=1.0, **rng_args)
        assert np.array_equal(plain.image, zero.image) and plain.labels == zero.labels
        assert varied.labels == plain.labels and (varied.kind, varied.source) == (plain.kind, plain.source)
        same = varied.image.shape == plain.image.shape and np.array_equal(varied.image, plain.image)
        assert same is not changes, source
    many = make_lines(6, 3, DIGITS, LABELS, variation=1.0)
    assert [line.labels for line in many] == [line.labels for line in make_lines(6, 3, DIGITS, LABELS)]
