"""to_mnist: the same digit gives the same 28x28 however it was drawn, placed, sized or photographed."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from golden.regenerate import FOLDER, draw, golden_inputs, photographed
from PIL import Image, ImageDraw
from scipy import ndimage

from numbre.insight.plots import save_stages_png
from numbre.reading.preprocess import (
    DIGIT,
    GRAIN_AVERAGED,
    INK,
    MNIST_CENTRE,
    SIDE,
    Prepared,
    center_ink,
    components,
    ink_map,
    prepare_batch,
    to_ink,
    to_mnist,
)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation after a slight blur, at the best of the whole-pixel shifts by at most one.

    Placement rounds the centre of mass to a whole pixel, so the same shape can
    land a pixel over, which plain correlation punishes like a different digit.
    """
    a, b = ndimage.gaussian_filter(a, 1.0), ndimage.gaussian_filter(b, 1.0)
    return max(correlation(np.roll(a, (dy, dx), axis=(0, 1)), b) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    rows, columns = np.mgrid[: image.shape[0], : image.shape[1]]
    return float((rows * image).sum() / total), float((columns * image).sum() / total)


def ink_extent(image: np.ndarray, level: float = 0.1) -> tuple[int, int]:
    """(height, width) of the box holding the pixels above `level`."""
    rows = np.flatnonzero((image > level).any(axis=1))
    columns = np.flatnonzero((image > level).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(columns[-1] - columns[0] + 1)


def seven(size: int = 280, pen: float = 12, box=(0.25, 0.15, 0.75, 0.85), **options) -> Image.Image:
    return draw("7", size, pen, box, **options)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return to_mnist(seven()).image


def test_result_is_mnist_shaped(reference) -> None:
    assert reference.shape == (SIDE, SIDE) and reference.dtype == np.float32
    assert reference.min() >= 0 and reference.max() == pytest.approx(1.0)
    assert reference[0].max() == 0 and reference[:, 0].max() == 0  # a margin, as in MNIST


def test_dark_on_light_and_light_on_dark_give_the_same_digit(reference) -> None:
    inverted = to_mnist(seven(ink=255, paper=0)).image
    assert np.abs(inverted - reference).max() < 0.05


@pytest.mark.parametrize("ink", [0, 255], ids=["black ink", "white ink"])
def test_transparent_canvas_exports_read_like_opaque_ones(reference, ink: int) -> None:
    alpha = np.asarray(seven(ink=255, paper=0))
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = alpha
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, "PNG")
    assert np.abs(to_mnist(buffer.getvalue()).image - reference).max() < 0.05


@pytest.mark.parametrize("size", [10, 28, 100, 280, 1000, 2000])
def test_any_image_size_gives_a_centred_20_px_digit(reference, size: int) -> None:
    prepared = to_mnist(seven(size=size, pen=max(1.5, 12 * size / 280)))
    assert not prepared.empty
    row, column = centre_of_mass(prepared.image)
    assert abs(row - MNIST_CENTRE[0]) <= 1 and abs(column - MNIST_CENTRE[1]) <= 1
    assert max(ink_extent(prepared.image)) in (DIGIT - 1, DIGIT, DIGIT + 1)
    assert similarity(prepared.image, reference) > (0.6 if size == 10 else 0.9)


def test_thin_pen_and_thick_marker_give_similar_strokes(reference) -> None:
    thin = to_mnist(seven(pen=3)).image
    thick = to_mnist(seven(pen=40, box=(0.2, 0.08, 0.8, 0.92))).image  # the same 7, drawn fat
    assert similarity(thin, reference) > 0.9
    assert similarity(thick, reference) > 0.9
    # Ink coverage, a proxy for stroke width, within 35% of each other.
    assert 0.65 < thin.sum() / thick.sum() < 1.35


def test_off_centre_digit_is_centred_by_mass_and_scaled_to_20_px(reference) -> None:
    prepared = to_mnist(seven(box=(0.02, 0.55, 0.3, 0.98), pen=6))
    row, column = centre_of_mass(prepared.image)
    assert abs(row - MNIST_CENTRE[0]) <= 1 and abs(column - MNIST_CENTRE[1]) <= 1
    assert max(ink_extent(prepared.image)) in (DIGIT - 1, DIGIT, DIGIT + 1)
    x0, y0, x1, y1 = prepared.ink_box
    assert x0 < 0.08 * 280 and y0 > 0.5 * 280 and x1 < 0.35 * 280 and y1 <= 280


def test_a_thin_one_is_not_stretched() -> None:
    one = Image.new("L", (280, 280), 255)
    from PIL import ImageDraw

    ImageDraw.Draw(one).line([(140, 40), (135, 240)], fill=0, width=10)
    image = to_mnist(one).image
    height, width = ink_extent(image)
    assert height in (DIGIT - 1, DIGIT, DIGIT + 1) and width <= 6


def test_specks_and_paper_grain_are_removed(reference) -> None:
    rng = np.random.default_rng(1)
    page = np.asarray(seven(), np.float64)
    page = page - rng.uniform(0, 25, page.shape)  # paper grain
    for row, column in rng.integers(10, 270, size=(12, 2)):
        page[row:row + 3, column:column + 3] = 0  # specks, 3 px across, as dark as the ink
    prepared = to_mnist(np.clip(page, 0, 255).astype(np.uint8), explain=True)
    assert similarity(prepared.image, reference) > 0.97
    denoised = dict(prepared.stages)["denoised"]
    assert denoised[prepared_outside(denoised)].max() == 0  # nothing left away from the digit


def prepared_outside(ink: np.ndarray) -> np.ndarray:
    """Pixels outside the 7's drawing box (plus a margin), in the coordinates of `ink`."""
    height, width = ink.shape
    rows, columns = np.mgrid[:height, :width]
    outside_columns = (columns < 0.18 * width) | (columns > 0.82 * width)
    return outside_columns | (rows < 0.08 * height) | (rows > 0.92 * height)


def test_photographed_paper_reads_like_a_clean_drawing() -> None:
    clean = to_mnist(draw("0", 400, 7, (0.35, 0.25, 0.75, 0.8))).image
    photo = to_mnist(photographed(draw("0", 400, 7, (0.35, 0.25, 0.75, 0.8)))).image
    assert similarity(photo, clean) > 0.9


@pytest.mark.parametrize("case", ["white", "black", "grain", "one speck", "faint smudge", "1x1", "2x2"])
def test_blank_and_nearly_blank_images_are_empty(case: str) -> None:
    rng = np.random.default_rng(0)
    images = {
        "white": np.full((280, 280), 255, np.uint8),
        "black": np.zeros((100, 100), np.uint8),
        "grain": np.clip(200 + rng.normal(0, 8, (300, 300)), 0, 255).astype(np.uint8),
        "one speck": np.pad(np.zeros((3, 3), np.uint8), 140, constant_values=255),
        "faint smudge": 230 - 6 * np.exp(-np.add.outer(*(2 * [np.linspace(-3, 3, 200) ** 2]))),
        "1x1": np.zeros((1, 1), np.uint8),
        "2x2": np.array([[0, 255], [255, 0]], np.uint8),
    }
    prepared = to_mnist(images[case])
    assert prepared.empty and prepared.ink_box is None
    found = ink_map(images[case])
    assert found.empty and found.box is None and found.ink.max() == 0
    assert prepared.image.shape == (SIDE, SIDE) and prepared.image.max() == 0


def test_a_very_long_strip_is_handled_quickly() -> None:
    strip = np.full((50, 50_000), 255, np.uint8)
    strip[10:40, 25_000:25_020] = 0
    started = time.process_time()  # CPU time: a busy machine stretches the wall clock, not the work done
    # Over 50:1 a digit is thinner than a pixel of the overview: refused, not answered "empty".
    from numbre.errors import ImageError

    with pytest.raises(ImageError, match="over 50 times as long as it is wide"):
        to_mnist(strip)
    assert time.process_time() - started < 1.0
    assert isinstance(to_mnist(strip[:, 24_000:26_000]), Prepared)  # 40:1 is read


def test_a_small_digit_in_a_large_photo_is_read_at_full_resolution() -> None:
    page = np.full((2400, 3200), 235, np.uint8)
    page[1000:1120, 1500:1600] = np.asarray(draw("4", 120, 4, (0.05, 0.05, 0.95, 0.95), paper=235))[:, 10:110]
    prepared = to_mnist(page)
    assert not prepared.empty
    x0, y0, x1, y1 = prepared.ink_box
    assert 1495 <= x0 <= 1520 and 1000 <= y0 <= 1015 and 1575 <= x1 <= 1605 and 1105 <= y1 <= 1125
    assert similarity(prepared.image, to_mnist(draw("4", 280, 10, (0.1, 0.05, 0.9, 0.95))).image) > 0.85


def test_mnist_sized_input_passes_nearly_unchanged() -> None:
    small = np.asarray(draw("0", 28, 2, (0.3, 0.15, 0.7, 0.85), ink=255, paper=0), np.float32) / 255
    result = to_mnist(small).image
    assert similarity(result, small) > 0.85  # the 18 px tall input becomes 20 px tall


def test_explain_records_every_stage_and_draws_them(tmp_path) -> None:
    prepared = to_mnist(seven(pen=3), explain=True)
    names = [name for name, _ in prepared.stages]
    assert names[:2] == ["grey", "oriented"] and names[-1] == "28x28"
    assert {"ink", "denoised", "cropped", "stroke", "20px"} <= set(names)
    assert np.array_equal(prepared.stages[-1][1], prepared.image)
    assert to_mnist(seven()).stages == ()
    path = tmp_path / "stages.png"
    save_stages_png(prepared, path)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width > picture.height


def test_prepare_batch_and_the_stage_functions() -> None:
    batch = prepare_batch([seven(), np.full((50, 50), 255, np.uint8), seven(ink=255, paper=0)])
    assert batch.shape == (3, SIDE, SIDE) and batch.dtype == np.float32
    assert batch[1].max() == 0 and np.abs(batch[0] - batch[2]).max() < 0.05
    assert prepare_batch([]).shape == (0, SIDE, SIDE)
    ink = to_ink(np.asarray(seven(), np.float32) / 255)
    assert ink.min() == 0 and ink.max() == pytest.approx(1.0)
    assert ink[5, 5] == 0 and center_ink(ink).shape == (SIDE, SIDE)
    assert center_ink(np.zeros((30, 30))).max() == 0


@pytest.mark.parametrize("name", sorted(golden_inputs()))
def test_golden_outputs(name: str) -> None:
    """Regenerate with `python tests/reading/golden/regenerate.py` after an intended change."""
    expected = np.load(Path(FOLDER) / f"{name}.npy")
    actual = to_mnist(golden_inputs()[name]).image
    assert np.abs(actual - expected).max() < 2e-3, f"{name}: max diff {np.abs(actual - expected).max():.4f}"


@pytest.mark.mnist
def test_real_mnist_digits_pass_through_nearly_unchanged(mnist) -> None:
    digits = mnist.x_test[:300].astype(np.float32) / 255
    prepared = prepare_batch(digits)
    correlations = [correlation(a, b) for a, b in zip(prepared, digits, strict=True)]
    assert np.median(correlations) > 0.97 and np.mean(correlations) > 0.95


def turned_page_photo(seed: int = 0) -> np.ndarray:
    """A faint 4 in a photo turned by about 6 degrees, the corner it turned away from filled with the
    top left corner's shade (where the light is brightest), and a shadow along the bottom edge."""
    picture = photographed(draw("4", 120, 6, (0.3, 0.2, 0.7, 0.8)), seed).astype(np.float64)
    rows, columns = np.mgrid[:120, :120]
    fill = picture[0, 0]
    picture[columns < 0.1 * rows - 3] = fill
    picture[117:, 20:100] = 120
    return np.clip(picture, 0, 255).astype(np.uint8)


def test_a_turned_page_s_table_and_edge_are_not_ink() -> None:
    """The noise is measured over the whole picture, not its frame (where the table is), and strips
    along the edge are dropped: the faint 4 is read, and its box holds the 4 alone."""
    prepared = to_mnist(turned_page_photo())
    assert not prepared.empty
    x0, y0, x1, y1 = prepared.ink_box
    assert 34 <= x0 <= 44 and 20 <= y0 <= 28 and 75 <= x1 <= 86 and 90 <= y1 <= 100, prepared.ink_box
    clean = to_mnist(draw("4", 120, 6, (0.3, 0.2, 0.7, 0.8))).image
    assert correlation(prepared.image, clean) > 0.8


@pytest.mark.parametrize("table", [90, 120])
def test_dark_ink_on_a_turned_photo_with_the_table_in_its_corners_is_read_dark(table: int) -> None:
    """A photo of the page turned by 6 degrees, its four corners the table's shade, darker than the
    paper: the table is half the frame, and measured against the frame's median the paper looked
    like ink (light on dark) and the digit came out blank. The picture's own median is the paper's."""
    page = Image.fromarray(photographed(seven(size=160, pen=8)))
    turned = np.asarray(page.rotate(6, resample=Image.BILINEAR, fillcolor=table))
    prepared = to_mnist(turned)
    assert not prepared.empty
    assert correlation(prepared.image, to_mnist(seven(size=160, pen=8)).image) > 0.7


def test_a_light_garment_filling_a_dark_picture_to_its_edges_stays_the_ink() -> None:
    """The other way round from the turned photo: a light T-shirt on black (Fashion-MNIST's kind)
    covers most of the picture and reaches the top and bottom of its frame. The frame's median is
    the black, at one extreme of the picture: it is the background, not the picture's median (the
    shirt), which read the black as ink (a fifth of a pixel's worth per black pixel, where the shirt
    kept a hundredth) and Fashion-MNIST as digits more often."""
    picture = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(picture).polygon([(8, 0), (20, 0), (27, 6), (24, 10), (21, 8), (21, 27), (7, 27), (7, 8),
                                     (4, 10), (1, 6)], fill=180)
    grey = np.asarray(picture, np.float32) / 255 * np.linspace(1.0, 1.1, 28, dtype=np.float32)[:, None]
    ink = to_ink(grey)
    black, shirt = grey < 0.05, grey > 0.3
    assert ink[black].mean() < 0.05 < ink[shirt].mean()


@pytest.mark.parametrize("seed", range(5))
def test_a_fine_stroke_on_grainy_paper_stays_whole(seed: int) -> None:
    """Pixel grain as strong as a seventh of the stroke's contrast: blurred first (a picture read at
    full size), the ring is one piece of ink; not blurred (a copy shrunk enough to have averaged its
    grain), the same pixels fall apart into specks."""
    rows, columns = np.mgrid[0:120, 0:90]
    radius = np.hypot((rows - 60) / 45, (columns - 45) / 30)
    ring = np.clip(1 - np.abs(radius - 1) * 45 / 2.0, 0, 1)  # an oval stroke about 4 px wide
    grain = np.random.default_rng(seed).normal(0, 0.04, ring.shape)
    grey = (0.8 - 0.3 * ring + grain).astype(np.float32)
    assert components(to_ink(grey) >= INK).count == 1
    assert components(to_ink(grey, shrunk_by=GRAIN_AVERAGED) >= INK).count >= 5


def test_the_grain_blur_is_a_binomial_with_the_edge_repeated() -> None:
    from numbre.reading.preprocess import _smooth

    grey = np.random.default_rng(0).random((9, 13), dtype=np.float32)
    weights = np.array([0.25, 0.5, 0.25])
    expected = ndimage.correlate1d(ndimage.correlate1d(grey.astype(np.float64), weights, 0, mode="nearest"),
                                   weights, 1, mode="nearest")
    blurred = _smooth(grey)
    assert blurred.dtype == np.float32 and blurred.shape == grey.shape
    assert np.abs(blurred - expected).max() < 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_a_lightly_pressed_stretch_of_a_stroke_stays_with_it(seed: int) -> None:
    """A small picture (labelled pixel by pixel) of a fine oval whose right-hand stretch is pressed at
    half the contrast: below INK once levelled, but joined to the dark stretch, it is kept (FAINT),
    not dropped as grain; the dark stretch is kept as it was."""
    rows, columns = np.mgrid[0:64, 0:48]
    radius = np.hypot((rows - 32) / 24, (columns - 24) / 16)
    ring = np.clip(1 - np.abs(radius - 1) * 24 / 1.5, 0, 1)  # an oval stroke about 3 px wide
    pressed = np.where(columns > 32, 0.5, 1.0)
    grain = np.random.default_rng(seed).normal(0, 0.02, ring.shape)
    ink = to_ink((0.8 - 0.4 * ring * pressed + grain).astype(np.float32))
    light, dark = ring[:, 34:] > 0.5, ring[:, :14] > 0.5
    assert (ink[:, 34:][light] > 0.1).mean() > 0.95  # 4-12% before the hysteresis
    assert 0.25 < ink[:, 34:][light].mean() < INK < ink[:, :14][dark].mean()


@pytest.mark.parametrize("pen", [4, 6, 8])
def test_a_fine_pen_keeps_its_lightly_pressed_bar_when_thickened(pen: int) -> None:
    """A crossed 7 in a fine pen (thickened to MNIST's stroke) whose crossbar is pressed lightly
    comes out like the same 7 with a dark crossbar (correlation 0.53-0.71 when the thickening
    took only ink above INK)."""
    def crossed_seven(bar: int) -> np.ndarray:
        picture = Image.new("L", (280, 280), 255)
        pen_on = ImageDraw.Draw(picture)
        pen_on.line([(70, 50), (200, 50), (120, 240)], fill=0, width=pen)
        pen_on.line([(110, 140), (200, 140)], fill=bar, width=pen)
        return to_mnist(picture).image

    assert correlation(crossed_seven(150), crossed_seven(0)) > 0.97


@pytest.mark.parametrize("seed", range(8))
def test_a_bold_marker_s_loops_on_a_photo_stay_ink(seed: int) -> None:
    """A marker a third of the digit's height wide fills the loops of an 8 on a phone photo; on the
    background's 32 px copy the digit is then a bright patch about 10 px across, which a 9 px
    opening took for light on the paper: 20-42% of the ink was kept for five of these eight
    pictures. Now at least 85% of it is."""
    from numbre.data.synthetic import Writer, digit_ink, page_image

    writer = Writer(split="train", slant=0.16, aspect=1.0, pen=0.33, height=89.0, blur=0.77, noise=0.045,
                    jpeg=70.0, speed=0.46, tremor=0.011, loop=0.056, pressure=0.43, medium="photo")
    rng = np.random.default_rng(seed)
    drawn, _ = digit_ink(8, rng, writer, allograph="two loops")
    picture = page_image(drawn, writer, rng, writer.height)
    found = ink_map(picture)
    scale = found.ink.shape[0] / picture.shape[0]  # the map may be a shrunk copy
    kept = float((found.ink >= INK).sum()) / (float((drawn >= INK).sum()) * scale ** 2)
    assert kept > 0.85, kept
