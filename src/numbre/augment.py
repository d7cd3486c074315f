"""Batch augmentation: one random transform per image, done for the whole batch at once.

Small rotations, scalings, shears and shifts are the variations handwriting
has that MNIST's centring removes only partly. One `affine_grid` +
`grid_sample` call warps the whole batch, and `random_shift` moves each image
by whole pixels with one indexing operation, so there is no per-image Python
work. Random numbers come from torch's global generator, whose state every
checkpoint saves, so a resumed run draws the same transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineRange:
    degrees: float = 10.0  # rotation, uniform in [-degrees, degrees]
    scale: float = 0.1  # zoom, uniform in [1 - scale, 1 + scale]
    shear: float = 0.1  # x-shear factor, uniform in [-shear, shear]
    shift: float = 2.0  # translation in pixels, uniform in [-shift, shift] per axis


def random_affine(images: torch.Tensor, spread: AffineRange = AffineRange()) -> torch.Tensor:
    """Warp each image of (B, 1, H, W) by its own random affine transform."""
    batch, _, height, width = images.shape
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(batch, device=device).uniform_(low, high)

    angle = uniform(-spread.degrees, spread.degrees) * (math.pi / 180)
    zoom = uniform(1 - spread.scale, 1 + spread.scale)
    shear = uniform(-spread.shear, spread.shear)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    shift_x = uniform(-spread.shift, spread.shift) * (2 / width)
    shift_y = uniform(-spread.shift, spread.shift) * (2 / height)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # The matrix maps output coordinates to input coordinates: (B, 2, 3).
    theta = torch.stack([
        torch.stack([cos, -sin + shear * cos, shift_x], dim=1),
        torch.stack([sin, cos + shear * sin, shift_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_shift(images: torch.Tensor, pixels: int = 2) -> torch.Tensor:
    """Move each image of (B, C, H, W) by its own whole-pixel offset in [-pixels, pixels].

    Exact (no interpolation blur) and about ten times cheaper than an affine warp:
    the default model's augmentation.
    """
    batch, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (pixels, pixels, pixels, pixels))
    dy = torch.randint(0, 2 * pixels + 1, (batch, 1, 1), device=device)
    dx = torch.randint(0, 2 * pixels + 1, (batch, 1, 1), device=device)
    rows = torch.arange(height, device=device).view(1, height, 1) + dy
    cols = torch.arange(width, device=device).view(1, 1, width) + dx
    samples = torch.arange(batch, device=device).view(batch, 1, 1)
    # (B, H, W, C) after advanced indexing on the batch and both spatial axes.
    return padded.permute(0, 2, 3, 1)[samples, rows, cols].permute(0, 3, 1, 2)
