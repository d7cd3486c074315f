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

from numbre.errors import NumbreError
from numbre.model.recipe import Recipe


@dataclass(frozen=True)
class ModelEntry:
    name: str
    origin: str  # which tutorial model it is, for the classic ones: readers know them by that
    recipe: Recipe
    factory: Callable[..., nn.Module]
    summary: str

    @property
    def mnist_outputs(self) -> int:
        """Outputs when trained by its own recipe on MNIST: ten digits, plus "not a digit" when the
        recipe trains on negatives. `numbre models` and `numbre summary` show this network."""
        return 11 if self.recipe.negatives else 10


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


class KerasDropout(nn.Dropout):
    """Dropout as TensorFlow computes it: keep where a uniform draw is >= rate, scale by 1/(1-rate).

    The same distribution as nn.Dropout, whose bernoulli_ mask costs about twice a uniform draw
    and a compare on the CPU: 10-30% of seed-cnn-b's training step. The draw comes from torch's
    global generator, so checkpoints still resume exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep


# --- The classic models, exactly as the articles built them in Keras ------------------------
# Keras' Adam adds epsilon 1e-7 to sqrt(v) before bias correction (keras_adam); inputs are
# scaled to [0, 1]. Max-pooling comes before the ReLU: both are monotone, so the output is the
# same as the articles' order, on a quarter of the values.


@register_model(
    "seed-cnn-a", "Keras tutorial CNN with a pygame drawing window",
    Recipe(epochs=5, batch_size=32, val_split=0.25, adam_eps=1e-7, keras_adam=True),
    "Conv32 3x3, pool, Conv64 3x3, pool, dropout 0.25, dense 10",
)
def seed_cnn_a(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.MaxPool2d(2), nn.ReLU(),    # (32, 13, 13)
        nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.ReLU(),   # (64, 5, 5)
        nn.Flatten(), KerasDropout(0.25),
        nn.Linear(64 * 5 * 5, num_classes),
    ))


@register_model(
    "numbre-mlp", "NUMBRE article MLP, dense 25-256-300",
    Recipe(epochs=20, batch_size=128, adam_eps=1e-7, keras_adam=True),
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
    "mlp-3-hidden", "Keras tutorial MLP, dense 128-256-512",
    Recipe(epochs=10, batch_size=32, adam_eps=1e-7, keras_adam=True),
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
    "seed-cnn-b", "Keras tutorial CNN, 30 5x5 filters",
    Recipe(epochs=10, batch_size=200, adam_eps=1e-7, keras_adam=True),
    "Conv30 5x5, pool, dropout 0.2, dense 128, 10",
)
def seed_cnn_b(num_classes: int = 10) -> nn.Module:
    return keras_init(nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.MaxPool2d(2), nn.ReLU(),    # (30, 12, 12)
        KerasDropout(0.2), nn.Flatten(),
        nn.Linear(30 * 12 * 12, 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    ))


# --- numbre's own models ---------------------------------------------------------------------
# A pixel-unshuffle stem folds each 2x2 block into four channels (28x28 -> 4x14x14), so the
# first convolution runs on a quarter of the positions; blocks are conv, max-pool, batch-norm,
# ReLU. Trained with SGD + Nesterov, a warm-up from zero then linear decay, and bfloat16
# autocast on CPUs that support it.

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Normalize(nn.Module):
    """Maps [0, 1] pixels to MNIST's zero mean and unit variance inside the model,
    so every caller feeds the same [0, 1] images to every model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MNIST_MEAN) / MNIST_STD


def _block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return [*layers, nn.BatchNorm2d(c_out), nn.ReLU()]


def unshuffle_net(widths: tuple[int, ...], pools: tuple[bool, ...], num_classes: int) -> nn.Module:
    """PixelUnshuffle stem, one conv block per width, a linear head on the flattened map."""
    layers: list[nn.Module] = [Normalize(), nn.PixelUnshuffle(2)]
    c_in, side = 4, 14
    for width, pool in zip(widths, pools, strict=True):
        layers += _block(c_in, width, pool)
        c_in, side = width, side // 2 if pool else side
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * side * side, num_classes))


FAST_SGD = dict(optimizer="sgd", lr=0.1, schedule="onecycle", warmup_start=0.0,
                weight_decay=5e-4, drop_last=True, bf16=True)


# numbre-fast: one epoch reaches 99% (99.08% over 5 seeds; a second epoch added 0.2 point for twice
# the time), and batches of 256 at twice the rate took 0.71 of the time per image of batches of 128
# (whole epochs alternated on 2 cores; benchmarks/train_speed.py --levers numbre-fast for the step).
@register_model(
    "numbre-fast", "numbre's fastest",
    Recipe(epochs=1, batch_size=256, warmup_fraction=0.15, **(FAST_SGD | {"lr": 0.2})),
    "unshuffle 2, Conv16, Conv32 pool, Conv64 pool, dense 10",
)
def numbre_fast(num_classes: int = 10) -> nn.Module:
    return unshuffle_net((16, 32, 64), (False, True, True), num_classes)


# numbre: two epochs reach 99.51% over 5 seeds (five gave 99.64% in 2.5 times the time); batches of
# 256 reached 99.47% against 99.57% for the same seed, and saved no time on one thread.
@register_model(
    "numbre", "numbre's default",
    Recipe(epochs=2, batch_size=128, warmup_fraction=0.15, label_smoothing=0.1, augment=True,
           augment_kind="shift", **FAST_SGD),
    "unshuffle 2, Conv32, Conv64 pool, Conv64, Conv128 pool, dense 10",
)
def numbre_default(num_classes: int = 10) -> nn.Module:
    return unshuffle_net((32, 64, 64, 128), (False, True, False, True), num_classes)


# numbre-best: the "drawn" augmentation (elastic wobble, stroke width, blur) needs the longer schedule.
# Over 5 seeds, 15 epochs of it read 99.71% like 15 of "affine", and 30 epochs of "affine" no
# better (docs/benchmarks.md); 30 epochs of "drawn" are this recipe.
@register_model(
    "numbre-best", "numbre's most accurate",
    Recipe(epochs=30, batch_size=128, warmup_fraction=0.1, label_smoothing=0.1, augment=True,
           augment_kind="drawn", clean_last_epoch=True, **FAST_SGD),
    "unshuffle 2, Conv48, Conv96 pool, Conv96, Conv192 pool, dense 10",
)
def numbre_best(num_classes: int = 10) -> nn.Module:
    return unshuffle_net((48, 96, 96, 192), (False, True, False, True), num_classes)


@register_model(
    "numbre-robust", "numbre's shipped model",
    Recipe(epochs=30, batch_size=128, warmup_fraction=0.1, label_smoothing=0.1, val_split=1 / 12,
           augment=True, augment_kind="drawn", negatives=0.1, **FAST_SGD),
    "unshuffle 2, Conv24, Conv48 pool, Conv96 pool, dense 10 + not a digit",
)
def numbre_robust(num_classes: int = 10) -> nn.Module:
    """The shipped model: trained on drawn-style augmentation with a "not a digit" class, and
    small enough (4.2M MACs) for 0.1 ms per image in ONNX Runtime on one CPU core."""
    return unshuffle_net((24, 48, 96), (False, True, True), num_classes)
