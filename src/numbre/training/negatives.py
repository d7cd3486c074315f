"""Synthetic "not a digit" images, made on the fly in torch for the extra training class.

A digit model only learns to say "this is no digit" from examples of things
that are not digits, and no real ones may be used (other datasets are kept for
measuring how well that works). So they are drawn here, the way preprocessing
would hand them to the network (longer side of the ink 20 px, centred by mass,
brightest pixel 1):

- scribbles: a tangle, a coil of loops or a back-and-forth hatch;
- polygons: triangles and five- or six-pointed stars;
- blobs: filled irregular areas with shading, like a photographed object;
- shapes: filled ellipses and rectangles, never thinner than 40% of their length,
  so none passes for a thick "1";
- textures: stripes, checks or speckle inside a filled area;
- outlines: the rim of three joined shapes, sometimes broken, which is what
  preprocessing keeps of a photographed object whose middle is darker than its
  edges (a shirt, a bag, a shoe); never a single oval, which would be a 0;
- bars: two to four parallel strokes, as "11" or a pair of trouser legs;
- letters: glyphs of the fonts on this machine, only those no digit resembles
  (no O, I, S, Z, B, G, b, g, q, ...);
- pairs: two digits of the batch squeezed side by side, what a user gets who
  writes "12" into a one-digit box.

Pieces of digits and overlaid digits are left out on purpose: half an 8 is a
0 and a 1 over a 7 is still a 7, so they would teach the model to reject real
digits. Randomness comes from torch's global generator only (fonts are rendered
once, without randomness), so training with negatives resumes exactly.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SIDE = 28  # MNIST's image size
DIGIT = 20  # MNIST's digit box: the longer side of the ink
CENTRE = 14.0  # MNIST's centre of mass, pixel index in both axes
KINDS = ("scribble", "polygon", "blob", "shape", "texture", "outline", "bars", "letter", "pair")
# Letters and signs that no handwritten digit resembles, in any common font.
LETTERS = "AEFHKMNPRUVWXYfhkmnrwx#@%*+="
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
                "/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts")
MAX_FONTS = 16


def add_negatives(images: torch.Tensor, labels: torch.Tensor, share: float,
                  label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Append round(share * B) negatives labelled `label` to a (B, 1, 28, 28) batch of digits."""
    count = round(share * len(images))
    if count < 1:
        return images, labels
    negatives = make_negatives(count, images.device, digits=images)
    extra = torch.full((count,), label, dtype=labels.dtype, device=labels.device)
    return torch.cat([images, negatives]), torch.cat([labels, extra])


def make_negatives(count: int, device: torch.device | str = "cpu", digits: torch.Tensor | None = None,
                   kinds: tuple[str, ...] = KINDS) -> torch.Tensor:
    """(count, 1, 28, 28) float32 non-digits in [0, 1], each of a random kind from `kinds`.

    `digits` (B, 1, 28, 28) supplies the halves of the "pair" kind; without it
    those images are scribbles instead.
    """
    device = torch.device(device)
    chosen = torch.randint(0, len(kinds), (count,), device=device)
    out = torch.zeros(count, 1, SIDE, SIDE, device=device)
    # One call per kind, never per image: each kind is drawn for all its images at once.
    for index, kind in enumerate(kinds):
        where = (chosen == index).nonzero().flatten()
        if len(where):
            out[where] = _GENERATORS[kind](len(where), device, digits)
    return place_like_mnist(out)


