"""Evaluation metrics from logits and labels, in NumPy so no front end needs torch for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities of (N, C) logits, stable for large logits."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


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


def format_report(metrics: Metrics) -> str:
    """A text report: headline figures, per-class table and the confusion matrix."""
    names = metrics.class_names
    width = max(7, *(len(name) for name in names))
    lines = [f"accuracy {metrics.accuracy:.2%}  loss {metrics.loss:.4f}  "
             f"({metrics.errors} errors in {metrics.count:,} images)", "",
             f"{'class':<{width}}  precision  recall     f1  support"]
    for index, name in enumerate(names):
        lines.append(f"{name:<{width}}  {metrics.precision[index]:9.4f}  {metrics.recall[index]:6.4f}"
                     f"  {metrics.f1[index]:.4f}  {metrics.confusion[index].sum():7d}")
    cell = max(5, len(str(metrics.confusion.max())) + 1)
    short = [name[:cell - 1] for name in names]
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * width + "".join(f"{name:>{cell}}" for name in short)]
    for index, name in enumerate(names):
        lines.append(f"{name:<{width}}" + "".join(f"{count:>{cell}d}" for count in metrics.confusion[index]))
    return "\n".join(lines)


def data_class_names(model_class_names: list[str]) -> list[str]:
    """The classes of the data a model was trained on: its own, without a trailing "not a digit"
    class (which is an answer, never a label)."""
    from numbre.reject import NOT_A_DIGIT

    return model_class_names[:-1] if model_class_names[-1:] == [NOT_A_DIGIT] else model_class_names


def check_classes(names: list[str], path, dataset, *, advice: str = "evaluate it on its own data") -> None:
    """Refuse a model whose classes (less "not a digit") are not the dataset's, saying what to do."""
    from numbre.errors import NumbreError

    if len(data_class_names(names)) != dataset.num_classes:
        raise NumbreError(f"{path} knows {len(names)} classes but "
                          f"{dataset.name} has {dataset.num_classes}; {advice}")


def evaluate_network(network, model_file, dataset) -> Metrics:
    """Metrics of a loaded torch model (`numbre.checkpoint.load_torch_model`) on `dataset`'s test
    set. A "not a digit" answer for a test image counts as an error, as in training."""
    from numbre.train import predict_logits, to_tensors

    check_classes(model_file.class_names, model_file.path, dataset)
    x_test, _ = to_tensors(dataset.x_test, dataset.y_test, next(network.parameters()).device)
    logits = predict_logits(network, x_test).numpy()
    return compute_metrics(logits, dataset.y_test, model_file.class_names)


def evaluate_onnx(model, dataset) -> Metrics:
    """Metrics of an ONNX model (`numbre.onnx_model.OnnxModel`) on `dataset`'s test set, without
    torch: what the inference install (and an int8 export) really answers."""
    check_classes(model.class_names, model.path, dataset)
    logits = model.logits(dataset.x_test.astype(np.float32) / 255)
    return compute_metrics(logits, dataset.y_test, model.class_names)
