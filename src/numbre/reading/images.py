"""Turning whatever a person hands us into one grey image, or a clear refusal.

Every front end (library, command line, HTTP API, desktop window) reads user
images through `load_image`, so every one of them accepts the same files and
refuses the same ones with the same messages. Images come from strangers: a
file may be huge, truncated, not an image at all, or a tiny PNG that claims to
be a gigapixel (a decompression bomb). Sizes are checked from the file size and
the header before any pixel is decoded (the pixel count, and the bytes decoding
that format and mode will hold: a 1.5 kB WebP of 39 MP would take 600 MB; see
`decoded_bytes`), files are read no further than the byte limit (a device or a
pipe has no size to check first), only raster formats are opened (never
Pillow's EPS reader, which runs Ghostscript), and every decoder failure becomes
an `ImageError` that says what is wrong and what to do. The conversions to grey
keep at most a few copies of the decoded size alive, so the largest accepted
image (40 megapixels) costs a bounded few hundred MB (tests/reading/test_hostile_images.py
measures each kind).

The result is float32 (H, W) grey in [0, 1], in the image's own polarity:
deciding which side is ink is `numbre.reading.preprocess`'s job.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from numbre.errors import ImageError
from numbre.reading.limits import DECODED_BYTES_PER_PIXEL, MAX_BYTES, MAX_PIXELS

try:  # libspng decodes a PNG to an array in about half of Pillow's time (see _decode_plain_png)
    import pyspng
except ImportError:  # a declared dependency; without it (an install with --no-deps) Pillow decodes all
    pyspng = None


# Longer side over shorter side: beyond about 50, a digit becomes less than a pixel of the
# preprocessing overview and would come out "empty"; refusing says what to do instead.
MAX_ASPECT = 50
# Raster formats people send digits in. Pillow identifies many more (EPS, which it renders by
# running Ghostscript; rarely used formats whose decoders see little scrutiny): none is opened.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "AVIF", "PPM")  # JPEG includes MPO

# PNGs that libspng decodes straight to an array: 8-bit grey, RGB or RGBA (colour types 0, 2, 6),
# not interlaced: the images a canvas, a screenshot or a scanner writes. Everything else goes to
# Pillow, and so do files with a transparency key (tRNS), an orientation (eXIf) or an animation
# (acTL): Pillow's handling of those is what every other format gets.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PLAIN_PNG = {0: "L", 2: "RGB", 6: "RGBA"}
_PNG_EXTRAS = (b"tRNS", b"eXIf", b"acTL")

# Bytes per pixel Pillow stores each mode in; modes not named here take 4 (RGB is stored as RGBX).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# 32-bit grey (I, F) and big-endian 16-bit images are scaled to [0, 1] whole (`_scale_to_unit` needs
# their maximum): the decoded pixels and two float32 copies are alive at once, 12 bytes a pixel.
_WHOLE_FLOAT_BYTES = 12
# libwebp decodes into an RGBA canvas, keeps a second one (the previous frame, for animations), and
# Pillow copies the frame out as bytes before making its image: four 4-byte copies of every pixel.
_WEBP_BYTES = 16

# ITU-R 601 luma, the weights Pillow's convert("L") uses, so arrays and files agree.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LUMA_8BIT = _LUMA / np.float32(255)  # the same weights for 8-bit levels

_BAND_PIXELS = 1_000_000  # pixels converted to float at a time by `_premultiplied_grey`

# Painted pixels of a transparent image whose grey levels span less than this are
# taken as one colour: the ink of a canvas export, shaped only by the alpha channel.
_ONE_COLOUR_SPREAD = 0.1


def load_image(source: ImageSource, *, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a path, bytes, PIL image or array into float32 (H, W) grey in [0, 1].

    Applies the EXIF orientation (phones store photos sideways and say so in
    EXIF), takes the first frame of animated or multi-page files, reads 16-bit,
    CMYK, palette and transparent images, and flattens transparency (see
    `flatten_alpha`). Raises `ImageError` for anything it cannot read safely.
    """
    return grey_pixels(open_image(source, max_bytes=max_bytes, max_pixels=max_pixels))