def place_like_mnist(images: torch.Tensor) -> torch.Tensor:
    """Scale each (N, 1, H, W) image so its ink box's longer side is 20 px and move its centre
    of mass to MNIST's; returns (N, 1, 28, 28) with the brightest pixel at 1.

    The batch form of what preprocessing does to a user's image, as one
    `grid_sample`; "ink" is every pixel at or above half the image's maximum.
    """
    count, _, height, width = images.shape
    device = images.device
    images = images / images.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    mask = images[:, 0] >= 0.5  # (N, H, W)
    rows, columns = mask.any(dim=2).float(), mask.any(dim=1).float()  # (N, H), (N, W)
    box_height = height - rows.argmax(1) - rows.flip(1).argmax(1)
    box_width = width - columns.argmax(1) - columns.flip(1).argmax(1)
    scale = DIGIT / torch.maximum(box_height, box_width).float()
    mass = images.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    centre_y = (images[:, 0].sum(2) * torch.arange(height, device=device)).sum(1) / mass
    centre_x = (images[:, 0].sum(1) * torch.arange(width, device=device)).sum(1) / mass
    # Output pixel p samples input pixel centre + (p - CENTRE) / scale; written in grid_sample's
    # [-1, 1] coordinates (pixel p of n sits at (2p + 1) / n - 1) that is one affine map per axis.
    zeros = torch.zeros(count, device=device)
    half_out = (2 * CENTRE + 1 - SIDE) / SIDE  # where the output centre pixel sits, in grid units
    theta = torch.stack([
        torch.stack([SIDE / (width * scale), zeros,
                     (2 * centre_x + 1) / width - 1 - half_out * SIDE / (width * scale)], dim=1),
        torch.stack([zeros, SIDE / (height * scale),
                     (2 * centre_y + 1) / height - 1 - half_out * SIDE / (height * scale)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [count, 1, SIDE, SIDE], align_corners=False)
    placed = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return placed / placed.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


# --- the kinds ------------------------------------------------------------------------------

def _uniform(shape: tuple[int, ...], low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(shape, device=device).uniform_(low, high)


def _scribble(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """What a hand makes that is not writing: a tangle, a coil of loops or a back-and-forth hatch.

    Each has at least four reversals or loops, so none passes for a 2, 7 or S.
    """
    points = 32
    t = torch.linspace(0, 1, points, device=device).expand(count, points)
    # Tangle: a random walk whose heading turns sharply and often.
    turns = torch.randn(count, points, device=device) * _uniform((count, 1), 1.0, 1.8, device)
    heading = _uniform((count, 1), 0, 2 * math.pi, device) + turns.cumsum(1)
    tangle = torch.stack([heading.cos(), heading.sin()], dim=2).cumsum(1)
    # Coil: 3-6 loops moving sideways, like "eeee" or a spring.
    loops = _uniform((count, 1), 3, 6, device) * 2 * math.pi * t
    drift = _uniform((count, 1), 0.3, 1.0, device)
    coil = torch.stack([drift * loops + loops.cos(), loops.sin()], dim=2)
    # Hatch: 5-9 strokes back and forth, each shifted a little, as when crossing something out.
    strokes = _uniform((count, 1), 5, 9, device)
    wave = 1 - 2 * (torch.remainder(t * strokes, 2) - 1).abs()  # triangle wave in [-1, 1]
    slant = _uniform((count, 1), -0.5, 0.5, device)
    hatch = torch.stack([wave + slant * t, t * _uniform((count, 1), 0.8, 1.5, device)], dim=2)
    kind = torch.randint(0, 3, (count, 1, 1), device=device)
    path = torch.where(kind == 0, tangle, torch.where(kind == 1, coil, hatch))
    angle = _uniform((count, 1), 0, 2 * math.pi, device)  # any orientation
    rotation = torch.stack([torch.cat([angle.cos(), -angle.sin()], 1),
                            torch.cat([angle.sin(), angle.cos()], 1)], dim=1)  # (N, 2, 2)
    path = path @ rotation
    down = torch.ones(count, points - 1, dtype=torch.bool, device=device)
    return _draw(_fit_points(path), down, _pen(count, device))


def _polygon(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """A closed outline: a triangle, or a star of 5-6 points. Never a four-sided loop, which a
    hand-drawn 0 can be."""
    corners = 12
    star = torch.rand(count, 1, device=device) < 0.5
    used = torch.where(star, torch.randint(5, 7, (count, 1), device=device) * 2,
                       torch.full((count, 1), 3, device=device))  # (N, 1) corners of each outline
    # Corners evenly around a circle with some jitter; a star alternates outer and inner radii.
    step = torch.arange(corners, device=device).expand(count, -1)
    angle = (step + _uniform((count, corners), -0.15, 0.15, device)) * (2 * math.pi / used)
    angle = angle + _uniform((count, 1), 0, 2 * math.pi, device)
    inner = _uniform((count, 1), 0.35, 0.55, device)
    radius = torch.where(star & (step % 2 == 1), inner, torch.ones_like(angle))
    radius = radius * _uniform((count, corners), 0.85, 1.0, device)
    corner = torch.stack([angle.cos(), angle.sin()], dim=2) * radius.unsqueeze(2)  # (N, 12, 2)
    # The outline returns to corner 0 after its last corner; later points stay there, undrawn.
    path = torch.cat([corner, corner[:, :1]], dim=1)
    path = torch.where(torch.arange(corners + 1, device=device).view(1, -1, 1) < used.unsqueeze(2),
                       path, corner[:, :1])
    down = step < used
    return _draw(_fit_points(path), down, _pen(count, device))


def _smooth_field(count: int, cells: int, device: torch.device) -> torch.Tensor:
    """(N, 1, 28, 28) smooth random values, zero mean and unit spread per image."""
    coarse = torch.randn(count, 1, cells, cells, device=device)
    field = F.interpolate(coarse, size=(SIDE, SIDE), mode="bicubic", align_corners=True)
    field = field - field.mean(dim=(1, 2, 3), keepdim=True)
    return field / field.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


def _blob(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """Filled irregular areas: a thresholded smooth field with soft edges and uneven shading."""
    level = _uniform((count, 1, 1, 1), -0.8, 0.6, device)
    area = torch.sigmoid((_smooth_field(count, 4, device) - level) * 6)
    shading = 0.75 + 0.25 * _smooth_field(count, 3, device).clamp(-1, 1)
    return area * shading


def _region(count: int, device: torch.device, shortest: float = 7.0, longest: float = 12.0,
            thinnest: float = 0.4, shift: float = 0.0, ellipses: float = 0.5) -> torch.Tensor:
    """A filled, rotated ellipse (a share `ellipses` of them) or rectangle: (N, 1, 28, 28) in
    {0, 1}, its breadth at least `thinnest` times its length, its centre up to `shift` pixels
    from the image's."""
    coordinates = torch.arange(SIDE, device=device, dtype=torch.float32) - (SIDE - 1) / 2
    y, x = torch.meshgrid(coordinates, coordinates, indexing="ij")
    y = y - _uniform((count, 1, 1), -shift, shift, device)
    x = x - _uniform((count, 1, 1), -shift, shift, device)
    angle = _uniform((count, 1, 1), 0, math.pi, device)
    along = x * angle.cos() + y * angle.sin()
    across = -x * angle.sin() + y * angle.cos()
    length = _uniform((count, 1, 1), shortest, longest, device)  # half-length in pixels
    breadth = length * _uniform((count, 1, 1), thinnest, 1.0, device)
    ellipse = (along / length) ** 2 + (across / breadth) ** 2 <= 1
    rectangle = (along.abs() <= length) & (across.abs() <= breadth)
    is_ellipse = torch.rand(count, 1, 1, device=device) < ellipses
    return torch.where(is_ellipse, ellipse, rectangle).float().unsqueeze(1)


def _shape(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    return _region(count, device) * _uniform((count, 1, 1, 1), 0.6, 1.0, device)


def _texture(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """A filled area patterned with stripes, checks or speckle."""
    coordinates = torch.arange(SIDE, device=device, dtype=torch.float32)
    y, x = torch.meshgrid(coordinates, coordinates, indexing="ij")
    angle = _uniform((count, 1, 1), 0, math.pi, device)
    period = _uniform((count, 1, 1), 2.5, 5.0, device)  # pixels: several stripes fit the region
    phase = _uniform((count, 1, 1), 0, 2 * math.pi, device)
    along = (x * angle.cos() + y * angle.sin()) * (2 * math.pi / period) + phase
    across = (-x * angle.sin() + y * angle.cos()) * (2 * math.pi / period)
    stripes = (along.sin() > 0).float()
    checks = ((along.sin() * across.sin()) > 0).float()
    density = _uniform((count, 1, 1), 0.3, 0.7, device)
    speckle = (torch.rand(count, SIDE, SIDE, device=device) < density).float()
    pattern = torch.randint(0, 3, (count, 1, 1), device=device)
    texture = torch.where(pattern == 0, stripes, torch.where(pattern == 1, checks, speckle))
    return _region(count, device, shortest=9.0) * texture.unsqueeze(1)


def _outline(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """The rim of three overlapping shapes, mostly rectangles (corners tell it from a 0),
    1-2 px wide, sometimes with a gap."""
    region = _region(count, device, 4.0, 10.0, 0.3, shift=5.0, ellipses=0.2)
    for _ in range(2):
        region = torch.maximum(region, _region(count, device, 3.0, 9.0, 0.3, shift=6.0, ellipses=0.2))
    inner = -F.max_pool2d(-region, 3, stride=1, padding=1)  # eroded by one pixel
    thick = torch.rand(count, 1, 1, 1, device=device) < 0.5
    inner = torch.where(thick, -F.max_pool2d(-inner, 3, stride=1, padding=1), inner)
    rim = region - inner
    kept = _smooth_field(count, 5, device) > _uniform((count, 1, 1, 1), -4.0, -1.5, device)
    return rim * kept


def _bars(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    """Two to four parallel strokes side by side, 4-8 px apart, all with the same slant."""
    bars = 4
    gap = _uniform((count, 1), 4.0, 8.0, device)
    slant = _uniform((count, 1), -0.4, 0.4, device) * 20
    offset = torch.arange(bars, device=device) * gap + _uniform((count, bars), -1.0, 1.0, device)
    top = torch.stack([offset + slant / 2, torch.zeros_like(offset)], dim=2)  # (N, bars, 2) as (x, y)
    bottom = torch.stack([offset - slant / 2, torch.full_like(offset, 20.0)], dim=2)
    path = torch.stack([top, bottom], dim=2).flatten(1, 2)  # top, bottom of bar 1, then bar 2, ...
    shown = torch.randint(2, bars + 1, (count, 1), device=device)
    # Segments alternate: a bar (drawn if shown), then a jump to the next bar (never drawn).
    segment = torch.arange(2 * bars - 1, device=device)
    down = (segment % 2 == 0) & (segment // 2 < shown)
    last = path.gather(1, (2 * shown - 1).view(count, 1, 1).expand(count, 1, 2))
    path = torch.where(torch.arange(2 * bars, device=device).view(1, -1, 1) < 2 * shown.unsqueeze(2),
                       path, last)  # hidden bars collapse onto the last shown point: no extent
    return _draw(_fit_points(path), down, _pen(count, device))


def _letter(count: int, device: torch.device, _digits=None) -> torch.Tensor:
    bank = letter_bank().to(device)
    if len(bank) == 0:  # a machine without any font: scribbles stand in
        return _scribble(count, device)
    return bank[torch.randint(0, len(bank), (count,), device=device)]


def _pair(count: int, device: torch.device, digits: torch.Tensor | None = None) -> torch.Tensor:
    """Two digits of the batch side by side, each squeezed to half the width."""
    if digits is None or len(digits) == 0:
        return _scribble(count, device)
    chosen = digits[torch.randint(0, len(digits), (2 * count,), device=device)].float()
    halves = F.interpolate(chosen, size=(SIDE, SIDE // 2), mode="bilinear", antialias=True,
                           align_corners=False)
    return torch.cat([halves[:count], halves[count:]], dim=3)


_GENERATORS = {"scribble": _scribble, "polygon": _polygon, "blob": _blob, "shape": _shape,
               "texture": _texture, "outline": _outline, "bars": _bars, "letter": _letter, "pair": _pair}


# --- strokes --------------------------------------------------------------------------------

def _pen(count: int, device: torch.device) -> torch.Tensor:
    """Pen widths in pixels of the 28x28 image: MNIST's strokes are about 2-3 px wide."""
    return _uniform((count,), 1.6, 3.2, device)


def _fit_points(path: torch.Tensor) -> torch.Tensor:
    """Scale and move (N, K, 2) points so their box's longer side is 20 px, centred in 28x28."""
    low, high = path.amin(1, keepdim=True), path.amax(1, keepdim=True)
    size = (high - low).amax(2, keepdim=True).clamp_min(1e-6)
    return (path - (low + high) / 2) * (DIGIT / size) + (SIDE - 1) / 2


def _draw(points: torch.Tensor, down: torch.Tensor, pen: torch.Tensor) -> torch.Tensor:
    """Anti-aliased polylines: points (N, K, 2) as (x, y) pixels, down (N, K-1) says which
    segments are drawn, pen (N,) widths -> (N, 1, 28, 28) ink."""
    start, end = points[:, :-1], points[:, 1:]  # (N, S, 2)
    coordinates = torch.arange(SIDE, device=points.device, dtype=torch.float32)
    y, x = torch.meshgrid(coordinates, coordinates, indexing="ij")
    x, y = x.reshape(1, 1, -1), y.reshape(1, 1, -1)  # (1, 1, 784) pixel centres
    run_x, run_y = (end - start).unbind(2)  # (N, S) each
    from_x, from_y = x - start[..., :1], y - start[..., 1:]  # (N, S, 784): pixel minus segment start
    length2 = (run_x**2 + run_y**2).clamp_min(1e-6).unsqueeze(2)
    # Where along each segment (0 to 1) the pixel's nearest point lies, then the squared distance.
    along = ((from_x * run_x.unsqueeze(2) + from_y * run_y.unsqueeze(2)) / length2).clamp(0, 1)
    distance2 = (from_x - along * run_x.unsqueeze(2)) ** 2 + (from_y - along * run_y.unsqueeze(2)) ** 2
    distance2 = distance2.masked_fill(~down.unsqueeze(2), 1e12)
    nearest = distance2.amin(1).sqrt()  # (N, 784)
    ink = (pen[:, None] / 2 + 0.5 - nearest).clamp(0, 1)
    return ink.view(-1, 1, SIDE, SIDE)


# --- letters --------------------------------------------------------------------------------

def font_files() -> list[Path]:
    """Up to MAX_FONTS TrueType/OpenType files found on this machine, spread over the sorted list."""
    found: list[Path] = []
    for folder in FONT_FOLDERS:
        root = Path(folder).expanduser()
        if root.is_dir():
            found += [path for path in root.rglob("*") if path.suffix.lower() in (".ttf", ".otf")]
    found = sorted(set(found))
    if len(found) > MAX_FONTS:
        found = [found[round(i * (len(found) - 1) / (MAX_FONTS - 1))] for i in range(MAX_FONTS)]
    return found


@functools.cache
def letter_bank() -> torch.Tensor:
    """(L, 1, 28, 28) every LETTERS glyph of every usable font, placed like an MNIST digit.

    Rendered once per process with Pillow at twice the size and averaged down,
    so thin fonts keep anti-aliased strokes. Pillow's own font stands in when
    the machine has none; a glyph a font lacks (drawn as its empty box) is skipped.
    """
    from PIL import Image, ImageDraw, ImageFont

    fonts = []
    for path in font_files():
        try:
            fonts.append(ImageFont.truetype(str(path), 40))
        except OSError:  # unreadable or not a font after all
            continue
    if not fonts:
        try:
            fonts.append(ImageFont.load_default(40))
        except (OSError, TypeError):  # an old Pillow without a scalable default font
            return torch.zeros(0, 1, SIDE, SIDE)

    def render(font, text: str) -> np.ndarray:
        canvas = Image.new("L", (2 * SIDE, 2 * SIDE))
        ImageDraw.Draw(canvas).text((SIDE, SIDE), text, fill=255, font=font, anchor="mm")
        return np.asarray(canvas, np.float32) / 255

    glyphs = []
    for font in fonts:
        missing = render(font, "\uffff")  # what this font draws for a character it does not have
        for letter in LETTERS:
            glyph = render(font, letter)
            if glyph.max() > 0.5 and not np.array_equal(glyph, missing):
                glyphs.append(glyph)
    if not glyphs:
        return torch.zeros(0, 1, SIDE, SIDE)
    big = torch.from_numpy(np.stack(glyphs)).unsqueeze(1)  # (L, 1, 56, 56)
    return place_like_mnist(F.avg_pool2d(big, 2))
