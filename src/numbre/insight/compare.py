"""Models side by side: a leaderboard of accuracy, size, cost and speed, measured the same way.

Each model is trained with its own recipe (or loaded from an earlier run), then
measured on one footing: test accuracy through ONNX Runtime (what the inference
install answers), parameters and multiply-accumulates per image, training time
from the run's record, single-image latency (the median of LATENCY_RUNS calls on
one thread after a warm-up) and the model file's size. Timings mean little
without the machine, so every leaderboard carries its hardware.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre import __version__
from numbre.errors import NumbreError, TrainingError

CLASSIC_MODELS = ("seed-cnn-a", "numbre-mlp", "mlp-3-hidden", "seed-cnn-b")
DEFAULT_MODELS = (*CLASSIC_MODELS, "numbre-fast", "numbre")
LATENCY_RUNS = 200
LATENCY_WARMUP = 20  # first calls allocate buffers and fill caches
PNG_KEY = "numbre-compare"  # the chart's PNG text chunk: the rows it plots, as JSON

Log = Callable[[str], None]


@dataclass(frozen=True)
class Entry:
    """One leaderboard row."""

    model: str  # as asked: a registry name or a model file path
    architecture: str
    path: str  # the model file measured
    source: str  # "trained" now or "loaded" from an earlier run
    accuracy: float  # on the dataset's test set, through ONNX Runtime
    errors: int
    test_images: int
    parameters: int
    macs: int  # multiply-accumulates for one 28x28 image
    train_seconds: float | None  # from the model file's record; None when it has none
    latency_ms: float  # median time of one single-image call, one thread
    file_bytes: int
    epochs: int | None  # as trained (the recipe's, or --epochs)
    train_images: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare(models: Sequence[str], dataset, runs: Path, *, epochs: int | None = None,
            max_train: int | None = None, progress: bool = False, log: Log | None = None,
            command: str = "") -> list[Entry]:
    """Train or load every model in `models`, measure each, and return the rows best first."""
    say = log or (lambda _message: None)
    if epochs is not None and epochs < 1:
        raise TrainingError(f"--epochs must be at least 1, got {epochs}")
    if max_train is not None and max_train < 1:
        raise TrainingError(f"--max-train must be at least 1, got {max_train}")
    entries = []
    for model in dict.fromkeys(models):  # each once, in the order asked
        path, source = obtain(model, dataset, runs, epochs=epochs, max_train=max_train,
                              progress=progress, log=say, command=command)
        say(f"{model}: measuring {path}")
        entries.append(measure(model, path, source, dataset))
    return ranked(entries)


def ranked(entries: Sequence[Entry]) -> list[Entry]:
    """Best first: the higher test accuracy, and at equal accuracy the faster model."""
    return sorted(entries, key=lambda entry: (-entry.accuracy, entry.latency_ms))


def obtain(model: str, dataset, runs: Path, *, epochs: int | None, max_train: int | None,
           progress: bool, log: Log, command: str = "") -> tuple[Path, str]:
    """The model file for `model` and whether it was "trained" now or "loaded".

    A registry name is loaded from runs/<name>/model.safetensors when that
    exists, else trained there with its recipe (an interrupted run continues);
    any other argument must be a model file or run folder.
    """
    from numbre.model.zoo import list_models
    from numbre.training.loop import LAST, MODEL

    if model not in list_models():
        path = Path(model)
        if path.is_dir():
            path = path / MODEL
        if not path.is_file():
            raise NumbreError(f"{model!r} is neither a model file nor a registered model; "
                              f"choose from {', '.join(list_models())} (see `numbre models`)")
        return path, "loaded"
    out = runs / model
    if (out / MODEL).is_file():
        _note_differences(out / MODEL, dataset, epochs, max_train, log)
        return out / MODEL, "loaded"
    config = training_config(model, epochs, max_train)
    resume = (out / LAST).is_file()
    log(f"{model}: {'continuing' if resume else 'training'} ({config.describe()}) in {out}")
    from numbre.training.loop import Trainer

    trainer = Trainer(config, dataset, out, command=command or f"numbre compare {model}", progress=progress)
    try:
        trainer.run(resume=resume)
    except TrainingError as error:
        if not resume:
            raise
        raise TrainingError(f"{out} holds an unfinished run that cannot continue ({error}); "
                            "delete that folder to train afresh") from None
    return out / MODEL, "trained"


def training_config(model: str, epochs: int | None, max_train: int | None):
    """The model's recipe with the quick-look overrides applied."""
    from numbre.model.zoo import get_entry
    from numbre.training.config import TrainConfig

    recipe = dataclasses.asdict(get_entry(model).recipe)
    if epochs is not None:
        recipe["epochs"] = epochs
    return TrainConfig(**recipe, model=model, max_train=max_train)


def _note_differences(path: Path, dataset, epochs: int | None, max_train: int | None, log: Log) -> None:
    """Say so when a loaded run was made differently from what this call asks."""
    from numbre.model.file import load_model_file

    meta = load_model_file(path).meta
    recipe = meta.get("recipe", {})
    asked = {"epochs": epochs, "max_train": max_train}
    differs = [f"{key.replace('_', '-')} {recipe.get(key)}" for key, value in asked.items()
               if value is not None and recipe.get(key) != value]
    if differs:
        log(f"{path}: loaded; it was trained with {', '.join(differs)}, not as this call asks: "
            "delete its folder to train it again")
    if meta.get("data", {}).get("checksum") not in (None, dataset.checksum):
        log(f"{path}: trained on other data ({meta['data'].get('name')}); measured on {dataset.name}")


