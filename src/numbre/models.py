"""The model zoo: small factory functions behind `@register_model`.

`create_model(name)` builds one, `list_models()` names them all. Each entry
carries its default training recipe. The four classic models reproduce the
Keras tutorials numbre grew out of layer for layer (parameter counts equal
Keras' `summary()`), with Keras' glorot-uniform initialisation; numbre's own
models are built for speed and accuracy on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from numbre.config import Recipe
from numbre.errors import NumbreError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    origin: str
    recipe: Recipe
    factory: Callable[..., nn.Module]
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, origin: str, recipe: Recipe, summary: str):
    """Add the decorated factory to the registry under `name`."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(name, origin, recipe, factory, summary)
        return factory

    return add


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NumbreError(
            f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)} (see `numbre models`)"
        ) from None


def create_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build a fresh, initialised model; its output is logits (softmax is in the loss)."""
    return get_entry(name).factory(num_classes=num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates for one 1x28x28 image, counted on convolutions and linear layers."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += output[0].numel() * kernel

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return total


def keras_init(model: nn.Module) -> nn.Module:
    """Initialise like Keras: glorot-uniform kernels, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


# --- The classic models, exactly as the articles built them in Keras ------------------------
# Keras' Adam uses epsilon 1e-7; inputs are scaled to [0, 1].


@register_model(
    "seed-cnn-a", "Keras tutorial CNN A",
    Recipe(epochs=5, batch_size=32, val_split=0.25, adam_eps=1e-7),
    "Conv32 3x3, pool, Conv64 3x3, pool, dropout 0.25, dense 10",
)
def seed_cnn_a(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),    # (32, 13, 13)
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),   # (64, 5, 5)
        nn.Flatten(), nn.Dropout(0.25),
        nn.Linear(64 * 5 * 5, num_classes),
    ))


@register_model(
    "numbre-mlp", "NUMBRE article MLP",
    Recipe(epochs=20, batch_size=128, adam_eps=1e-7),
    "Dense 25, 256, 300, 10",
)
def numbre_mlp(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 25), nn.ReLU(),
        nn.Linear(25, 256), nn.ReLU(),
        nn.Linear(256, 300), nn.ReLU(),
        nn.Linear(300, num_classes),
    ))


@register_model(
    "mlp-3-hidden", "Keras tutorial MLP",
    Recipe(epochs=10, batch_size=32, adam_eps=1e-7),
    "Dense 128, 256, 512, 10",
)
def mlp_3_hidden(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.ReLU(),
        nn.Linear(128, 256), nn.ReLU(),
        nn.Linear(256, 512), nn.ReLU(),
        nn.Linear(512, num_classes),
    ))


@register_model(
    "seed-cnn-b", "Keras tutorial CNN B",
    Recipe(epochs=10, batch_size=200, adam_eps=1e-7),
    "Conv30 5x5, pool, dropout 0.2, dense 128, 10",
)
def seed_cnn_b(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2),    # (30, 12, 12)
        nn.Dropout(0.2), nn.Flatten(),
        nn.Linear(30 * 12 * 12, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    ))
