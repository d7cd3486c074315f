"""When to answer "not a digit": calibrated confidence plus checks that a digit is made of strokes.

A classifier always names one of its classes, so a scribble, a letter or a
photo of a shoe comes out as some digit, often with a high softmax score. The
`Rejector` says "not a digit" when any of its signs says so:

- the calibrated probability of the best digit is low (the network hesitates);
- the network's own "not a digit" class, trained on synthetic scribbles,
  shapes, outlines, textures and letters (`numbre.training.negatives`), is likely;
- too much of the image is ink: digits are strokes, filled areas are not;
- the strokes are too wide: the same test, measured as 2 * area / boundary.

The last two are for models without the extra class (see `fit_rejector`).
Each threshold is set on validation digits only (never on the kinds of images
it should reject) so that the signs together turn away a chosen share of real
digits, 0.5% by default. Probabilities are calibrated by temperature scaling,
fitted by minimising the negative log-likelihood on the same validation digits.
NumPy only: this runs in the inference path, where torch is not installed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from numbre.model.probabilities import log_softmax, softmax

NOT_A_DIGIT = "not a digit"
DIGITS = 10  # the first ten logits are the digits 0-9; an eleventh, if any, is NOT_A_DIGIT
INK = 0.5  # a pixel at or above this is ink, as in preprocessing
META_KEY = "rejection"
SIGNS = ("confidence", "not_a_digit", "ink", "stroke")


@dataclass(frozen=True)
class Rejector:
    """A fitted rejection policy; the defaults calibrate nothing and reject nothing."""

    temperature: float = 1.0  # logits are divided by this before the softmax
    min_confidence: float = 0.0  # reject when the best calibrated digit probability is below
    max_not_a_digit: float = 1.0  # reject when the "not a digit" class probability is above
    max_ink: float = 1.0  # reject when a larger share of the 28x28 pixels is ink
    max_stroke: float = 28.0  # reject when the mean stroke width in pixels is larger
    fitted: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)  # how, on what

    def decide(self, logits: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """(N, C) logits and the (N, 28, 28) images they came from -> calibrated (N, 10) digit
        probabilities and, per image, NOT_A_DIGIT or None (trust the most likely digit)."""
        uses_ink = self.max_ink < _NEVER.max_ink or self.max_stroke < _NEVER.max_stroke
        scores = self.scores(logits, images if uses_ink else None)  # the ink signs cost 0.1 ms an image
        rejected = ((scores["confidence"] < self.min_confidence)
                    | (scores["not_a_digit"] > self.max_not_a_digit))
        if uses_ink:
            rejected |= (scores["ink"] > self.max_ink) | (scores["stroke"] > self.max_stroke)
        return scores["probabilities"], [NOT_A_DIGIT if flag else None for flag in rejected.tolist()]

    def scores(self, logits: np.ndarray, images: np.ndarray | None) -> dict[str, np.ndarray]:
        """Every quantity the policy looks at, per image (for fitting and for benchmarks); without
        `images`, the ink signs are left out."""
        logits = np.asarray(logits, np.float64)
        probabilities = softmax(logits[:, :DIGITS] / self.temperature)
        not_a_digit = self.not_a_digit(logits)
        found = {"probabilities": probabilities, "confidence": probabilities.max(axis=1),
                 "not_a_digit": np.zeros(len(logits)) if not_a_digit is None else not_a_digit}
        if images is not None:
            found["ink"], found["stroke"] = ink_statistics(images)
        return found

    def not_a_digit(self, logits: np.ndarray) -> np.ndarray | None:
        """Per image, the calibrated probability of "not a digit"; None for a model without that class
        (only its confidence can then tell a scribble from a digit)."""
        logits = np.asarray(logits, np.float64)
        if logits.shape[1] <= DIGITS:
            return None
        return softmax(logits / self.temperature)[:, DIGITS:].sum(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Rejector:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Rejector:
        """The policy stored in a model file's metadata; a model trained without one rejects nothing."""
        return cls.from_dict(meta.get(META_KEY) or {})


_NEVER = Rejector()  # the defaults: what "not used" looks like for each threshold


