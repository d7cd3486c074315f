"""Evaluating a model on a dataset's test set, with torch or with ONNX Runtime, and the text report."""

from __future__ import annotations

import numpy as np

from numbre.errors import NumbreError
from numbre.model.metrics import Metrics, compute_metrics
from numbre.model.rejection import NOT_A_DIGIT


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
    return model_class_names[:-1] if model_class_names[-1:] == [NOT_A_DIGIT] else model_class_names


def check_classes(names: list[str], path, dataset, *, advice: str = "evaluate it on its own data") -> None:
    """Refuse a model whose classes (less "not a digit") are not the dataset's, saying what to do."""
    if len(data_class_names(names)) != dataset.num_classes:
        raise NumbreError(f"{path} knows {len(names)} classes but "
                          f"{dataset.name} has {dataset.num_classes}; {advice}")


def evaluate_network(network, model_file, dataset) -> Metrics:
    """Metrics of a loaded torch model (`numbre.model.network.load_torch_model`) on `dataset`'s test
    set. A "not a digit" answer for a test image counts as an error, as in training."""
    from numbre.model.network import predict_logits, to_tensors

    check_classes(model_file.class_names, model_file.path, dataset)
    x_test, _ = to_tensors(dataset.x_test, dataset.y_test, next(network.parameters()).device)
    logits = predict_logits(network, x_test).numpy()
    return compute_metrics(logits, dataset.y_test, model_file.class_names)


def evaluate_onnx(model, dataset) -> Metrics:
    """Metrics of an ONNX model (`numbre.model.onnx_model.OnnxModel`) on `dataset`'s test set, without
    torch: what the inference install (and an int8 export) really answers."""
    check_classes(model.class_names, model.path, dataset)
    logits = model.logits(dataset.x_test.astype(np.float32) / 255)
    return compute_metrics(logits, dataset.y_test, model.class_names)