def measure(model: str, path: Path, source: str, dataset, *, runs: int = LATENCY_RUNS) -> Entry:
    """Accuracy, size, cost and latency of one model file, through its ONNX export."""
    from numbre.insight.evaluate import evaluate_onnx
    from numbre.model.export import export_onnx
    from numbre.model.network import load_torch_model
    from numbre.model.onnx_model import OnnxModel
    from numbre.model.zoo import count_macs, count_parameters

    network, model_file = load_torch_model(path)
    with tempfile.TemporaryDirectory(prefix="numbre-compare-") as folder:
        onnx_model = OnnxModel.load(export_onnx(path, Path(folder) / "model.onnx"), threads=1)
    metrics = evaluate_onnx(onnx_model, dataset)
    latency = single_image_latency(onnx_model, dataset.x_test[0].astype(np.float32) / 255, runs=runs)
    meta = model_file.meta
    return Entry(model, model_file.architecture, str(path), source, metrics.accuracy, metrics.errors,
                 metrics.count, count_parameters(network), count_macs(network), meta.get("train_seconds"),
                 latency, path.stat().st_size, meta.get("recipe", {}).get("epochs"),
                 meta.get("data", {}).get("train_images"))


def single_image_latency(model, image28: np.ndarray, runs: int = LATENCY_RUNS,
                         warmup: int = LATENCY_WARMUP) -> float:
    """Median milliseconds of one (1, 28, 28) call, as an app reading one drawing makes it."""
    batch = np.ascontiguousarray(image28, dtype=np.float32)[None]
    for _ in range(warmup):
        model.logits(batch)
    times = np.empty(runs)
    for index in range(runs):
        started = time.perf_counter_ns()
        model.logits(batch)
        times[index] = time.perf_counter_ns() - started
    return float(np.median(times) / 1e6)


# --- the machine -------------------------------------------------------------------------------

def hardware() -> dict[str, Any]:
    """The CPU, the cores this process may use, and the versions of what computes."""
    import onnxruntime
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "numbre": __version__}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware_line(info: dict[str, Any]) -> str:
    return (f"hardware: {info['cpu']}, {info['cores']} cores ({info['machine']}, {info['system']}); "
            f"Python {info['python']}, torch {info['torch']}, onnxruntime {info['onnxruntime']}")


# --- output ------------------------------------------------------------------------------------

COLUMNS = ("#", "model", "test acc", "parameters", "MACs/image", "train s", "latency ms", "file KB", "run")


def format_leaderboard(entries: Sequence[Entry]) -> str:
    """The rows as an aligned text table, best first."""
    rows = [COLUMNS]
    for rank, entry in enumerate(entries, start=1):
        train = f"{entry.train_seconds:.1f}" if entry.train_seconds is not None else "-"
        rows.append((str(rank), entry.model, f"{entry.accuracy:.2%}", f"{entry.parameters:,}",
                     f"{entry.macs:,}", train, f"{entry.latency_ms:.3f}", f"{entry.file_bytes / 1000:,.1f}",
                     entry.source))
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    left = {1, 8}  # names and the run column read left to right; numbers line up on the right
    lines = ["  ".join(cell.ljust(width) if column in left else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def leaderboard_json(entries: Sequence[Entry], dataset, info: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable leaderboard: rows best first, with the data and the hardware."""
    return {"hardware": info,
            "data": {"name": dataset.name, "checksum": dataset.checksum, "test_images": len(dataset.y_test)},
            "latency": {"statistic": "median", "runs": LATENCY_RUNS, "threads": 1, "batch": 1},
            "models": [{"rank": rank, **entry.to_dict()} for rank, entry in enumerate(entries, start=1)]}


def save_leaderboard(entries: Sequence[Entry], dataset, info: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Write `leaderboard_json` to folder/leaderboard.json (atomically) and return it."""
    from numbre.atomic import atomic_write

    record = leaderboard_json(entries, dataset, info)
    atomic_write(folder / "leaderboard.json", (json.dumps(record, indent=2) + "\n").encode())
    return record


def compact(value: float) -> str:
    """Tick labels that stay short on a log axis: 0.05, 3, 40k, 1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def chart_figure(entries: Sequence[Entry], title: str = ""):
    """Two scatter plots, test accuracy against latency and against parameters (log scales), each
    point named; the axes are labelled by the Entry field on their x axis."""
    from numbre.insight.plots import pyplot

    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for axis, field, label in ((axes[0], "latency_ms", "single-image latency (ms, log scale)"),
                               (axes[1], "parameters", "parameters (log scale)")):
        xs = [getattr(entry, field) for entry in entries]
        ys = [100 * entry.accuracy for entry in entries]
        axis.scatter(xs, ys, s=60, c=[f"C{index}" for index in range(len(entries))], zorder=2)
        for entry, x, y in zip(entries, xs, ys, strict=True):
            axis.annotate(entry.model, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
        axis.set_xscale("log")
        axis.margins(x=0.25, y=0.12)  # room for the names beside the points
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: compact(value)))
        # Between the powers of ten, only 2 and 5 are named: more labels would overlap.
        axis.xaxis.set_minor_formatter(FuncFormatter(
            lambda value, _position: compact(value) if f"{value:.0e}"[0] in "25" else ""))
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(True, which="both", alpha=0.3)
        axis.set_label(field)
    figure.suptitle(title or "numbre compare", fontsize=9)
    return figure


def save_chart(entries: Sequence[Entry], path: Path, title: str = "") -> Path:
    """Write `chart_figure` to a PNG whose text chunk PNG_KEY holds the plotted rows as JSON."""
    from numbre.insight.plots import save_png_with_text

    rows = [entry.to_dict() for entry in entries]
    return save_png_with_text(chart_figure(entries, title), path, PNG_KEY, rows)
