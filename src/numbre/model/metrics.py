"""Evaluation metrics from logits and labels, in NumPy, so training (its validation), the insight tools
and the torch-free reading install compute them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from numbre.model.probabilities import softmax


@dataclass(frozen=True)
class Metrics:
    """Accuracy, loss, per-class precision/recall/F1 and the confusion matrix of one evaluation."""

    accuracy: float
    loss: float
    confusion: np.ndarray  # (true class, predicted class) counts
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    class_names: tuple[str, ...]

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def errors(self) -> int:
        return self.count - int(np.trace(self.confusion))

    def summary(self) -> dict[str, Any]:
        return {"accuracy": round(self.accuracy, 6), "loss": round(self.loss, 6),
                "images": self.count, "errors": self.errors}

    def to_dict(self) -> dict[str, Any]:
        per_class = [
            {"class": name, "precision": round(float(p), 6), "recall": round(float(r), 6),
             "f1": round(float(f), 6), "support": int(support)}
            for name, p, r, f, support in zip(self.class_names, self.precision, self.recall,
                                              self.f1, self.confusion.sum(axis=1), strict=True)
        ]
        return {**self.summary(), "per_class": per_class, "confusion_matrix": self.confusion.tolist(),
                "class_names": list(self.class_names)}


def compute_metrics(logits: np.ndarray, labels: np.ndarray, class_names) -> Metrics:
    """All metrics for (N, C) logits against (N,) integer labels."""
    num_classes = len(class_names)
    labels = labels.astype(np.int64)
    probabilities = softmax(logits.astype(np.float64))
    predicted = probabilities.argmax(axis=1)
    loss = float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)).mean())
    confusion = np.bincount(labels * num_classes + predicted,
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    true_positive = np.diag(confusion).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(true_positive / confusion.sum(axis=0))
        recall = np.nan_to_num(true_positive / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return Metrics(float((predicted == labels).mean()), loss, confusion, precision, recall, f1,
                   tuple(class_names))
