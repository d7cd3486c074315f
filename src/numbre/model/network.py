"""Torch models from model files, and the logits of a whole image set: what training, evaluation, export
and the insight tools share. Needs torch (the `train` extra); reading digits never imports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from numbre.errors import ModelFileError
from numbre.model.file import ModelFile, load_model_file
from numbre.model.zoo import create_model, list_models
from numbre.text import clip_text

EVAL_BATCH = 500  # fits in L2 cache on small CPUs; larger batches were slower here


def state_to_numpy(module_or_state: nn.Module | dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {name: tensor.detach().cpu().contiguous().numpy().copy() for name, tensor in state.items()}


def build_model(model_file: ModelFile) -> nn.Module:
    """Instantiate the file's architecture and load its weights; a shape mismatch is a clear error.

    The architecture's name is the file's text, so messages repeat at most `clip_text` of it.
    """
    from numbre.errors import NumbreError

    if model_file.architecture not in list_models():
        raise ModelFileError(f"{model_file.path}: unknown model {clip_text(model_file.architecture)!r}; "
                             f"this numbre knows {', '.join(list_models())} (see `numbre models`): "
                             "upgrade numbre or use another model")
    try:
        model = create_model(model_file.architecture, num_classes=len(model_file.class_names))
    except NumbreError as error:
        raise ModelFileError(f"{model_file.path}: {error}") from None
    state = {name: torch.from_numpy(array.copy()) for name, array in model_file.tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = " ".join(str(error).splitlines()[:3])
        raise ModelFileError(f"{model_file.path} does not fit architecture "
                             f"{model_file.architecture!r}: {clip_text(first, 400)}") from None
    return model.eval()


def load_torch_model(path: Path | str | None = None) -> tuple[nn.Module, ModelFile]:
    model_file = load_model_file(path)
    return build_model(model_file), model_file


def first_non_finite(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """The name of the first weight or optimizer tensor holding NaN or infinity; None if all are finite."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"weight {name}"
    for index, values in (optimizer.state_dict()["state"].items() if optimizer is not None else ()):
        for key, value in values.items():
            if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                return f"optimizer state {key} of parameter {index}"
    return None


def to_tensors(images, labels, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]; labels -> int64."""
    x = torch.tensor(images, device=device).unsqueeze(1).float().div_(255.0)
    return x.contiguous(), torch.tensor(labels.astype("int64"), device=device)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits for every image of x, in large batches, in eval mode."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(x[start:start + EVAL_BATCH]) for start in range(0, len(x), EVAL_BATCH)])
    model.train(was_training)
    return logits