def ink_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image of (N, H, W): the share of pixels that are ink, and the mean stroke width in pixels.

    Stroke width is 2 * area / boundary of the ink mask: a stroke of width w and
    length L has area w*L and a boundary of about 2L, whatever its shape. The
    boundary counts 4-neighbour edges (slanted strokes read a little thinner).
    """
    mask = np.asarray(images).reshape(len(images), *np.shape(images)[-2:]) >= INK
    area = mask.sum(axis=(1, 2))
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    edges = ((padded[:, 1:] != padded[:, :-1]).sum(axis=(1, 2))
             + (padded[:, :, 1:] != padded[:, :, :-1]).sum(axis=(1, 2)))
    share = area / (mask.shape[1] * mask.shape[2])
    stroke = np.where(edges > 0, 2.0 * area / np.maximum(edges, 1), 0.0)
    return share, stroke


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the digits' negative log-likelihood (golden-section search).

    The NLL is convex in 1 / temperature, so the search over log(temperature) in
    [1/20, 20] finds the one minimum.
    """
    logits = np.asarray(logits, np.float64)[:, :DIGITS]
    labels = np.asarray(labels, np.int64)

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(logits / math.exp(log_temperature), labels)

    low, high = math.log(1 / 20), math.log(20)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):  # the bracket shrinks by 0.618 per step: far below float precision at the end
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return math.exp((low + high) / 2)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    log_probabilities = log_softmax(logits)
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_rejector(logits: np.ndarray, labels: np.ndarray, images: np.ndarray,
                 reject_share: float = 0.005, signs: tuple[str, ...] | None = None) -> Rejector:
    """Fit temperature and thresholds on validation digits: (N, C) logits, (N,) labels, (N, 28, 28).

    Every sign gets the same share q of the digits beyond its threshold (its
    upper 1 - q quantile), with q searched so that all signs together reject
    `reject_share` of the digits. No sign is favoured without evidence, and no
    image of the kinds to be rejected is needed. `signs` picks a subset of
    SIGNS (benchmarks compare them); the others keep thresholds that never reject.

    By default a model with a "not a digit" class is judged by confidence and
    that class only. The ink signs add nothing to it: preprocessing brings every
    image's strokes to MNIST's width and binarises filled areas down to their
    rims, and the class already rejects the filled shapes that survive (see
    benchmarks/rejection.py); they would only spend the budget on bold digits.
    A ten-class model has no class to ask, so ink and stroke width stand in.
    """
    labels = np.asarray(labels, np.int64)
    has_class = np.asarray(logits).shape[1] > DIGITS
    if signs is None:
        signs = ("confidence", "not_a_digit") if has_class else ("confidence", "ink", "stroke")
    digit_logits = np.asarray(logits, np.float64)[:, :DIGITS]
    temperature = fit_temperature(logits, labels)
    scores = Rejector(temperature=temperature).scores(logits, images)
    # Higher is more suspicious for each of these.
    suspicion = {"confidence": -scores["confidence"], "not_a_digit": scores["not_a_digit"],
                 "ink": scores["ink"], "stroke": scores["stroke"]}
    if not has_class:
        del suspicion["not_a_digit"]  # a model without the extra class: that sign says nothing
    suspicion = {name: values for name, values in suspicion.items() if name in signs}

    def thresholds(share: float) -> dict[str, float]:
        return {name: float(np.quantile(values, 1 - share, method="higher"))
                for name, values in suspicion.items()}

    def rejected(limits: dict[str, float]) -> float:
        flags = np.zeros(len(labels), bool)
        for name, values in suspicion.items():
            flags |= values > limits[name]
        return float(flags.mean())

    low, high = 0.0, reject_share  # no sign alone may reject more than the whole budget
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if rejected(thresholds(middle)) <= reject_share else (low, middle)
    limits = thresholds(low)
    fitted = {"images": len(labels), "signs": list(suspicion), "target_rejected": reject_share,
              "rejected": rejected(limits), "share_per_sign": low,
              "nll_before": negative_log_likelihood(digit_logits, labels),
              "nll_after": negative_log_likelihood(digit_logits / temperature, labels)}
    never = Rejector()  # thresholds of the signs not used: they never reject
    return Rejector(temperature=temperature,
                    min_confidence=-limits.get("confidence", -never.min_confidence),
                    max_not_a_digit=limits.get("not_a_digit", never.max_not_a_digit),
                    max_ink=limits.get("ink", never.max_ink),
                    max_stroke=limits.get("stroke", never.max_stroke), fitted=fitted)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their image counts.

    `probabilities` (N, K) with the predicted class the row's maximum; 0 is perfectly calibrated.
    """
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    # Bin b holds confidences in (b / bins, (b + 1) / bins]; a confidence of 0 joins the first.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    gap = np.abs(np.bincount(which, weights=correct, minlength=bins)
                 - np.bincount(which, weights=confidence, minlength=bins))
    return float(gap.sum() / max(len(confidence), 1))
