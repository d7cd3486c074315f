"""Synthetic non-digits: placed like MNIST digits, unlike them in shape, learnable as their own class."""

from __future__ import annotations

import numpy as np
import torch

from numbre.model.network import predict_logits
from numbre.model.rejection import NOT_A_DIGIT, ink_statistics
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer
from numbre.training.negatives import KINDS, LETTERS, letter_bank, make_negatives, place_like_mnist


def by_kind(kind: str, count: int = 64) -> torch.Tensor:
    torch.manual_seed(0)
    digits = torch.zeros(8, 1, 28, 28)
    digits[:, 0, 4:24, 11:15] = 1.0  # "1"s for the pairs, 4 px wide: 2 px once squeezed
    return make_negatives(count, digits=digits, kinds=(kind,))


def test_negatives_are_placed_the_way_preprocessing_places_a_digit() -> None:
    torch.manual_seed(0)
    images = make_negatives(200)
    assert images.shape == (200, 1, 28, 28) and images.min() >= 0
    assert torch.allclose(images.amax(dim=(1, 2, 3)), torch.ones(200))
    mask = images[:, 0] >= 0.5
    rows, columns = mask.any(2).float(), mask.any(1).float()
    height = 28 - rows.argmax(1) - rows.flip(1).argmax(1)
    width = 28 - columns.argmax(1) - columns.flip(1).argmax(1)
    longer = torch.maximum(height, width).float()
    assert ((longer >= 18) & (longer <= 22)).float().mean() > 0.95  # MNIST's 20 px box
    mass = images[:, 0].sum(dim=(1, 2))
    centre_row = (images[:, 0].sum(2) * torch.arange(28.0)).sum(1) / mass
    centre_column = (images[:, 0].sum(1) * torch.arange(28.0)).sum(1) / mass
    assert (centre_row - 14).abs().max() < 1.0 and (centre_column - 14).abs().max() < 1.0


def test_place_like_mnist_scales_a_small_square_to_twenty_pixels_at_the_centre() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 2:12, 2:12] = 0.5  # 10 px, off-centre, dim
    placed = place_like_mnist(image)[0, 0]
    rows = torch.nonzero(placed >= 0.5)
    assert placed.max() == 1.0
    assert 19 <= rows[:, 0].max() - rows[:, 0].min() + 1 <= 21
    assert 19 <= rows[:, 1].max() - rows[:, 1].min() + 1 <= 21
    assert abs(rows[:, 0].float().mean().item() - 14) < 1 and abs(rows[:, 1].float().mean().item() - 14) < 1


def test_filled_kinds_are_areas_and_stroke_kinds_have_mnist_stroke_widths() -> None:
    """Filled shapes are what an ink gate catches; drawn ones must be learnt from their shape,
    so they are given a digit's stroke width (MNIST's median is 2 px by this measure, its 99th
    percentile 3.8 px)."""
    for kind, least in (("shape", 4.5), ("blob", 3.0)):  # blobs are shaded: parts fall below the ink level
        _, stroke = ink_statistics(by_kind(kind)[:, 0].numpy())
        assert np.median(stroke) > least, kind
    for kind in ("scribble", "polygon", "outline", "bars", "letter", "pair"):
        _, stroke = ink_statistics(by_kind(kind)[:, 0].numpy())
        assert 1.0 < np.median(stroke) < 3.5, kind


def test_no_letter_looks_like_a_digit_and_the_bank_is_rendered() -> None:
    assert not set(LETTERS) & set("0123456789OoQDIilLjJ|SsZzBbGgqTt?&$")
    bank = letter_bank()
    assert len(bank) >= len(LETTERS)  # at least one font, every letter
    assert torch.allclose(bank.amax(dim=(1, 2, 3)), torch.ones(len(bank)))


def test_negatives_come_from_torchs_generator_alone() -> None:
    state = np.random.get_state()
    torch.manual_seed(5)
    first = make_negatives(len(KINDS) * 4)
    torch.manual_seed(5)
    assert torch.equal(make_negatives(len(KINDS) * 4), first)
    assert np.random.get_state()[1].tolist() == state[1].tolist()


def test_a_model_learns_negatives_as_their_own_class_and_keeps_the_digits(tiny) -> None:
    config = TrainConfig(model="numbre-fast", epochs=3, batch_size=32, optimizer="sgd", lr=0.05,
                         schedule="onecycle", warmup_start=0.0, drop_last=True, negatives=0.25, threads=1)
    trainer = Trainer(config, tiny, None, progress=False)
    result = trainer.run()
    assert result.test.class_names[-1] == NOT_A_DIGIT and len(result.test.class_names) == 11
    assert result.test.accuracy >= 0.9  # "not a digit" answers count as errors here
    torch.manual_seed(123)
    unseen = make_negatives(300)
    said = predict_logits(trainer.model, unseen).argmax(1)
    assert (said == 10).float().mean() > 0.8
