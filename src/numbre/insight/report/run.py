"""What a report is built from: a run folder written by `numbre train --out DIR`, or a model file.

A run folder holds the model and its per-epoch history; a model file alone has no history, so its
report has no training curves and says why instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from numbre.errors import NumbreError
from numbre.model.file import ModelFile

HISTORY = "history.json"
RUN_FILE_STEMS = ("model", "best", "last.ckpt")  # the model files a run folder holds


@dataclass(frozen=True)
class LoadedModel:
    network: nn.Module
    model_file: ModelFile
    label: str  # short name for legends: the run folder's name or the file's stem
    history: list[dict[str, Any]] | None  # None when built from a bare model file
    run_folder: Path | None


def load_history(path: Path) -> list[dict[str, Any]]:
    try:
        history = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NumbreError(f"{path} is not a readable training history ({error}); "
                          "rebuild the report from the model file alone") from None
    def is_number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def is_record(row: Any) -> bool:
        return isinstance(row, dict) and "epoch" in row and all(map(is_number, row.values()))

    if not isinstance(history, list) or not all(map(is_record, history)):
        raise NumbreError(f"{path} is not a training history (a list of per-epoch records of numbers); "
                          "rebuild the report from the model file alone")
    return history


def load_run(path: Path | str | None) -> LoadedModel:
    """Load a run folder (model.safetensors + history.json) or a single .safetensors model file; the
    shipped model when `path` is None, as every command that takes a model does."""
    from numbre.model.file import DEFAULT_MODEL
    from numbre.model.network import load_torch_model
    from numbre.training.loop import MODEL

    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.exists():
        raise NumbreError(f"no run folder or model file at {path}; give the folder `numbre train --out DIR` "
                          "wrote, or a .safetensors model file")
    if path.is_dir():
        if not (path / MODEL).is_file():
            raise NumbreError(f"{path} holds no {MODEL}: it is not a finished run folder "
                              "(an interrupted run continues with `numbre train --resume --out DIR`)")
        network, model_file = load_torch_model(path / MODEL)
        history = load_history(path / HISTORY) if (path / HISTORY).is_file() else None
        return LoadedModel(network, model_file, path.resolve().name, history, path)
    network, model_file = load_torch_model(path)
    label = path.stem
    if label in RUN_FILE_STEMS:  # "best" alone says little: name the run it came from
        label = path.resolve().parent.name + ("" if label == "model" else f" ({label})")
    return LoadedModel(network, model_file, label, None, None)


def unique_labels(labels: list[str]) -> list[str]:
    """Legends need distinct names: a repeated label gets " (2)", " (3)", ..."""
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return result
