"""Moving torch models and training state in and out of safetensors files.

Checkpoints hold the model, the optimizer's tensors, torch's RNG state and the
loop position (epoch, step, running sums, history) as JSON metadata, so
`--resume` continues exactly where a run stopped, and nothing is unpickled.

A checkpoint is written atomically (`numbre.atomic`): a run killed while
writing one, or stopped by a full disk, leaves the previous checkpoint whole
(tests/training/test_kill_resume.py kills `numbre train` at such moments). Weights that
have become NaN or infinite are never written over a good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numbre.errors import ModelFileError, TrainingError
from numbre.model.file import ModelFile, load_model_file, save_model_file
from numbre.model.network import first_non_finite, state_to_numpy


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed before they finished; return them.

    Only a process that owns the folder (one training run per run folder) may
    call this: another process's write in progress would be deleted too.
    """
    removed = []
    for partial in Path(folder).glob(".*.part"):
        with contextlib.suppress(OSError):
            partial.unlink()
            removed.append(partial)
    return removed


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    position: dict[str, Any], rng_state: torch.Tensor | None = None) -> None:
    """Write model + optimizer + RNG + loop position atomically.

    `rng_state` is torch's RNG state at the start of the step the loop will run
    next (an interrupted step may already have drawn its random numbers).
    Non-finite weights are refused, so the checkpoint already at `path` stays
    the last good one.
    """
    if (bad := first_non_finite(model, optimizer)) is not None:
        raise TrainingError(f"not writing {path}: the {bad} holds NaN or infinite values (training "
                            "diverged); lower --lr. The previous checkpoint, if any, is kept")
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


def read_checkpoint(path: Path) -> ModelFile:
    """The training checkpoint at `path`, read and verified once for both its settings and its state."""
    model_file = load_model_file(path)
    if model_file.meta.get("kind") != "checkpoint":
        raise ModelFileError(f"{path} is a model file, not a training checkpoint")
    return model_file


def checkpoint_config(checkpoint: ModelFile) -> dict[str, Any]:
    """The training settings (a TrainConfig as a dict) the checkpoint was made with."""
    position = checkpoint.meta.get("position")
    settings = position.get("config") if isinstance(position, dict) else None
    if not isinstance(settings, dict) or not isinstance(settings.get("model"), str):
        raise ModelFileError(f"{checkpoint.path} is a checkpoint without its training settings")
    return dict(settings)


def load_checkpoint(checkpoint: Path | ModelFile, model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from a checkpoint (its path, or as `read_checkpoint` gave it);
    return the saved loop position."""
    model_file = checkpoint if isinstance(checkpoint, ModelFile) else read_checkpoint(checkpoint)
    path = model_file.path
    try:
        return _restore(model_file, model, optimizer)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:  # a well-formed file
        # with the wrong contents: torch and the optimizer raise these for missing or odd state
        raise ModelFileError(f"{path} is not a usable checkpoint ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:200] if str(error) else ''})") from None


def _restore(model_file: ModelFile, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    path, tensors = model_file.path, model_file.tensors
    model_state = {name[6:]: torch.from_numpy(array.copy())
                   for name, array in tensors.items() if name.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as error:
        first = " ".join(line.strip() for line in str(error).splitlines()[:3])
        raise ModelFileError(f"{path} does not fit the model being trained: {first}") from None
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
