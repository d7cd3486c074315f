"""Batch augmentation: each image gets its own transform, and the content survives it."""

from __future__ import annotations

import torch

from numbre.augment import random_affine, random_shift


def dots(batch: int) -> torch.Tensor:
    images = torch.zeros(batch, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0
    return images


def test_shift_moves_each_image_by_whole_pixels_within_the_range() -> None:
    torch.manual_seed(0)
    shifted = random_shift(dots(400), pixels=2)
    assert shifted.shape == (400, 1, 28, 28)
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), torch.ones(400))  # exact: no blur, nothing lost
    where = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28, where % 28
    assert rows.min() == 12 and rows.max() == 16 and cols.min() == 12 and cols.max() == 16
    offsets = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert len(offsets) == 25  # every one of the 5 x 5 offsets is drawn


def test_shift_keeps_channels_together() -> None:
    torch.manual_seed(1)
    images = torch.rand(8, 3, 28, 28)
    images[:, 1] = images[:, 0] * 2
    shifted = random_shift(images)
    assert torch.allclose(shifted[:, 1], shifted[:, 0] * 2)


def test_affine_warps_differ_per_image_and_keep_the_ink_near_the_centre() -> None:
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 10:18, 10:18] = 1.0
    warped = random_affine(images)
    assert not torch.allclose(warped[0], warped[1])
    ink = warped.sum(dim=(1, 2, 3))
    assert ((ink > 64 * 0.7) & (ink < 64 * 1.3)).all()  # scale within +-10%: area within ~+-21%
