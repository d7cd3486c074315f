"""Batch augmentation: one random affine warp per image, done for the whole batch at once.

Small rotations, scalings, shears and shifts are the variations handwriting
has that MNIST's centring removes only partly. One `affine_grid` +
`grid_sample` call warps the whole batch, so there is no per-image Python work.
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
    """Warp each image of (B, 1, H, W) by its own random affine transform.

    Random numbers come from torch's global generator, whose state every
    checkpoint saves, so a resumed run draws the same warps.
    """
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
