"""The Recognizer on every kind of input people have, with the shipped model and images made here."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from numbre import Prediction, Reading, Recognizer
from numbre.data.drawn import drawn_digit, drawn_number, glyph
from numbre.errors import NumbreError
from numbre.reading.preprocess import ink_map
from numbre.reading.segment import count_digits

DIGITS = range(10)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def big(digit: int, size: int = 280, dark_on_light: bool = True) -> np.ndarray:
    """The stroke-font digit enlarged to `size` px, as an RGB image of either polarity."""
    image = np.asarray(Image.fromarray(glyph(digit)).resize((size, size), Image.BILINEAR))
    if dark_on_light:
        image = 255 - image
    return np.repeat(image[..., None], 3, axis=2)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("digit", DIGITS)
def test_both_polarities_read_the_same(recognizer: Recognizer, digit: int) -> None:
    dark = recognizer.predict(big(digit, dark_on_light=True))
    light = recognizer.predict(big(digit, dark_on_light=False))
    assert dark.digit == light.digit == digit
    assert np.abs(np.array(dark.probabilities) - np.array(light.probabilities)).max() < 0.05
    assert dark.image.shape == (28, 28) and dark.image.dtype == np.float32


@pytest.mark.parametrize("digit", DIGITS)
def test_transparent_canvas_exports_with_dark_or_light_ink(recognizer: Recognizer, digit: int) -> None:
    ink = glyph(digit)
    ink = np.asarray(Image.fromarray(ink).resize((280, 280), Image.BILINEAR))
    for colour in (0, 255):
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = ink
        assert recognizer.predict(png(rgba)).digit == digit, colour


@pytest.mark.parametrize("size", [20, 28, 64, 500, 2000])
def test_any_image_size(recognizer: Recognizer, size: int) -> None:
    assert recognizer.predict(big(3, size)).digit == 3


def test_every_input_kind_gives_the_same_answer(recognizer: Recognizer, tmp_path: Path) -> None:
    array = big(5)
    path = tmp_path / "five.png"
    path.write_bytes(png(array))
    sources = (array, png(array), path, str(path), Image.fromarray(array),
               Image.fromarray(array).convert("L"))
    answers = [recognizer.predict(source) for source in sources]
    assert {answer.digit for answer in answers} == {5}
    assert max(abs(a.confidence - answers[0].confidence) for a in answers) < 1e-5


def test_drawn_digits_in_every_style(recognizer: Recognizer) -> None:
    rng = np.random.default_rng(7)
    right = total = 0
    for style in ("canvas", "paper", "marker", "photo"):
        for digit in DIGITS:
            answer = recognizer.predict(drawn_digit(glyph(digit, rng), rng, style=style))
            right += answer.digit == digit
            total += 1
    assert right / total >= 0.9, f"{right}/{total}"


def test_off_centre_drawing_has_its_box_in_input_pixels(recognizer: Recognizer) -> None:
    canvas = np.full((300, 400), 255, np.uint8)
    digit = 255 - np.asarray(Image.fromarray(glyph(2)).resize((100, 100), Image.BILINEAR))
    canvas[180:280, 260:360] = digit
    answer = recognizer.predict(canvas)
    assert answer.digit == 2
    x0, y0, x1, y1 = answer.box
    assert 255 <= x0 <= 290 and 175 <= y0 <= 200 and 330 <= x1 <= 362 and 260 <= y1 <= 282


def test_blank_and_nearly_blank_images_are_empty_never_a_guess(recognizer: Recognizer) -> None:
    white = np.full((280, 280), 255, np.uint8)
    speck = white.copy()
    speck[100:102, 100:102] = 0
    noisy = np.clip(np.random.default_rng(0).normal(235, 6, (280, 280)), 0, 255).astype(np.uint8)
    for image in (white, np.zeros((50, 50), np.uint8), speck, noisy, np.full((1, 1), 9, np.uint8)):
        answer = recognizer.predict(image)
        assert answer.digit is None and answer.reason == "empty", answer
        assert answer.to_dict() == {"digit": None, "confidence": 0.0, "probabilities": [0.0] * 10,
                                    "reason": "empty"}


def test_several_digits_in_predict_point_to_read(recognizer: Recognizer) -> None:
    number = drawn_number([glyph(digit) for digit in (4, 2)], np.random.default_rng(1))
    answer = recognizer.predict(number)
    assert answer.digit is None and answer.reason == "several digits"


@pytest.mark.parametrize("digit", [0, 3, 4, 8])
def test_a_digit_with_a_gap_is_one_digit_not_several(recognizer: Recognizer, digit: int) -> None:
    """A pen that skips leaves one digit in two side-by-side pieces; it is still read."""
    broken = glyph(digit).copy()
    broken[:, 13:15] = 0  # a gap down the middle: the ink falls into a left and a right piece
    image = np.kron(broken, np.ones((10, 10), np.uint8))
    assert count_digits(ink_map(image).ink) == 2
    answer = recognizer.predict(image)
    assert answer.digit == digit and answer.reason is None, answer


@pytest.mark.parametrize(("digits", "touching", "broken"), [
    ((1, 9, 8, 4), False, False), ((3, 1, 4, 1, 5, 9, 2, 6), False, False), ((7,), False, False),
    ((2, 0, 2, 6), False, True), ((5, 0), True, False),
])
def test_read_whole_numbers(recognizer: Recognizer, digits, touching: bool, broken: bool) -> None:
    rng = np.random.default_rng(sum(digits))
    image = drawn_number([glyph(digit) for digit in digits], rng, touching=touching, broken=broken)
    reading = recognizer.read(image)
    assert reading.number == "".join(map(str, digits)), reading.to_dict()
    boxes = [digit.box for digit in reading.digits]
    assert all(a[2] <= b[2] for a, b in itertools.pairwise(boxes))  # left to right
    assert all(0 <= box[0] < box[2] <= image.shape[1] and 0 <= box[1] < box[3] <= image.shape[0]
               for box in boxes)
    assert set(reading.to_dict()) == {"number", "digits"}


def test_read_of_a_blank_page_is_empty(recognizer: Recognizer) -> None:
    assert recognizer.read(np.full((100, 300), 250, np.uint8)).to_dict() == {
        "number": None, "digits": [], "reason": "empty"}


def test_predict_batch_matches_predict(recognizer: Recognizer) -> None:
    images = [big(digit) for digit in DIGITS] + [np.full((40, 40), 255, np.uint8)]
    batch = recognizer.predict_batch(images)
    single = [recognizer.predict(image) for image in images]
    assert [p.digit for p in batch] == [p.digit for p in single] == [*DIGITS, None]
    assert all(abs(a.confidence - b.confidence) < 1e-5 for a, b in zip(batch, single, strict=True))
    assert all(isinstance(p, Prediction) for p in batch)
    assert isinstance(recognizer.read(big(1)), Reading)


def test_probabilities_are_a_distribution(recognizer: Recognizer) -> None:
    answer = recognizer.predict(big(8))
    assert len(answer.probabilities) == 10 and abs(sum(answer.probabilities) - 1) < 1e-4
    assert answer.confidence == max(answer.probabilities)


def test_undecodable_input_is_a_clear_error(recognizer: Recognizer) -> None:
    for data in (b"", b"%PDF-1.4 not an image", png(big(1))[:60]):
        with pytest.raises(NumbreError):
            recognizer.predict(data)