class Pixels:
    """Decoded pixels behind the part of `PIL.Image.Image`'s interface the pipeline uses (`mode`,
    `size`, `width`, `height`, `crop`): the 8-bit pixels of a plain PNG decoded without Pillow, or
    an array handed in, already made grey.

    `open_image` returns one for a canvas export and for an array, so that `grey_pixels` reads the
    array itself instead of copying a PIL image into numpy and scaling it to [0, 1] again.
    """

    def __init__(self, array: np.ndarray) -> None:
        # (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8; or (H, W) float32 grey in [0, 1] ("F")
        self.array = array
        if array.dtype == np.float32:
            self.mode = "F"
        else:
            self.mode = {2: "L", 3: "RGB", 4: "RGBA"}[array.ndim if array.ndim == 2 else array.shape[2]]

    @property
    def size(self) -> tuple[int, int]:
        return self.array.shape[1], self.array.shape[0]

    @property
    def width(self) -> int:
        return self.array.shape[1]

    @property
    def height(self) -> int:
        return self.array.shape[0]

    def crop(self, box: tuple[int, int, int, int]) -> Pixels:
        """The region (x0, y0, x1, y1), x1/y1 exclusive, inside the image as `PIL.Image.crop` gives it."""
        x0, y0, x1, y1 = box
        return Pixels(self.array[y0:y1, x0:x1])


Picture = Image.Image | Pixels  # a decoded image
ImageSource = str | Path | bytes | Picture | np.ndarray  # anything `load_image` reads


def open_image(source: ImageSource, *, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS) -> Picture:
    """The checked, decoded, upright first frame as a PIL image or `Pixels` (an array: its grey, "F").

    The first half of `load_image`, for callers that shrink the image before
    converting it (`numbre.reading.preprocess` reads a 280x280 canvas at 140x140).
    """
    if isinstance(source, np.ndarray):
        return Pixels(_array_to_grey(source, max_pixels))
    if isinstance(source, Image.Image | Pixels):
        _check_size(source.size, max_pixels, "the image")
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode(bytes(source), "the image data", max_bytes, max_pixels)
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        return _decode(_read_file(path, max_bytes), str(path), max_bytes, max_pixels)
    raise ImageError(f"cannot read an image from a {type(source).__name__}; "
                     "pass a file path, the file's bytes, a PIL image or a numpy array")


