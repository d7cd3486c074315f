"""The line model reads whole numbers in one pass and boxes each digit; number mode refuses scribbles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from numbre import Recognizer
from numbre.data.drawn import drawn_number, drawn_number_with_boxes, glyph
from numbre.data.synthetic import synth_numbers
from numbre.model.line_model import DEFAULT_LINE_ONNX, PAD_X, STRIDE, Token, line_input
from numbre.reading.line_reader import read_tokens, token_boxes
from numbre.reading.preprocess import ink_map


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def test_the_shipped_recognizer_carries_the_shipped_line_model(recognizer: Recognizer) -> None:
    assert DEFAULT_LINE_ONNX.is_file() and recognizer.line_model is not None
    assert recognizer.line_model.path == DEFAULT_LINE_ONNX
    assert recognizer.line_model.meta["kind"] == "ctc-line"
    assert Recognizer.load(lines=False).line_model is None


def test_a_digit_model_of_your_own_reads_numbers_alone_unless_given_a_line_model() -> None:
    from numbre.model.onnx_model import DEFAULT_ONNX

    assert Recognizer.load(DEFAULT_ONNX).line_model is None  # what you measure is your model
    paired = Recognizer.load(DEFAULT_ONNX, lines=DEFAULT_LINE_ONNX)
    assert paired.line_model is not None and paired.line_model.path == DEFAULT_LINE_ONNX


CASES = [((3, 1, 4, 1, 5, 9), 1, {}), ((2, 0, 2, 6), 2, {"touching": True}), ((8, 6, 7), 3, {"broken": True}),
         ((5, 0, 7, 2, 1), 4, {}), ((9, 4, 8), 5, {"touching": True})]


@pytest.mark.parametrize(("digits", "seed", "options"), CASES)
def test_the_shipped_line_model_reads_drawn_lines_in_one_pass(recognizer: Recognizer, digits, seed: int,
                                                              options) -> None:
    rng = np.random.default_rng(seed)
    image, true_boxes = drawn_number_with_boxes([glyph(digit, rng) for digit in digits], rng, **options)
    found = ink_map(image)
    line = read_tokens(found, recognizer.line_model)
    assert [token.digit for token in line.tokens] == list(digits)
    for box, (true_x0, _, true_x1, _) in zip(line.boxes, true_boxes, strict=True):
        x0, _, x1, _ = found.input_box(box)
        assert true_x0 <= (x0 + x1) / 2 <= true_x1  # each box is centred on its own digit
    reading = recognizer.read(image)
    assert reading.number == "".join(map(str, digits)), reading.to_dict()
    assert all(0.0 < digit.confidence <= 1.0 and digit.image.shape == (28, 28) for digit in reading.digits)


def test_the_shipped_line_model_reads_synthesised_training_writers(recognizer: Recognizer) -> None:
    numbers = synth_numbers(12, 5, split="train", kind="apart", lengths=(3, 6))
    right = sum(recognizer.read(image).number == truth for truth, image, _ in numbers)
    assert right >= 10, f"{right} of 12 read exactly"


def scribble(seed: int, size: int = 200) -> np.ndarray:
    """A tangle of strokes through random points, on white paper: ink that is no digit."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (2 * size, size), 255)
    corners = rng.uniform([20, 20], [2 * size - 20, size - 20], size=(16, 2))
    points = [(float(x), float(y)) for x, y in corners]
    ImageDraw.Draw(canvas).line(points, fill=0, width=8, joint="curve")
    return np.asarray(canvas)


@pytest.mark.parametrize("seed", [1, 2])
def test_number_mode_still_refuses_a_scribble(recognizer: Recognizer, seed: int) -> None:
    reading = recognizer.read(scribble(seed))
    assert reading.number is None and reading.reason == "not a digit", reading.to_dict()


def test_a_scribble_between_digits_makes_the_number_unreadable(recognizer: Recognizer) -> None:
    tangle = np.asarray(Image.fromarray(scribble(7, 56)).resize((28, 28), Image.BOX))
    image = drawn_number([glyph(5), glyph(1), 255 - tangle, glyph(3)], np.random.default_rng(7))
    reading = recognizer.read(image)
    assert reading.number is None and reading.reason == "not a digit", reading.to_dict()


def test_boxes_follow_the_emptiest_columns_between_marks() -> None:
    ink = np.zeros((40, 120), np.float32)
    ink[5:35, 10:30] = 1.0  # three blocks with gaps at 30-40 and 70-80
    ink[8:30, 40:70] = 1.0
    ink[5:35, 80:100] = 1.0
    prepared = line_input(ink, (10, 5, 100, 35))

    def token(column: float) -> Token:  # a symbol peaking at this ink column
        frame = round(((column - 10) * prepared.scale + PAD_X - STRIDE / 2) / STRIDE)
        return Token(2, frame, frame, frame, 0.9, (0.1,) * 10)

    centred = token_boxes(ink, prepared, [token(20), token(55), token(90)])
    assert centred == [(10, 5, 30, 35), (40, 8, 70, 30), (80, 5, 100, 35)]
    # Peaks near each digit's left edge (as the shipped network's are) give the same boxes.
    assert token_boxes(ink, prepared, [token(11), token(42), token(81)]) == centred
