"""What a model answers on the test set, and the figures computed from it: the mistakes worst first
and the reliability (calibration) table.

A report asks "how sure was the model when it erred?" and "is 90% confidence right 90% of the
time?"; both need each image's probabilities, not only the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from numbre.model.metrics import Metrics, compute_metrics
from numbre.model.network import predict_logits as batched_logits
from numbre.model.probabilities import softmax


def predict_logits(network: nn.Module, images: np.ndarray) -> np.ndarray:
    """(N, C) logits for (N, 28, 28) float images in [0, 1], in eval mode. Channels-last memory
    runs the convolutions about twice as fast on a CPU; the answers are the same."""
    network = network.eval().to(memory_format=torch.channels_last)
    device = next(network.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return batched_logits(network, x).float().cpu().numpy()


def predict_classes(network: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A function from (N, 28, 28) float images to (N,) predicted class indices."""
    return lambda images: predict_logits(network, images).argmax(axis=1)


@dataclass(frozen=True)
class Answers:
    """A model's answers on a test set: (N, C) softmax probabilities for (N,) labels."""

    probabilities: np.ndarray
    labels: np.ndarray
    metrics: Metrics

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    def errors_worst_first(self) -> np.ndarray:
        """Indices of the misclassified images, the most confident mistakes first
        (ties in image order)."""
        wrong = np.flatnonzero(~self.correct)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]


def answer_test_set(network: nn.Module, images: np.ndarray, labels: np.ndarray,
                    class_names: Sequence[str]) -> Answers:
    """Run the network on uint8 (N, 28, 28) test images; `class_names` are the model's."""
    logits = predict_logits(network, images.astype(np.float32) / 255)
    return Answers(softmax(logits.astype(np.float64)), labels.astype(np.int64),
                   compute_metrics(logits, labels, class_names))


@dataclass(frozen=True)
class Reliability:
    """Confidence binned into equal-width bins: how often the model was right in each."""

    edges: np.ndarray  # (bins + 1,) from 0 to 1
    counts: np.ndarray  # (bins,) images per bin
    accuracy: np.ndarray  # (bins,) share right in each bin; NaN for an empty bin
    confidence: np.ndarray  # (bins,) mean confidence in each bin; NaN for an empty bin
    expected_calibration_error: float  # sum over bins of |accuracy - confidence| weighted by count


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> Reliability:
    """The reliability table of confidences in [0, 1] and whether each answer was right."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    right = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    sure = np.bincount(index, weights=confidence.astype(np.float64), minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy, mean_confidence = right / counts, sure / counts
    gap = np.abs(np.nan_to_num(accuracy) - np.nan_to_num(mean_confidence)) * counts
    return Reliability(edges, counts, accuracy, mean_confidence, float(gap.sum() / max(1, len(confidence))))