def grey_pixels(image: Picture, reduce: int = 1) -> np.ndarray:
    """float32 (H, W) grey in [0, 1] of a PIL image of any mode, box-shrunk by a whole `reduce` factor.

    Shrinking happens on 8-bit values before anything is converted to floats,
    so a large image costs little more than its decoding. The result has
    ceil(H / reduce) x ceil(W / reduce) pixels.
    """
    if isinstance(image, Pixels):
        return _grey_from_array(image, reduce)
    mode = image.mode
    if mode in ("I;16", "I;16L"):  # native uint16: scaled value by value, so band by band
        return _banded(image, reduce, _scale_to_unit)
    if mode.startswith("I;16") or mode in ("I", "F"):  # scaled by the image's maximum
        return box_reduce(_scale_to_unit(np.asarray(image)), reduce)
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        if not _surely_opaque(image):
            rgba = _pixels(image if mode == "RGBA" else image.convert("RGBA"))
            sample = _sample(rgba)
            if sample[..., 3].min() < 255:  # judged on a sample: a few unseen pixels do not matter
                return _flatten_rgba(rgba, reduce, sample)
            del rgba, sample  # a 40 MP copy: free it before converting
        # RGBA to L is RGBA to RGB to L (alpha dropped, the same luma), without the RGB copy.
        image = image.convert("L" if mode == "RGBA" else "RGB")
    if image.mode not in ("L", "RGB", "1", "P"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB and HSV reach grey through RGB
    if image.mode != "L":
        image = image.convert("L")
    return _banded(image, reduce, lambda grey: grey) * np.float32(1 / 255)


def _grey_from_array(image: Pixels, reduce: int) -> np.ndarray:
    """`grey_pixels` of decoded 8-bit pixels, the same values the PIL route gives for the same image;
    of an array's grey ("F", already in [0, 1]), only the shrinking."""
    pixels = image.array
    if image.mode == "F":
        return box_reduce(pixels, reduce)
    if image.mode == "RGBA":
        sample = _sample(pixels)
        if sample[..., 3].min() < 255:  # the PIL route's rule: judged on the same sample
            return _flatten_rgba(pixels, reduce, sample)
    if image.mode != "L":  # Pillow's own luma conversion (RGBA's ignores alpha), so both routes round alike
        height, width = pixels.shape[:2]
        # frombuffer shares an RGBA array's memory (Pillow stores RGB as RGBX, so that one is copied):
        # an opaque 280x280 canvas export, what a browser sends, converts in 0.08 ms instead of 0.5.
        pixels = np.ascontiguousarray(pixels)
        colour = Image.frombuffer(image.mode, (width, height), pixels, "raw", image.mode, 0, 1)
        pixels = np.frombuffer(colour.convert("L").tobytes(), np.uint8).reshape(height, width)
    return box_reduce(pixels, reduce) * np.float32(1 / 255)


def _pixels(image: Image.Image) -> np.ndarray:
    """`np.asarray(image)`, copied a band of rows at a time for large images.

    Pillow hands numpy its pixels as one joined bytes object, which briefly
    needs twice the image's size: 290 MB for a 36 MP RGBA image, not 145.
    """
    height = image.height
    rows = max(1, _BAND_PIXELS // image.width)
    if height <= rows:
        return np.asarray(image)
    first = np.asarray(image.crop((0, 0, image.width, rows)))
    pixels = np.empty((height, *first.shape[1:]), first.dtype)
    pixels[:rows] = first
    for top in range(rows, height, rows):
        pixels[top:top + rows] = np.asarray(image.crop((0, top, image.width, min(height, top + rows))))
    return pixels


def _banded(image: Image.Image, reduce: int, convert) -> np.ndarray:
    """`box_reduce(convert(np.asarray(image)), reduce)` for a value-by-value `convert`, in bands of rows.

    Bands hold whole blocks of `reduce` rows, so every block sums the same
    values in the same order: the result is identical, at a fraction of the memory.
    """
    height = image.height
    rows = max(1, _BAND_PIXELS // (image.width * reduce)) * reduce
    if height <= rows:
        return box_reduce(convert(np.asarray(image)), reduce)
    return np.concatenate([box_reduce(convert(np.asarray(image.crop((0, top, image.width,
                                                                      min(height, top + rows))))), reduce)
                           for top in range(0, height, rows)])


def _surely_opaque(image: Image.Image) -> bool:
    """Whether every pixel's alpha is 255, read from the image's extrema without copying its pixels."""
    if not image.mode.endswith(("A", "a")):
        return False  # palette or colour-key transparency: only a conversion can tell
    return image.getextrema()[-1][0] == 255


def box_reduce(values: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean over factor x factor blocks of a 2-D array; edge blocks average what they hold.

    Sums strided views (one pass over the data) instead of a reshaped mean,
    which numpy runs many times slower for small blocks.
    """
    values = np.asarray(values)
    if factor <= 1:
        return values.astype(np.float32)
    height, width = values.shape
    if height % factor or width % factor:  # repeat the last row and column to fill the edge blocks
        values = _pad_edge(values, -height % factor, -width % factor)
    if values.dtype in (np.uint8, np.bool_):
        total = _integer_block_sums(values, factor, 1, 0)
        total *= np.float32(1 / factor**2)
        return total
    # Float sums depend on their order: block by block, one row of the block after the other.
    accumulator = np.uint32 if values.dtype.kind in "ub" else np.float32
    total = values[::factor, ::factor].astype(accumulator)
    for row in range(factor):
        for column in range(factor):
            if row or column:
                total += values[row::factor, column::factor]
    return total.astype(np.float32, copy=False) * np.float32(1 / factor**2)


def _pad_edge(values: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """`np.pad(values, ((0, rows), (0, columns)), mode="edge")` of a 2-D array, without its 20 us overhead."""
    height, width = values.shape
    padded = np.empty((height + rows, width + columns), values.dtype)
    padded[:height, :width] = values
    padded[:height, width:] = values[:, -1:]
    padded[height:] = padded[height - 1]
    return padded


def _integer_block_sums(values: np.ndarray, factor: int, channels: int, channel: int) -> np.ndarray:
    """Sums (as float32) over factor x factor blocks of one channel of (H, W * channels) uint8 or bool.

    Integer sums are exact in any order, so whole rows are added first (contiguous,
    in the narrowest type that cannot overflow: several times faster than adding
    strided blocks), then columns; an interleaved channel is picked out only once
    the rows are summed. H and W must be multiples of `factor`.
    """
    accumulator = np.uint16 if factor * factor * 255 <= np.iinfo(np.uint16).max else np.uint32
    rows = np.add(values[0::factor], values[1::factor], dtype=accumulator)  # factor >= 2
    for row in range(2, factor):
        rows += values[row::factor]
    step = factor * channels
    total = np.add(rows[:, channel::step], rows[:, channel + channels::step])
    for column in range(2, factor):
        total += rows[:, channel + column * channels::step]
    return total.astype(np.float32)


def flatten_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite grey (H, W) with coverage alpha (H, W), both in [0, 1], onto a chosen background.

    Transparent pixels carry no colour of their own (browsers store them as
    black), so the background is a choice, and a wrong one hides the digit:
    black ink on a transparent canvas composited onto black is all black. The
    rule (`_background_behind`): if the painted pixels are one colour, they are
    the ink and the alpha channel draws it, so the background is the
    contrasting extreme (white behind dark ink, black behind light ink). If the
    opaque pixels vary (a painted paper with ink on it and transparent margins),
    the transparent area continues the dominant opaque level, the paper.
    """
    if alpha.min() >= 0.999:
        return grey
    background = _background_behind(grey, alpha)
    if background is None:
        return np.zeros_like(grey)
    return (alpha * grey + (1.0 - alpha) * background).astype(np.float32)


def _background_behind(grey: np.ndarray, alpha: np.ndarray) -> float | None:
    """The grey level in [0, 1] to put behind transparent pixels; None if nothing is painted."""
    step = max(1, int(np.sqrt(grey.size / 20_000)))  # statistics from about 20,000 pixels are plenty
    sample_alpha, sample_grey = alpha[::step, ::step], grey[::step, ::step]
    painted = sample_grey[sample_alpha > 0]
    if painted.size == 0:  # nothing painted at all: a blank image
        return None
    darkest, brightest = float(painted.min()), float(painted.max())
    if brightest - darkest < _ONE_COLOUR_SPREAD:
        return 1.0 if (darkest + brightest) / 2 < 0.5 else 0.0
    opaque = sample_grey[sample_alpha >= 0.5]
    return float(np.median(opaque if opaque.size else painted))


def _read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, at most `max_bytes` of them: more is refused without being read.

    The size `stat` gives is only a first check: a device (/dev/zero, /dev/urandom), a pipe
    or a file still growing reports 0 or less than it holds, so the read itself stops at one
    byte past the limit (`read_at_most`).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"no such file: {path}; check the path") from None
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error.strerror or error}") from None
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file")
    if size > max_bytes:
        raise ImageError(f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                         "crop or shrink the picture to the digits first")
    try:
        with path.open("rb") as file:
            return read_at_most(file, max_bytes, str(path))
    except OSError as error:
        raise ImageError(f"cannot read {path}: {error.strerror or error}") from None


def read_at_most(stream: BinaryIO, max_bytes: int = MAX_BYTES, name: str = "the input") -> bytes:
    """Everything `stream` holds (a file, a device, a pipe, standard input), if it is at most
    `max_bytes`; else an `ImageError`, after reading no more than `max_bytes` + 1 bytes."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError(f"{name} holds more than the {max_bytes / 1e6:.0f} MB limit (reading stopped "
                         "there); give an image file of at most that size, cropped or shrunk to the digits")
    return data


def _what_it_looks_like(data: bytes) -> str:
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF"):
        return "it is a PDF document; export the page as PNG or JPEG"
    if head.startswith(b"%!PS") or head.startswith(b"\xc5\xd0\xd3\xc6"):
        return "it is a PostScript/EPS document, which numbre does not render; export it as PNG"
    if b"<svg" in head[:1024].lower():
        return "it is an SVG drawing, which numbre does not render; export it as PNG"
    if head[:1] in (b"<", b"{", b"[") or all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head[:256]):
        return "it looks like text; send the image file itself, not its name, a link or base64"
    return "it is not a format numbre reads; use PNG, JPEG, GIF, BMP, TIFF or WebP"


def _decode(data: bytes, name: str, max_bytes: int, max_pixels: int) -> Picture:
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); the upload or the file is missing its content")
    if len(data) > max_bytes:
        raise ImageError(f"{name} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                         "crop or shrink the picture to the digits first")
    plain = _decode_plain_png(data, name, max_pixels)
    if plain is not None:
        return plain
    webp = _webp_size(data)
    if webp is not None:  # Pillow starts libwebp's decoder, which sizes its canvases, on opening
        _check_size(webp, max_pixels, name)
        _check_decoded("WEBP", "RGBA", webp, max_pixels, name)
    with warnings.catch_warnings():
        # Pillow's notes on a damaged file ("Corrupt EXIF data") add nothing to the answer or refusal.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow only warns between 89 and 179 megapixels; here every bomb is an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image: {_what_it_looks_like(data)}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb(name, max_pixels) from None
        except Exception as error:  # a broken header can raise almost anything inside a plugin
            raise ImageError(f"{name} has an unreadable header ({error}); "
                             "re-save it as PNG or JPEG") from None
        _check_size(image.size, max_pixels, name)
        _check_decoded(image.format, image.mode, image.size, max_pixels, name)
        try:
            image.seek(0)  # the first frame of an animation or a multi-page file
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb(name, max_pixels) from None
        except Exception as error:  # truncated data raises OSError; corrupt data, other errors
            raise ImageError(f"{name} is truncated or corrupt ({error}); "
                             "the file may be incomplete: save or upload it again") from None
    if "exif" in image.info or getattr(image, "tag_v2", None) is not None:
        # A damaged EXIF block must not make a readable picture unreadable: keep it as stored.
        with contextlib.suppress(Exception):
            image = ImageOps.exif_transpose(image)
    return image


def _decode_plain_png(data: bytes, name: str, max_pixels: int) -> Pixels | None:
    """A plain 8-bit PNG decoded by libspng, or None to let Pillow decode `data`.

    A 280x280 canvas export decodes in about 0.3 ms this way against 0.6-0.8 ms
    through Pillow and its copy into numpy: a third of reading a drawn digit.
    The size is checked from the header first, as for every image. Any file
    libspng refuses goes to Pillow, whose messages say what is wrong.
    """
    if pyspng is None or len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in _PLAIN_PNG or interlace or not 0 < width * height <= max_pixels \
            or any(chunk in data for chunk in _PNG_EXTRAS):
        return None  # refusals, too, are Pillow's: one set of messages for every format
    _check_size((width, height), max_pixels, name)
    _check_decoded("PNG", _PLAIN_PNG[colour], (width, height), max_pixels, name)
    try:
        pixels = pyspng.load(data, _PLAIN_PNG[colour])
    except Exception:  # truncated or corrupt: Pillow decodes what it can or says what is wrong
        return None
    return Pixels(pixels)


def _bomb(name: str, max_pixels: int) -> ImageError:
    return ImageError(f"{name} claims more pixels than Pillow will decode, far over the "
                      f"{max_pixels / 1e6:.0f} megapixel limit; refused as a possible decompression bomb. "
                      "Crop or shrink it to the digits first")


def _check_size(size: tuple[int, int], max_pixels: int, name: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name} is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the "
                         f"{max_pixels / 1e6:.0f} megapixel limit; refused before decoding. "
                         "Crop or shrink it to the digits first")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(f"{name} is {width}x{height} pixels, over {MAX_ASPECT} times as long as it is "
                         "wide; digits in it would be too thin to find. Crop it to the digits first")


def decoded_bytes(format: str | None, mode: str, size: tuple[int, int]) -> int:
    """What decoding an image of this format, Pillow mode and size, and converting it to grey, hold
    in memory at once, in bytes: known from the header, before any pixel is decoded.

    Measured (peak RSS of `Recognizer.predict` above the loaded model): a 39 MP WebP 600 MB,
    which this counts as 624 MB; a 39 MP float TIFF 453 MB, counted as 468 MB.
    """
    width, height = size
    if format == "WEBP":
        per_pixel = _WEBP_BYTES
    elif mode.startswith(("I", "F")) and mode not in ("I;16", "I;16L"):
        per_pixel = _WHOLE_FLOAT_BYTES
    else:
        per_pixel = _MODE_BYTES.get(mode, 4)
    return width * height * per_pixel


def _check_decoded(format: str | None, mode: str, size: tuple[int, int], max_pixels: int, name: str) -> None:
    """Refuse an image whose decoding would hold more than DECODED_BYTES_PER_PIXEL bytes per allowed
    pixel (160 MB at the default 40 MP), however few pixels it has."""
    budget = max_pixels * DECODED_BYTES_PER_PIXEL
    needed = decoded_bytes(format, mode, size)
    if needed > budget:
        width, height = size
        raise ImageError(f"{name} is a {width}x{height} {format or 'image'} of mode {mode}, which would take "
                         f"{needed / 1e6:.0f} MB to decode, over the {budget / 1e6:.0f} MB limit; refused "
                         "before decoding. Crop or shrink it to the digits, or save it as 8-bit PNG or JPEG")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas size a WebP file declares (lossy VP8, lossless VP8L or extended VP8X), or None
    for anything else; read from the first 30 bytes, as libwebp reads it (RIFF container spec)."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _sample(image: np.ndarray) -> np.ndarray:
    """Every n-th pixel in both directions, about 2,000 of them: enough to judge levels and colours.

    The pixels of a contiguous 8-bit RGBA image are gathered as 32-bit words
    into a contiguous copy: numpy converts a strided (n, n, 4) view one
    4-byte pixel at a time, several times slower.
    """
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / 2_000)))
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8 and image.flags.c_contiguous:
        words = np.ascontiguousarray(image.view(np.uint32)[::step, ::step, 0])
        return words.view(np.uint8).reshape(*words.shape, 4)
    return image[::step, ::step]


def _flatten_rgba(rgba: np.ndarray, reduce: int, sample: np.ndarray | None = None) -> np.ndarray:
    """`flatten_alpha` for an 8-bit (H, W, 4) image, box-shrunk by `reduce` on the way.

    A canvas export paints one colour and draws with alpha alone; then only
    the alpha channel is shrunk and composited, which keeps the common case
    fast. Otherwise colour is premultiplied by alpha before shrinking, so the
    colour of transparent pixels (meaningless) never leaks into the edges.
    """
    sample = _sample(rgba) if sample is None else sample
    painted = sample[sample[..., 3] > 0]
    if painted.size and not painted[:, :3].any():
        # Black paint drawn by alpha alone (a canvas export): what the rule below makes of it,
        # white behind black, without its float conversions.
        alpha = _alpha_reduce(rgba, reduce)
        alpha *= np.float32(1 / 255)
        return np.subtract(1.0, alpha, out=alpha)
    sample = sample.astype(np.float32) * (1 / 255)
    sample_grey, sample_alpha = sample[..., :3] @ _LUMA, sample[..., 3]
    background = _background_behind(sample_grey, sample_alpha)
    if background is None:
        return np.zeros((-(-rgba.shape[0] // reduce), -(-rgba.shape[1] // reduce)), np.float32)
    painted = sample_grey[sample_alpha > 0]
    alpha = _alpha_reduce(rgba, reduce)
    alpha *= np.float32(1 / 255)
    darkest, brightest = float(painted.min()), float(painted.max())
    if brightest - darkest < 0.02:  # one colour
        flat = alpha * ((darkest + brightest) / 2)
        flat += np.subtract(1.0, alpha, out=alpha) * background
        return flat
    premultiplied = _premultiplied_grey(rgba, reduce) * np.float32(1 / 255 / 255)
    return (premultiplied + (1.0 - alpha) * background).astype(np.float32)


def _premultiplied_grey(rgba: np.ndarray, reduce: int) -> np.ndarray:
    """`box_reduce(luma * alpha, reduce)` of an 8-bit (H, W, 4) image, a band of rows at a time.

    The float copy of a 40 MP image's colours alone would take 480 MB; bands of
    whole blocks give the same sums, so the result is identical.
    """
    height, width = rgba.shape[:2]
    rows = max(1, _BAND_PIXELS // (width * reduce)) * reduce
    bands = []
    for top in range(0, height, rows):
        band = rgba[top:top + rows]
        luma = band[..., :3].astype(np.float32) @ _LUMA
        bands.append(box_reduce(luma * band[..., 3], reduce))
    return bands[0] if len(bands) == 1 else np.concatenate(bands)


def _alpha_reduce(rgba: np.ndarray, reduce: int) -> np.ndarray:
    """`box_reduce` of the alpha channel of an 8-bit (H, W, 4) image, without copying the channel out."""
    height, width = rgba.shape[:2]
    if reduce <= 1 or height % reduce or width % reduce:
        return box_reduce(rgba[..., 3], reduce)
    total = _integer_block_sums(rgba.reshape(height, width * 4), reduce, 4, 3)
    total *= np.float32(1 / reduce**2)
    return total


def _scale_to_unit(values: np.ndarray) -> np.ndarray:
    """Map an integer or float grey array of unknown range to [0, 1]."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values.astype(np.float32) * (1 / 255)
    if values.dtype == np.uint16:
        scaled = values.astype(np.float32)
        scaled *= np.float32(1 / 65535)  # in place: one float copy of a large 16-bit scan, not two
        return scaled
    if values.dtype == bool:
        return values.astype(np.float32)
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise ImageError("the image holds NaN or infinite values; pass finite grey levels")
    top = float(values.max()) if values.size else 0.0
    if top <= 1.0:
        return np.clip(values, 0.0, 1.0)
    # Integers or floats above 1: 8-bit levels if they fit, 16-bit if they fit, else relative.
    scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.clip(values / scale, 0.0, 1.0)


def _array_to_grey(array: np.ndarray, max_pixels: int) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}")
    height, width = array.shape[:2]
    _check_size((width, height), max_pixels, "the image array")
    if array.dtype.kind not in "uifb":
        raise ImageError(f"an image array must hold numbers; got dtype {array.dtype}")
    if array.dtype == np.uint8 and array.ndim == 3:
        # 8-bit colour, the common case: luma and the scale to [0, 1] in one product, without a
        # float copy of every channel first (a 952x200 line: 0.2 ms against 1.2 ms). White comes out
        # at exactly 1.0 (the weights' float32 sum), so opaque colour needs no clipping.
        grey = array[:, :, :3] @ _LUMA_8BIT
        if array.shape[2] == 3:
            return grey
        grey = flatten_alpha(grey, array[:, :, 3] * np.float32(1 / 255))
    else:
        values = _scale_to_unit(array)
        if values.ndim == 2:
            return np.ascontiguousarray(values, dtype=np.float32)  # clipped to [0, 1] already
        grey = values[:, :, :3] @ _LUMA
        if values.shape[2] == 4:
            grey = flatten_alpha(grey, values[:, :, 3])
    # Compositing and float luma can round a level a hair past 1; what `Pixels` hold is in [0, 1].
    grey = grey.astype(np.float32, copy=False)
    np.minimum(grey, 1.0, out=grey)
    np.maximum(grey, 0.0, out=grey)
    return grey
