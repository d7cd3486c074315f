"""Decoding user images: every source and mode reads the same, and every bad input is a clear ImageError."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from numbre.errors import ImageError, NumbreError
from numbre.reading.images import Pixels, box_reduce, flatten_alpha, grey_pixels, load_image, open_image


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def bar_image() -> np.ndarray:
    """40x60 uint8: white paper, a black bar in the upper left quarter (easy to locate after rotations)."""
    values = np.full((40, 60), 255, np.uint8)
    values[5:15, 5:20] = 0
    return values


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a width x height greyscale image, followed by almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + png_chunk(b"IEND", b""))


# --- sources and modes --------------------------------------------------------------------------

def test_path_bytes_pil_and_array_give_the_same_grey(tmp_path) -> None:
    values = bar_image()
    path = tmp_path / "bar.png"
    path.write_bytes(encoded(Image.fromarray(values)))
    expected = values.astype(np.float32) / 255
    for source in (path, str(path), path.read_bytes(), Image.fromarray(values), values,
                   values.astype(np.float64) / 255, values.astype(np.uint16) * 257, values[:, :, None]):
        grey = load_image(source)
        assert grey.dtype == np.float32 and grey.shape == (40, 60)
        assert np.abs(grey - expected).max() < 1e-3, type(source)


def test_colour_arrays_and_files_use_the_same_luma() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    from_array = load_image(rgb)
    from_file = load_image(encoded(Image.fromarray(rgb)))
    assert np.abs(from_array - from_file).max() < 2 / 255
    assert from_array[0, 0] == pytest.approx((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, abs=1e-3)


def test_eight_bit_colour_arrays_read_as_the_same_levels_in_any_dtype() -> None:
    """8-bit colour arrays take a short cut; the grey must be the one float levels of the same
    picture give, for RGB and for RGBA with partial transparency."""
    rng = np.random.default_rng(5)
    for channels in (3, 4):
        pixels = rng.integers(0, 256, (30, 40, channels), dtype=np.uint8)
        if channels == 4:
            pixels[:10, :, 3] = 0  # a transparent band: flattened onto the chosen background
        as_bytes = load_image(pixels)
        as_floats = load_image(pixels.astype(np.float32) / 255)
        assert as_bytes.dtype == np.float32 and as_bytes.shape == (30, 40)
        assert np.abs(as_bytes - as_floats).max() < 1e-6


def test_sixteen_bit_png_keeps_its_levels() -> None:
    values = (bar_image().astype(np.uint16) * 257)
    values[30:35, 40:50] = 32768  # mid grey, only expressible with the full 16-bit range
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    grey = load_image(encoded(image))
    assert grey[0, 0] == pytest.approx(1.0) and grey[10, 10] == pytest.approx(0.0)
    assert grey[32, 45] == pytest.approx(0.5, abs=0.01)


def test_cmyk_jpeg_reads_dark_ink_as_dark() -> None:
    rgb = Image.fromarray(bar_image()).convert("RGB")
    grey = load_image(encoded(rgb.convert("CMYK"), "JPEG", quality=95))
    assert grey[10, 10] < 0.15 and grey[30, 40] > 0.85


def test_palette_gif_with_a_transparent_index_is_flattened_onto_paper() -> None:
    palette = Image.new("P", (30, 30), 0)
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    palette.paste(1, (10, 5, 20, 25))  # black ink
    grey = load_image(encoded(palette, "GIF", transparency=0))
    assert grey[15, 15] < 0.05 and grey[2, 2] > 0.95  # dark ink on a light background


def test_exif_orientation_is_applied() -> None:
    image = Image.fromarray(bar_image()).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    grey = load_image(encoded(image, "JPEG", quality=95, exif=exif.tobytes()))
    assert grey.shape == (60, 40)
    assert grey[10, 30] < 0.2  # the bar moved from the upper left to the upper right
    assert grey[10, 5] > 0.8


def test_first_frame_of_an_animation() -> None:
    frames = [Image.fromarray(np.full((20, 20), level, np.uint8)) for level in (0, 255)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(data).max() < 0.05


@pytest.mark.parametrize("ink", [0, 255], ids=["dark ink", "light ink"])
def test_transparent_canvas_export_shows_its_ink(ink: int) -> None:
    """A canvas export paints one colour and draws with alpha: the background must contrast with it."""
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[20:30, 10:40, 3] = 255
    rgba[19, 10:40, 3] = 128  # an anti-aliased edge
    for source in (encoded(Image.fromarray(rgba)), rgba):
        grey = load_image(source)
        background, stroke = grey[2, 2], grey[25, 25]
        assert abs(stroke - background) > 0.99
        assert stroke == pytest.approx(ink / 255, abs=0.01)
        assert grey[19, 20] == pytest.approx((stroke + background) / 2, abs=0.02)


def test_transparent_margin_around_painted_paper_continues_the_paper() -> None:
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[10:50, 10:50] = (240, 240, 240, 255)  # paper
    rgba[25:35, 20:40, :3] = 20  # ink on it
    grey = load_image(rgba)
    assert grey[2, 2] == pytest.approx(240 / 255, abs=0.02)
    assert grey[30, 30] < 0.1


def test_nothing_painted_is_blank() -> None:
    assert load_image(np.zeros((10, 10, 4), np.uint8)).max() == 0.0
    assert flatten_alpha(np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32)).max() == 0.0


def test_box_reduce_averages_blocks_including_partial_edges() -> None:
    values = np.arange(25, dtype=np.uint8).reshape(5, 5)
    reduced = box_reduce(values, 2)
    assert reduced.shape == (3, 3)
    assert reduced[0, 0] == pytest.approx((0 + 1 + 5 + 6) / 4)
    assert reduced[2, 2] == pytest.approx(24)


# --- refusals -----------------------------------------------------------------------------------

def refused(source, **limits) -> str:
    with pytest.raises(ImageError) as caught:
        load_image(source, **limits)
    assert isinstance(caught.value, NumbreError)  # the CLI prints these without a traceback
    return str(caught.value)


def test_empty_bytes() -> None:
    assert "empty" in refused(b"")


def test_text_and_pdf_are_not_images() -> None:
    assert "text" in refused(b"hello, this is not a picture\n")
    assert "text" in refused(b"<html><body>404</body></html>")
    assert "PDF" in refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    assert "PNG, JPEG" in refused(bytes(range(256)) * 4)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_files(format: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), format)
    assert "truncated" in refused(data[: len(data) // 2])


def test_missing_file_and_folder(tmp_path) -> None:
    assert "no such file" in refused(tmp_path / "missing.png")
    assert "folder" in refused(tmp_path)


def test_file_over_the_byte_limit(tmp_path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(encoded(Image.fromarray(bar_image())))
    message = refused(path, max_bytes=100)
    assert "limit" in message and "crop or shrink" in message
    assert "limit" in refused(path.read_bytes(), max_bytes=100)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    """The header claims 100000 x 100000 pixels; decoding it would fail as truncated, so the
    size message proves the check ran before any decoding."""
    started = time.process_time()  # CPU time: a busy machine stretches the wall clock, not the work done
    message = refused(png_claiming(100_000, 100_000))
    assert "decompression bomb" in message or "megapixel" in message
    assert "truncated" not in message
    message = refused(png_claiming(8_000, 6_000))  # 48 MP: under Pillow's own limit, over ours
    assert "48 megapixels" in message and "before decoding" in message
    assert time.process_time() - started < 1.0


def test_a_real_large_but_compressible_png_is_refused_by_the_pixel_limit() -> None:
    data = encoded(Image.new("L", (3000, 2000), 255))  # a few kB
    assert len(data) < 100_000
    assert "6 megapixels" in refused(data, max_pixels=5_000_000)


def test_zero_size_and_bad_arrays() -> None:
    assert "no pixels" in refused(np.zeros((0, 5)))
    assert "shape" in refused(np.zeros((4, 4, 2)))
    assert "NaN" in refused(np.full((4, 4), np.nan))
    assert "cannot read an image from a list" in refused([[0, 1]])
    with pytest.raises(ImageError):
        load_image(png_claiming(0, 10))


def test_open_image_returns_an_upright_pil_image() -> None:
    picture = open_image(encoded(Image.fromarray(bar_image())))
    assert picture.size == (60, 40)
    assert open_image(bar_image()).mode == "F"


def plain_pngs() -> dict[str, bytes]:
    """PNGs of each kind the libspng route decodes, and of kinds it leaves to Pillow."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (90, 70), dtype=np.uint8)
    rgb = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    canvas = np.zeros((90, 70, 4), np.uint8)
    canvas[20:70, 30:40, 3] = rng.integers(1, 256, (50, 10), dtype=np.uint8)  # black ink drawn by alpha
    painted = np.dstack([rgb, np.full((90, 70), 255, np.uint8)])
    painted[:, :8, 3] = 0  # a painted sheet with a transparent margin
    opaque = np.dstack([rgb, np.full((90, 70), 255, np.uint8)])
    return {
        "grey": encoded(Image.fromarray(grey)),
        "rgb": encoded(Image.fromarray(rgb)),
        "canvas": encoded(Image.fromarray(canvas)),
        "painted": encoded(Image.fromarray(painted)),
        "opaque rgba": encoded(Image.fromarray(opaque)),
    }


