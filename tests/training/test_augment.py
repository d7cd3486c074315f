"""Batch augmentation: each image gets its own transform, and the content survives it."""

from __future__ import annotations

import dataclasses

import torch

from numbre.training.augment import AffineRange, DrawnRange, random_affine, random_drawn, random_shift

# Every effect of random_drawn switched off; tests switch on one at a time.
STILL = DrawnRange(affine=AffineRange(degrees=0.0, scale=0.0, shear=0.0, shift=0.0), elastic=0.0,
                   thicker=0.0, thinner=0.0, blurred=0.0, gamma=0.0)


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


def strokes(batch: int) -> torch.Tensor:
    """A "7"-like figure of 3-pixel strokes, MNIST's usual width: a bar and a diagonal."""
    images = torch.zeros(batch, 1, 28, 28)
    images[:, 0, 4:7, 8:21] = 1.0
    for row in range(7, 24):
        column = 20 - (row - 7) * 10 // 17
        images[:, 0, row, column - 2:column + 1] = 1.0
    return images


def ink(images: torch.Tensor) -> torch.Tensor:
    return images.sum(dim=(1, 2, 3))


def test_drawn_with_every_effect_off_returns_the_images() -> None:
    torch.manual_seed(0)
    images = strokes(4)
    assert torch.allclose(random_drawn(images, STILL), images, atol=1e-5)


def test_thicker_strokes_gain_ink_and_thinner_strokes_lose_it() -> None:
    torch.manual_seed(0)
    images = strokes(256)
    thicker = random_drawn(images, dataclasses.replace(STILL, thicker=1.0))
    thinner = random_drawn(images, dataclasses.replace(STILL, thinner=1.0))
    before = ink(images)
    assert (ink(thicker) >= before - 1e-4).all() and ink(thicker).mean() > 1.5 * before.mean()
    assert (ink(thinner) <= before + 1e-4).all() and ink(thinner).mean() < 0.8 * before.mean()
    assert (thinner.amax(dim=(1, 2, 3)) == 1.0).all()  # thinned, never erased
    # The amount is drawn per image: the ink gained differs from image to image.
    assert ink(thicker).std() > 0.1 * (ink(thicker) - before).mean()


def test_elastic_wobble_moves_strokes_but_keeps_their_ink() -> None:
    torch.manual_seed(0)
    images = strokes(128)
    warped = random_drawn(images, dataclasses.replace(STILL, elastic=1.5))
    assert not torch.allclose(warped[0], warped[1])
    moved = (warped - images).abs().sum(dim=(1, 2, 3))
    assert (moved > 0).float().mean() > 0.95 and moved.mean() > 5
    ratio = ink(warped) / ink(images)
    assert ((ratio > 0.8) & (ratio < 1.25)).all() and (ratio - 1).abs().mean() < 0.05


def test_blur_spreads_ink_without_moving_it() -> None:
    torch.manual_seed(0)
    images = strokes(64)
    blurred = random_drawn(images, dataclasses.replace(STILL, blurred=1.0))
    footprint = (blurred > 0.01).sum(dim=(1, 2, 3))
    assert (footprint >= (images > 0).sum(dim=(1, 2, 3))).all()
    assert footprint.float().mean() > 1.3 * (images > 0).sum(dim=(1, 2, 3)).float().mean()
    near = torch.nn.functional.max_pool2d(images, 3, stride=1, padding=1)  # one pixel around the strokes
    assert (blurred * (near == 0)).max() < 1e-4  # a 3x3 blur spreads one pixel, no further


def test_drawn_defaults_keep_a_digit_recognisable_and_normalised() -> None:
    torch.manual_seed(0)
    images = strokes(256)
    drawn = random_drawn(images)
    assert drawn.shape == images.shape and drawn.min() >= 0.0
    assert torch.allclose(drawn.amax(dim=(1, 2, 3)), torch.ones(256))  # brightest pixel 1, as preprocessed
    assert len({round(value, 3) for value in ink(drawn).tolist()}) > 200  # one transform per image
    # Moved a little, not away: the centre of mass stays within a few pixels of the original's.
    rows = torch.arange(28.0).view(1, 1, 28, 1)
    centre = (drawn * rows).sum(dim=(1, 2, 3)) / ink(drawn)
    original = (images * rows).sum(dim=(1, 2, 3)) / ink(images)
    assert (centre - original).abs().max() < 5 and (centre - original).abs().mean() < 2
    ratio = ink(drawn) / ink(images)
    assert ratio.min() > 0.25 and ratio.max() < 3


def test_drawn_draws_only_from_torchs_generator() -> None:
    images = strokes(8)
    torch.manual_seed(3)
    first = random_drawn(images)
    torch.manual_seed(3)
    assert torch.equal(random_drawn(images), first)
