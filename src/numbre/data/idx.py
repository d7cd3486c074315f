"""Reading and writing IDX files, the format MNIST is distributed in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data. MNIST uses
type 0x08 (unsigned byte): images are 3-D (count, rows, cols), labels 1-D.
Files may be gzipped; we detect that by content, not by name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from numbre.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08


def read_bytes(path: Path) -> bytes:
    """Return the raw (decompressed) IDX bytes of `path`, gzipped or not."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(
                f"{path} is a damaged gzip file ({error}); delete it and fetch it again"
            ) from None
    return data


def parse(data: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array with `ndim` dimensions.

    `name` only labels error messages. Every header field is checked against
    the payload length, so a truncated or foreign file is refused with a
    message instead of producing a wrongly-shaped array.
    """
    if len(data) < 4:
        raise DataError(f"{name} is not an IDX file: only {len(data)} bytes")
    zero, dtype_code, dims = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise DataError(f"{name} is not an IDX file: bad magic number {data[:4].hex()}")
    if dtype_code != UBYTE:
        raise DataError(
            f"{name} holds IDX type 0x{dtype_code:02x}; numbre reads unsigned-byte (0x08) data"
        )
    if dims != ndim:
        kind = "images (3 dimensions)" if ndim == 3 else "labels (1 dimension)"
        raise DataError(f"{name} has {dims} dimensions; expected {kind}")
    header_size = 4 + 4 * dims
    if len(data) < header_size:
        raise DataError(f"{name} is truncated inside its header")
    shape = struct.unpack(f">{dims}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_size
    if payload != expected:
        problem = "truncated" if payload < expected else "longer than its header says"
        raise DataError(
            f"{name} is {problem}: header promises {expected:,} bytes of data "
            f"for shape {shape}, file has {payload:,}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def encode(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (uncompressed)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()
