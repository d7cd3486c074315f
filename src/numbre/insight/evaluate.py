"""Evaluating a model on a dataset's test set, with torch or with ONNX Runtime, and the text report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from numbre.data import Dataset
from numbre.data.known import MNIST, SYSTEM_FOLDERS, identify_checksum
from numbre.errors import DataError, NumbreError
from numbre.model.metrics import Metrics, compute_metrics
from numbre.model.rejection import NOT_A_DIGIT
from numbre.text import clip_text, escape_text

SHOWN_NAME = 40  # characters of a class name the table shows


def format_report(metrics: Metrics) -> str:
    """A text report: headline figures, per-class table and the confusion matrix.

    Class names come from the model file, written by anyone: control characters
    (an ANSI escape would recolour or rewrite the terminal) are shown as backslash
    escapes and long names are cut, so the table stays a table.
    """
    names = [clip_text(escape_text(name), SHOWN_NAME) for name in metrics.class_names]
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


def recorded_data(meta: dict[str, Any]) -> dict[str, Any] | None:
    """What a model file says about its training data (name, checksum, where it was read), or None
    for a file that does not say (made outside `numbre train`)."""
    data = meta.get("data")
    if isinstance(data, dict) and isinstance(data.get("checksum"), str):
        return data
    return None


def _shown(text: object, limit: int = SHOWN_NAME) -> str:
    """Text from a model file (written by anyone) as it may appear in a one-line message."""
    return clip_text(escape_text(str(text)), limit)


def _recorded_source(data: dict[str, Any]) -> Path | None:
    source = data.get("source")
    return Path(source) if isinstance(source, str) and source and Path(source).exists() else None


def _where_to_find(data: dict[str, Any]) -> str:
    """What to pass as --data for a model's own dataset, as a person would type it."""
    source = data.get("source")
    if isinstance(source, str) and Path(source).is_absolute():  # `numbre train --data` records it so
        return f"--data {_shown(source, limit=1000)}"  # a path, cut only when absurdly long
    spec = identify_checksum(data["checksum"])
    if spec is MNIST:
        return "no --data at all (numbre reads MNIST from its cache, fetching it when missing)"
    folders = SYSTEM_FOLDERS.get(spec.name, ()) if spec is not None else ()
    if folders:
        return f"--data {folders[0]}"
    return f"--data FOLDER (the four IDX files of {_shown(data.get('name', 'its data'))})"


def check_model_data(meta: dict[str, Any], path: Any, dataset: Dataset, *, given: str | None = None,
                     other_data: bool = False) -> None:
    """Refuse to score a model on data that is not what it learned: other classes always (the
    figures would pair its answers with the wrong names), other images (a checksum that is not the
    recorded one) unless `other_data` says that is the point."""
    names = list(meta["class_names"])
    check_classes(names, path, dataset)
    recorded = recorded_data(meta)
    trained_on = _shown(recorded.get("name", "its data")) if recorded else "its data"
    own = data_class_names(names)
    if own != list(dataset.class_names):
        shown = ", ".join(map(_shown, own[:4])) + (", ..." if len(own) > 4 else "")
        theirs = (", ".join(map(_shown, dataset.class_names[:4]))
                  + (", ..." if dataset.num_classes > 4 else ""))
        where = _where_to_find(recorded) if recorded else "--data with the data it was trained on"
        raise NumbreError(f"{path} was trained on {trained_on}, whose classes are {shown}; {dataset.name} "
                          f"has the classes {theirs}: evaluate it on its own data, {where}")
    if recorded is None or recorded["checksum"] == dataset.checksum or other_data:
        return
    origin = f"--data {given}" if given is not None else dataset.source
    recorded_checksum = _shown(recorded["checksum"][:12])
    raise NumbreError(f"{path} was trained on {trained_on} (checksum {recorded_checksum}), not on "
                      f"{dataset.name} from {origin} (checksum {dataset.checksum[:12]}); pass its own "
                      f"data, {_where_to_find(recorded)}, or add --other-data to use data it was not "
                      "trained on")


def dataset_for_model(meta: dict[str, Any], path: Any, data: str | None, *, quiet: bool = False,
                      other_data: bool = False) -> Dataset:
    """The dataset to score a model on: `data` (--data) when given, checked against what the model
    file records; else the model's own training data, found by its recorded checksum (MNIST from the
    cache, a known dataset from the cache or a system folder, or the folder it was read from); MNIST
    for a model file that records no data. A model whose data cannot be found is refused with the
    --data to pass, never scored on MNIST under its own class names."""
    from numbre.data.dataset import load_cached, load_dataset

    if data is not None:
        dataset = load_dataset(data, quiet=quiet)
        check_model_data(meta, path, dataset, given=data, other_data=other_data)
        return dataset
    recorded = recorded_data(meta)
    if recorded is None:
        dataset = load_dataset(None, quiet=quiet)
        check_model_data(meta, path, dataset)
        return dataset
    checksum = recorded["checksum"]
    spec = identify_checksum(checksum)
    if spec is MNIST:  # from the cache, fetched into it if missing, as with no model to go by
        dataset = load_cached(MNIST, quiet)
        check_model_data(meta, path, dataset)
        return dataset
    loaders = []
    if spec is not None:
        loaders.append(lambda: load_cached(spec, quiet, fetch_missing=False))
        loaders += [lambda folder=folder: load_dataset(folder, quiet=quiet)
                    for folder in SYSTEM_FOLDERS.get(spec.name, ()) if folder.is_dir()]
    if (source := _recorded_source(recorded)) is not None:
        loaders.append(lambda: load_dataset(source, quiet=quiet))
    for load in loaders:
        try:
            dataset = load()
        except DataError:
            continue  # not there, or not readable: try the next place
        if dataset.checksum == checksum:
            check_model_data(meta, path, dataset)
            return dataset
    raise DataError(f"{path} was trained on {_shown(recorded.get('name', 'data'))} (checksum "
                    f"{_shown(checksum[:12])}), "
                    f"which numbre cannot find here; pass it with {_where_to_find(recorded)}")


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
