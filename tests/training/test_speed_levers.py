"""The speed levers training relies on change how the arithmetic is laid out, never its result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from numbre.model.zoo import create_model, get_entry
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer

OWN_MODELS = ("numbre-fast", "numbre", "numbre-best", "numbre-robust")


@pytest.mark.parametrize("name", OWN_MODELS)
def test_channels_last_gives_the_same_logits_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name).double()
    last = create_model(name).double()
    last.load_state_dict(plain.state_dict())
    last = last.to(memory_format=torch.channels_last)
    images = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    labels = torch.arange(6)
    outputs = []
    for model in (plain, last):
        logits = model(images)
        F.cross_entropy(logits, labels).backward()
        outputs.append((logits.detach(), model[2].weight.grad.clone()))  # the first convolution
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-10)
    assert torch.allclose(outputs[0][1], outputs[1][1], atol=1e-10)


def test_the_trainer_keeps_convolution_weights_channels_last(tiny) -> None:
    trainer = Trainer(TrainConfig(model="numbre-fast", epochs=1, batch_size=32, threads=1), tiny, None,
                      progress=False)
    trainer.run()
    convolutions = [p for p in trainer.model.parameters() if p.ndim == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)


def test_the_fast_recipes_train_one_and_two_epochs() -> None:
    """numbre-fast reaches 99% in one epoch of batches of 256 and the default 99.5% in two
    (benchmarks/train_speed.py): more epochs bought tenths of a point for their whole time again."""
    fast, default = get_entry("numbre-fast").recipe, get_entry("numbre").recipe
    assert (fast.epochs, fast.batch_size, fast.lr, fast.bf16, fast.augment) == (1, 256, 0.2, True, False)
    assert (default.epochs, default.batch_size, default.augment_kind, default.label_smoothing) == (
        2, 128, "shift", 0.1)
