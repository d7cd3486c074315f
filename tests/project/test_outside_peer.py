"""The outside benchmark's peer: Tesseract, installed by the test command and driven as a user would
(one character with --psm 10, one line with --psm 7, digits only). Without this the benchmark would
print numbre's row alone and nothing would say that the comparison silently fell away."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import outside_accuracy


def printed(text: str) -> np.ndarray:
    """Black printed text on white, large and clean: what any OCR engine reads."""
    font = ImageFont.load_default(size=64)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 60, bottom - top + 60), "white")
    ImageDraw.Draw(image).text((30 - left, 30 - top), text, fill="black", font=font)
    return np.asarray(image)


def test_tesseract_is_installed_with_its_lstm_engine() -> None:
    assert 1 in outside_accuracy.tesseract_engines(), (
        "the test command installs tesseract-ocr and tesseract-ocr-eng; the LSTM engine must run")


def test_tesseract_reads_clean_printed_digits_and_numbers_as_the_benchmark_calls_it() -> None:
    digits, seconds = outside_accuracy.tesseract_read([printed("7"), printed("3")], engine=1, psm=10)
    assert digits == ["7", "3"] and seconds > 0
    numbers, _ = outside_accuracy.tesseract_read([printed("2026"), printed("451")], engine=1, psm=7)
    assert numbers == ["2026", "451"]


def test_a_transparent_canvas_export_is_flattened_onto_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)  # one opaque black pixel; the rest transparent
    flat = outside_accuracy.flattened(rgba)
    assert flat.shape == (4, 4, 3)
    assert flat[0, 0].tolist() == [0, 0, 0] and flat[1, 1].tolist() == [255, 255, 255]


def test_the_pens_table_sets_each_pen_and_keeps_the_rest_of_the_training_writer(capsys, monkeypatch) -> None:
    """`--pens`: one row per pen range, one cell per medium; each writer is a training writer with
    only its pen replaced (checked on what the benchmark hands to page_image)."""
    drawn = []
    page_image = outside_accuracy.page_image

    def recording(ink, writer, rng, height):
        drawn.append(writer)
        return page_image(ink, writer, rng, height)

    monkeypatch.setattr(outside_accuracy, "page_image", recording)
    outside_accuracy.pens_table(2, 0, None)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.")]
    assert [row.split(" |")[0][2:] for row in rows] == [
        f"{low:.3f}-{high:.3f}" for low, high in outside_accuracy.PEN_RANGES]
    assert all(row.count("%") == len(outside_accuracy.MEDIA) for row in rows)
    assert len(drawn) == 2 * len(outside_accuracy.MEDIA) * len(outside_accuracy.PEN_RANGES)
    for index, writer in enumerate(drawn):
        low, high = outside_accuracy.PEN_RANGES[index // (2 * len(outside_accuracy.MEDIA))]
        assert writer.split == "train" and low <= writer.pen < high
        assert writer.medium == outside_accuracy.MEDIA[index // 2 % len(outside_accuracy.MEDIA)]
