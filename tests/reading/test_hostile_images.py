"""Images built to hurt: bombs, extreme shapes, every frame and colour layout, damaged and foreign files.

Each case goes through `Recognizer.predict`, the call behind every front end,
and must end in the right answer (a 7 is drawn in most of them) or in a clear
`ImageError`, within a bound on CPU time and on peak memory. Peak memory is
the process's high-water mark (VmHWM), reset before each case by writing 5
to /proc/self/clear_refs, minus the memory in use before it: what the case
itself cost. `PYTHONPATH=tests python tests/reading/test_hostile_images.py` prints the figures as a table.

tests/reading/test_images.py checks how `load_image` reads each mode and refuses each
kind of damage; this file checks what they cost and what the recognizer answers.
"""

from __future__ import annotations

import functools
import gc
import io
import re
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from numbre.errors import ImageError
from numbre.reading.recognize import Prediction, Recognizer
from webhelpers import strokes_png

SEVEN = [[(70, 50), (210, 50), (120, 240)]]
BIG = 6000  # 6000 x 6000 = 36 megapixels, just under the 40 MP limit
SMALL_BOUND = (0.5, 60)  # CPU seconds, MB for an ordinary image
BIG_BOUND = (4.0, 450)  # CPU seconds, MB for a 36 MP image (decoding it alone takes 36-144 MB)


@functools.cache
def seven(size: int = 280) -> Image.Image:
    """A hand-drawn-looking 7, black on white, `size` pixels square."""
    image = Image.open(io.BytesIO(strokes_png(SEVEN))).convert("L")
    return image if size == 280 else image.resize((size, size), Image.Resampling.BILINEAR)


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fast_png(pixels: np.ndarray) -> bytes:
    """A PNG of (H, W) uint8 or uint16 grey, or (H, W, 4) uint8 RGBA, without Pillow's slow row filters.

    Rows go unfiltered into zlib at level 1: a 36 MP image of paper compresses
    to a few hundred kB in a fraction of a second (Pillow's encoder takes seconds).
    """
    height, width = pixels.shape[:2]
    depth, colour = (16, 0) if pixels.dtype == np.uint16 else (8, 6 if pixels.ndim == 3 else 0)
    rows = pixels.astype(">u2") if depth == 16 else pixels
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows.reshape(height, -1).view(np.uint8)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 1)) + png_chunk(b"IEND", b""))


def big_seven() -> np.ndarray:
    """(BIG, BIG) uint8: the 7 drawn across a whole 36 MP page."""
    return np.asarray(seven(BIG))


def with_exif(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image.convert("RGB"), "JPEG", quality=95, exif=exif.tobytes())


def frames(first: Image.Image, format: str, **options) -> bytes:
    """An animation or multi-page file: the 7 first, then blank and other frames."""
    others = [Image.new("L", first.size, 255), Image.new("L", first.size, 0)]
    if format == "GIF":
        others = others * 150  # 301 frames: only the first may be decoded
    mode = "RGB" if format in ("WEBP",) else first.mode
    return encoded(first.convert(mode), format, save_all=True,
                   append_images=[frame.convert(mode) for frame in others], **options)


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def real_pdf() -> bytes:
    return encoded(seven().convert("RGB"), "PDF")


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nnewpath 0 0 moveto 28 28 lineto stroke\n"


def svg() -> bytes:
    return (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="280" height="280">'
            b'<path d="M70 50 L210 50 L120 240" stroke="black" stroke-width="18" fill="none"/></svg>')


