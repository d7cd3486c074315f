"""Model files for tests that need one without training: an untrained network of any architecture."""

from __future__ import annotations

from pathlib import Path

import torch

from numbre.data.known import DIGITS
from numbre.model.file import INPUT_SPEC, save_model_file
from numbre.model.network import state_to_numpy
from numbre.model.zoo import create_model


def untrained_model_file(name: str, folder: Path) -> Path:
    """`name`'s network with seed-0 initial weights, saved as a model file of the ten digits."""
    torch.manual_seed(0)
    model = create_model(name)
    path = folder / f"{name}.safetensors"
    save_model_file(path, state_to_numpy(model), {"architecture": name, "class_names": DIGITS,
                                                  "input": INPUT_SPEC, "test": {"accuracy": 0.5}})
    return path
