"""Moving torch models and training state in and out of safetensors files.

Checkpoints hold the model, the optimizer's tensors, torch's RNG state and the
loop position (epoch, step, running sums, history) as JSON metadata, so
`--resume` continues exactly where a run stopped, and nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from numbre.errors import ModelFileError
from numbre.modelfile import ModelFile, load_model_file, save_model_file
from numbre.models import create_model


def state_to_numpy(module_or_state: nn.Module | dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {name: tensor.detach().cpu().contiguous().numpy().copy() for name, tensor in state.items()}


def build_model(model_file: ModelFile) -> nn.Module:
    """Instantiate the file's architecture and load its weights; a shape mismatch is a clear error."""
    from numbre.errors import NumbreError

    try:
        model = create_model(model_file.architecture, num_classes=len(model_file.class_names))
    except NumbreError as error:
        raise ModelFileError(f"{model_file.path}: {error}") from None
    state = {name: torch.from_numpy(array.copy()) for name, array in model_file.tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise ModelFileError(f"{model_file.path} does not fit architecture "
                             f"{model_file.architecture!r}: {' '.join(first)}") from None
    return model.eval()


def load_torch_model(path: Path | str | None = None) -> tuple[nn.Module, ModelFile]:
    model_file = load_model_file(path)
    return build_model(model_file), model_file


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    position: dict[str, Any], rng_state: torch.Tensor | None = None) -> None:
    """Write model + optimizer + RNG + loop position atomically.

    `rng_state` is torch's RNG state at the start of the step the loop will run
    next (an interrupted step may already have drawn its random numbers).
    """
    tensors = {f"model.{name}": array for name, array in state_to_numpy(model).items()}
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().reshape(value.shape).numpy().copy()
    rng_state = torch.get_rng_state() if rng_state is None else rng_state
    tensors["rng.torch"] = rng_state.numpy().copy()
    meta = {"kind": "checkpoint", "architecture": position["config"]["model"],
            "class_names": position["class_names"], "position": position,
            "param_groups": optimizer_state["param_groups"]}
    save_model_file(path, tensors, meta)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from `path`; return the saved loop position."""
    model_file = load_model_file(path)
    if model_file.meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path} is a model file, not a training checkpoint")
    tensors = model_file.tensors
    model_state = {name[6:]: torch.from_numpy(array.copy())
                   for name, array in tensors.items() if name.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{path} does not fit the model being trained: {error}") from None
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, array in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            value = torch.from_numpy(array.copy())
            parameter = parameters[int(index)] if int(index) < len(parameters) else None
            if key == "step":
                value = value.reshape(())  # safetensors stores a 0-d count as shape (1,)
            elif parameter is not None and value.shape == parameter.shape:
                # Same memory layout as the parameter (channels_last): fused kernels assume it.
                value = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
            state.setdefault(int(index), {})[key] = value
    groups = [{key: tuple(value) if key == "betas" else value for key, value in group.items()}
              for group in model_file.meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(torch.from_numpy(tensors["rng.torch"].copy()))
    return json.loads(json.dumps(model_file.meta["position"]))