def text_chunk_bomb() -> bytes:
    """A 64 px PNG carrying a zTXt chunk that inflates to 200 MB (195 kB on disk)."""
    data = encoded(seven(64))
    bomb = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(bytes(200_000_000), 9))
    return data[:33] + bomb + data[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to claim width x height."""
    data = bytearray(encoded(seven(64), "JPEG"))
    frame = data.find(b"\xff\xc0")
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def palette_with_transparency() -> bytes:
    image = seven(64).convert("P")
    return encoded(image, "PNG", transparency=int(np.asarray(image)[0, 0]))


def transparent_canvas(size: int) -> np.ndarray:
    """A canvas export: black paint everywhere, the 7 drawn by the alpha channel alone."""
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 3] = 255 - np.asarray(seven(size))
    return rgba


def opaque_rgba(size: int) -> np.ndarray:
    grey = np.asarray(seven(size))
    return np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=2)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    expect: int | str  # a digit, "empty", or a piece of the refusal's message
    big: bool = False


CASES = [
    # decompression bombs: a small file that decodes to 36 MP, or claims more
    Case("36 MP grey PNG of a 7", lambda: fast_png(big_seven()), 7, big=True),
    Case("36 MP opaque RGBA PNG of a 7", lambda: fast_png(opaque_rgba(BIG)), 7, big=True),
    Case("36 MP transparent canvas PNG of a 7", lambda: fast_png(transparent_canvas(BIG)), 7, big=True),
    Case("36 MP 16-bit PNG of a 7", lambda: fast_png(big_seven().astype(np.uint16) * 257), 7, big=True),
    Case("36 MP blank GIF (27 kB)", lambda: encoded(Image.new("P", (BIG, BIG), 0), "GIF"), "empty", big=True),
    Case("12 MP JPEG of a 7", lambda: encoded(seven(3464), "JPEG", quality=90), 7, big=True),
    Case("PNG claiming 100,000 x 100,000", lambda: png_claiming(100_000, 100_000),
         "decompression bomb. Crop or shrink it to the digits first"),
    Case("JPEG claiming 8,000 x 6,000", lambda: jpeg_claiming(8_000, 6_000), "48 megapixels"),
    Case("PNG with a 200 MB zTXt chunk", text_chunk_bomb, "Decompressed data too large"),
    # extreme shapes
    Case("1 x 1 black", lambda: encoded(Image.new("L", (1, 1), 0)), "empty"),
    Case("1 x 1 white", lambda: encoded(Image.new("L", (1, 1), 255)), "empty"),
    Case("50,000 x 50 with a 7", lambda: strip(50_000), "over 50 times as long"),
    Case("50 x 50,000 with a 7", lambda: strip(50_000, upright=True), "over 50 times as long"),
    Case("2,500 x 50 (50:1) with a 7", lambda: strip(2_500), 7),
    # animations and pages: the first frame is read, the others cost nothing
    Case("animated GIF, 301 frames", lambda: frames(seven(64), "GIF", duration=40), 7),
    Case("animated PNG (APNG)", lambda: frames(seven(64), "PNG", duration=40), 7),
    Case("3-page TIFF", lambda: frames(seven(64), "TIFF"), 7),
    Case("animated WebP", lambda: frames(seven(64), "WEBP", lossless=True), 7),
    # colour layouts
    Case("16-bit grey PNG", lambda: encoded(Image.fromarray(np.asarray(seven(64), np.uint16) * 257)), 7),
    Case("CMYK JPEG", lambda: encoded(seven(64).convert("CMYK"), "JPEG", quality=95), 7),
    Case("palette PNG", lambda: encoded(seven(64).convert("P")), 7),
    Case("palette PNG with a transparent index", palette_with_transparency, 7),
    Case("grey + alpha PNG", lambda: encoded(seven(64).convert("LA")), 7),
    Case("1-bit PNG", lambda: encoded(seven(64).point(lambda level: 255 * (level > 128)).convert("1")), 7),
    Case("BMP", lambda: encoded(seven(64), "BMP"), 7),
    Case("LZW TIFF", lambda: encoded(seven(64), "TIFF", compression="tiff_lzw"), 7),
    Case("PGM", lambda: encoded(seven(64), "PPM"), 7),
    # EXIF orientation: the stored pixels are turned; the tag says how to turn them back
    Case("JPEG turned 90, EXIF 6", lambda: with_exif(seven().transpose(Image.Transpose.ROTATE_90), 6), 7),
    Case("JPEG turned 180, EXIF 3", lambda: with_exif(seven().transpose(Image.Transpose.ROTATE_180), 3), 7),
    Case("JPEG turned 270, EXIF 8", lambda: with_exif(seven().transpose(Image.Transpose.ROTATE_270), 8), 7),
    # damaged files
    Case("truncated PNG", lambda: truncated(encoded(noisy_seven())), "truncated"),
    Case("truncated JPEG", lambda: truncated(encoded(noisy_seven(), "JPEG")), "truncated"),
    Case("truncated GIF", lambda: truncated(encoded(noisy_seven(), "GIF")), "truncated"),
    Case("truncated TIFF", lambda: truncated(encoded(noisy_seven(), "TIFF")), "truncated"),
    Case("truncated WebP", lambda: truncated(encoded(noisy_seven(), "WEBP")), "unreadable header"),
    Case("PNG cut inside its header", lambda: encoded(seven(64))[:20], "unreadable header"),
    # not raster images
    Case("empty bytes", lambda: b"", "empty (0 bytes)"),
    Case("SVG drawing", svg, "SVG drawing"),
    Case("PDF of a 7", real_pdf, "PDF document"),
    Case("EPS (Ghostscript never runs)", eps, "PostScript/EPS"),
    Case("ICO", lambda: encoded(seven(64), "ICO"), "not an image"),
]


def strip(width: int, upright: bool = False) -> bytes:
    """A width x 50 white strip with a 50 px 7 in its middle (turned to 50 x width if `upright`)."""
    page = Image.new("L", (width, 50), 255)
    page.paste(seven(50), (width // 2, 0))
    return encoded(page.transpose(Image.Transpose.ROTATE_90) if upright else page)


def noisy_seven() -> Image.Image:
    """A 7 on grainy paper: compresses poorly, so a cut lands in the pixel data, not its end."""
    grain = np.random.default_rng(0).integers(0, 40, (200, 200), dtype=np.uint8)
    return Image.fromarray(np.minimum(np.asarray(seven(200)), 255 - grain))


def png_claiming(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + png_chunk(b"IEND", b""))


# --- measuring ------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())[1])


def measured(call: Callable[[], Prediction]) -> tuple[Prediction | ImageError, float, float]:
    """(outcome, CPU seconds, peak MB above the memory in use before) of one call."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kb("VmRSS")
    started = time.process_time()
    try:
        outcome: Prediction | ImageError = call()
    except ImageError as error:
        outcome = error
    return outcome, time.process_time() - started, (_status_kb("VmHWM") - before) / 1024


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    import scipy.ndimage  # noqa: F401  (imported on the first photo: 0.25 s that is no image's cost)

    return Recognizer.load()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hostile_image_gets_an_answer_or_a_clear_refusal(case: Case, recognizer: Recognizer) -> None:
    data = case.build()
    recognizer.predict(encoded(seven(64)))  # warm: the first call sets up ONNX Runtime's buffers
    outcome, seconds, peak_mb = measured(lambda: recognizer.predict(data))
    if isinstance(case.expect, str) and case.expect != "empty":
        assert isinstance(outcome, ImageError), f"{case.name}: answered {outcome}"
        message = str(outcome)
        assert case.expect in message and "\n" not in message, message
    else:
        assert isinstance(outcome, Prediction), f"{case.name}: refused: {outcome}"
        if case.expect == "empty":
            assert (outcome.digit, outcome.reason) == (None, "empty"), outcome
        else:
            assert outcome.digit == case.expect, outcome
    seconds_bound, memory_bound = BIG_BOUND if case.big else SMALL_BOUND
    assert seconds < seconds_bound, f"{case.name}: {seconds:.2f} s of CPU"
    assert peak_mb < memory_bound, f"{case.name}: {peak_mb:.0f} MB at its peak"


def test_exif_orientation_decides_the_answer(recognizer: Recognizer) -> None:
    """The control for the EXIF cases: the same turned pixels without the tag are not read as a 7."""
    turned = seven().transpose(Image.Transpose.ROTATE_90).convert("RGB")
    assert recognizer.predict(encoded(turned, "JPEG", quality=95)).digit != 7
    assert recognizer.predict(with_exif(turned, 6)).digit == 7


def test_ghostscript_is_never_run_for_eps(recognizer: Recognizer, monkeypatch) -> None:
    """Pillow renders EPS by running Ghostscript; numbre never opens EPS at all, installed or not."""
    import subprocess

    started: list[object] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(subprocess, "check_call", lambda *args, **kwargs: started.append(args))
    with pytest.raises(ImageError, match="PostScript/EPS"):
        recognizer.predict(eps())
    assert started == []


if __name__ == "__main__":
    import scipy.ndimage  # noqa: F401

    model = Recognizer.load()
    model.predict(encoded(seven(64)))
    print("| case | input bytes | answer | CPU s | peak MB |\n|---|---:|---|---:|---:|")
    for case in CASES:
        data = case.build()
        outcome, seconds, peak_mb = measured(lambda data=data: model.predict(data))
        answer = (f"refused: {str(outcome)[:60]}" if isinstance(outcome, ImageError)
                  else outcome.digit if outcome.digit is not None else outcome.reason)
        print(f"| {case.name} | {len(data):,} | {answer} | {seconds:.3f} | {peak_mb:.0f} |")
    sys.exit(0)
