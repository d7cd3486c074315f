"""The "not a digit" policy: calibration, thresholds fitted on digits only, the decisions it makes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from numbre.model.rejection import (
    NOT_A_DIGIT,
    Rejector,
    expected_calibration_error,
    fit_rejector,
    fit_temperature,
    ink_statistics,
    softmax,
)


def stroke_digit() -> np.ndarray:
    """A "7" of 2-pixel strokes in a 20-pixel box, as preprocessing leaves a digit."""
    image = np.zeros((28, 28), np.float32)
    image[4:6, 6:22] = 1.0
    for row in range(6, 24):
        column = 21 - (row - 6) * 8 // 18
        image[row, column - 1:column + 1] = 1.0
    return image


def filled_square() -> np.ndarray:
    image = np.zeros((28, 28), np.float32)
    image[4:24, 4:24] = 1.0
    return image


def confident(digit: int, margin: float = 12.0, classes: int = 10) -> np.ndarray:
    logits = np.zeros(classes)
    logits[digit] = margin
    return logits


def test_ink_statistics_tell_strokes_from_filled_areas() -> None:
    share, stroke = ink_statistics(np.stack([stroke_digit(), filled_square(), np.zeros((28, 28))]))
    assert 1.4 < stroke[0] < 2.2  # 2 px strokes; the slanted one's staircase edge reads thinner
    assert stroke[1] == pytest.approx(2 * 400 / 80)  # a 20 x 20 square: area 400, boundary 80
    assert share[1] == pytest.approx(400 / 784) and share[0] < 0.1
    assert (share[2], stroke[2]) == (0.0, 0.0)


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20_000, 10))
    for true_temperature in (0.5, 2.5):
        probabilities = softmax(logits / true_temperature)
        labels = (probabilities.cumsum(1) < rng.random((len(logits), 1))).sum(1).clip(0, 9)
        assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_ece_is_zero_for_calibrated_and_the_gap_for_overconfident_predictions() -> None:
    rng = np.random.default_rng(0)
    count = 200_000
    confidence = rng.uniform(0.2, 1.0, count)
    predicted = rng.integers(0, 10, count)
    # The predicted class gets `confidence`, the other nine share the rest (each below 0.09).
    probabilities = np.repeat(((1 - confidence) / 9)[:, None], 10, axis=1)
    probabilities[np.arange(count), predicted] = confidence
    wrong = (predicted + rng.integers(1, 10, count)) % 10
    calibrated = np.where(rng.random(count) < confidence, predicted, wrong)
    assert expected_calibration_error(probabilities, calibrated) < 0.01
    # The same predictions with 10 points less accuracy than claimed: an ECE of about 0.1.
    overconfident = np.where(rng.random(count) < confidence - 0.1, predicted, wrong)
    assert expected_calibration_error(probabilities, overconfident) == pytest.approx(0.1, abs=0.01)


def test_decide_accepts_confident_strokes_and_rejects_hesitation_fills_and_the_extra_class() -> None:
    rejector = Rejector(temperature=1.0, min_confidence=0.9, max_not_a_digit=0.5, max_ink=0.35,
                        max_stroke=4.0)
    digit, square = stroke_digit(), filled_square()
    logits = np.stack([
        confident(7, classes=11),  # a confident "7" made of strokes: accepted
        np.r_[np.full(10, 1.0), 0.0],  # every digit alike: the network hesitates
        confident(7, classes=11),  # confident, but a filled square is no digit
        np.r_[confident(7), 20.0],  # the "not a digit" class wins
    ])
    probabilities, reasons = rejector.decide(logits, np.stack([digit, digit, square, digit]))
    assert reasons == [None, NOT_A_DIGIT, NOT_A_DIGIT, NOT_A_DIGIT]
    assert probabilities.shape == (4, 10) and np.allclose(probabilities.sum(1), 1.0)
    assert probabilities[0].argmax() == 7 and probabilities[0, 7] > 0.99
    # A ten-class model (no extra class) is judged by confidence and ink alone.
    _, reasons = rejector.decide(np.stack([confident(3), confident(3)]), np.stack([digit, square]))
    assert reasons == [None, NOT_A_DIGIT]


def test_temperature_softens_the_probabilities_it_reports() -> None:
    logits = confident(2, margin=4.0)[None]
    sharp, _ = Rejector(temperature=1.0).decide(logits, stroke_digit()[None])
    soft, _ = Rejector(temperature=2.0).decide(logits, stroke_digit()[None])
    assert soft[0, 2] < sharp[0, 2] and soft[0, 2] == pytest.approx(np.exp(2) / (np.exp(2) + 9))


def test_fit_rejects_the_chosen_share_of_validation_digits_and_round_trips_as_json() -> None:
    rng = np.random.default_rng(1)
    count = 4000
    labels = rng.integers(0, 10, count)
    logits = rng.normal(0, 1, (count, 11))
    logits[np.arange(count), labels] += rng.uniform(2, 12, count)  # confident, mostly right
    digit = stroke_digit()
    images = np.stack([np.roll(digit, shift, axis=1) for shift in rng.integers(-3, 4, count)])
    images[:40] = np.maximum(images[:40], np.roll(images[:40], 1, axis=2))  # a few bolder strokes
    rejector = fit_rejector(logits, labels, images, reject_share=0.01)
    _, reasons = rejector.decide(logits, images)
    share = np.mean([reason is not None for reason in reasons])
    assert 0.005 <= share <= 0.01 and rejector.fitted["rejected"] == pytest.approx(share)
    assert rejector.fitted["nll_after"] <= rejector.fitted["nll_before"]
    # The thresholds were set on digits only, yet what the extra class claims is turned away...
    assert rejector.fitted["signs"] == ["confidence", "not_a_digit"]
    _, reasons = rejector.decide(np.r_[confident(5), 15.0][None], digit[None])
    assert reasons == [NOT_A_DIGIT]
    # ... and a ten-class model, which has no such class, turns away a filled area by its ink.
    ten = fit_rejector(logits[:, :10], labels, images, reject_share=0.01)
    assert ten.fitted["signs"] == ["confidence", "ink", "stroke"] and 0.005 <= ten.fitted["rejected"] <= 0.01
    _, reasons = ten.decide(np.stack([confident(5), confident(5)]), np.stack([digit, filled_square()]))
    assert reasons == [None, NOT_A_DIGIT]
    stored = json.loads(json.dumps({"rejection": rejector.to_dict()}))
    assert Rejector.from_meta(stored) == rejector
    assert Rejector.from_meta({}) == Rejector()  # a model file without a policy rejects nothing
    _, reasons = Rejector().decide(np.zeros((1, 10)), filled_square()[None])
    assert reasons == [None]


def test_reject_runs_without_torch() -> None:
    code = "import sys, numbre.model.rejection; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