@pytest.mark.parametrize("name", sorted(plain_pngs()))
@pytest.mark.parametrize("reduce", [1, 2, 3])
def test_plain_pngs_decode_to_the_same_grey_by_either_route(name: str, reduce: int) -> None:
    """libspng reads plain 8-bit PNGs (a canvas export in half the time); the grey must be Pillow's."""
    data = plain_pngs()[name]
    fast = open_image(data)
    assert isinstance(fast, Pixels), "a plain 8-bit PNG should take the libspng route"
    by_pillow = Image.open(io.BytesIO(data))
    assert fast.size == by_pillow.size
    assert np.array_equal(grey_pixels(fast, reduce), grey_pixels(by_pillow, reduce))
    box = (7, 11, 50, 83)
    assert np.array_equal(grey_pixels(fast.crop(box), reduce), grey_pixels(by_pillow.crop(box), reduce))


def arrays() -> dict[str, np.ndarray]:
    """Arrays of each kind a caller hands `read` or `predict`, in sizes the reductions do not divide."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (91, 67, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (91, 67), dtype=np.uint8)])
    return {"uint8 grey": rgb[..., 0], "uint8 rgb": rgb, "uint8 rgba": rgba,
            "float grey": rng.random((91, 67)), "float rgb": rgb / 255.0, "float rgba": rgba / 255.0,
            "uint16 grey": rng.integers(0, 65536, (91, 67), dtype=np.uint16)}


@pytest.mark.parametrize("name", sorted(arrays()))
@pytest.mark.parametrize("reduce", [1, 2, 5])
def test_arrays_read_as_grey_pixels_give_the_levels_of_a_grey_pil_image(name: str, reduce: int) -> None:
    """An array is made grey once and kept as it is ("F" `Pixels`); shrinking it, whole or cropped,
    gives the very levels the same grey gives as a Pillow "F" image, which used to be scaled again."""
    picture = open_image(arrays()[name])
    assert isinstance(picture, Pixels) and picture.mode == "F" and picture.size == (67, 91)
    assert picture.array.dtype == np.float32
    assert picture.array.min() >= 0.0 and picture.array.max() <= 1.0
    as_pil = Image.fromarray(picture.array.copy(), "F")
    assert np.array_equal(grey_pixels(picture, reduce), grey_pixels(as_pil, reduce))
    box = (7, 11, 50, 83)
    assert np.array_equal(grey_pixels(picture.crop(box), reduce), grey_pixels(as_pil.crop(box), reduce))


def test_pngs_beyond_the_plain_kinds_are_read_by_pillow() -> None:
    bar = Image.fromarray(bar_image())
    keyed = encoded(bar.convert("RGB"), transparency=(255, 255, 255))
    others = {"palette": encoded(bar.convert("P")), "16-bit": encoded(bar.convert("I;16")),
              "colour key": keyed, "grey and alpha": encoded(bar.convert("LA"))}
    for name, data in others.items():
        assert not isinstance(open_image(data), Pixels), name
        assert load_image(data).shape == (40, 60), name
    # The colour key makes the white paper transparent: the bar is what remains, on a contrasting ground.
    assert load_image(keyed)[10, 10] != load_image(keyed)[30, 40]


def test_a_truncated_plain_png_gets_pillows_message() -> None:
    data = plain_pngs()["rgb"]
    assert "truncated" in refused(data[: len(data) // 2])
