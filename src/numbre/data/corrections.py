"""A corrections folder: drawings the model read wrong, each kept with the digit it really is.

    store = CorrectionStore(Path("corrections"))
    store.save(drawn, seen, label=1, read_as=7, source="web page")
    x, y = load_corrections(Path("corrections"))      # (N, 28, 28) uint8 and (N,) uint8, as MNIST

The drawing page (`numbre serve --corrections DIR`) and the desktop window (`numbre draw
--corrections DIR`) write here; `numbre data info --corrections DIR` lists it and `numbre train
--extra DIR` trains on it. Each correction is three files with one name made here, never by a client:

    20261204T191500.123456Z-9f86d081-28x28.png   what the network saw: 28x28 grey, light ink on dark
    20261204T191500.123456Z-9f86d081-drawn.png   the drawing as drawn: grey, dark ink on light paper
    20261204T191500.123456Z-9f86d081.json        the label and what the model had read, written last

Each file is written atomically and the record (.json) last, so a correction counts only once all
of it is on disk; a failed save removes what it had written. A folder holds at most `max_count`
corrections and `max_bytes` bytes of files: one more is refused with `CorrectionsFull`, which says
how to make room. Several server processes may share a folder: each counts what is on disk when it
saves, so together they overshoot a limit by at most one correction each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from numbre import __version__
from numbre.atomic import atomic_write
from numbre.data.known import DIGITS
from numbre.errors import DataError, NumbreError

FORMAT = "numbre-correction"
SEEN_SUFFIX, DRAWN_SUFFIX, RECORD_SUFFIX = "-28x28.png", "-drawn.png", ".json"
NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")  # names made here; only these are read
MAX_DRAWN_SIDE = 1024  # px: larger drawings (an uploaded photo) are kept shrunk to this, to bound the bytes
MAX_RECORD_BYTES = 64_000  # a record is a few hundred bytes; anything much larger is not one of ours


class CorrectionsFull(NumbreError):
    """The corrections folder is at its limit of corrections or bytes."""


class CorrectionNotSaved(NumbreError):
    """The corrections folder cannot be written (read-only, a disk error, a file in the way)."""


@dataclass(frozen=True)
class CorrectionLimits:
    """How much a corrections folder may hold; the defaults suit a small server's disk."""

    max_count: int = 10_000  # corrections; MNIST's test set is 10,000 images
    max_bytes: int = 200_000_000  # bytes of all files together; a pad drawing is 2-10 kB

    def __post_init__(self) -> None:
        for name in ("max_count", "max_bytes"):
            if getattr(self, name) < 1:
                raise NumbreError(f"corrections {name} must be at least 1, not {getattr(self, name)}")


@dataclass(frozen=True)
class Correction:
    """One saved correction, as read back from its record."""

    name: str  # the shared start of its three file names
    label: int  # the digit it really is
    read_as: int | None  # what the model had answered (None: not a digit, several, or nothing asked)
    created: str  # UTC, ISO 8601
    source: str  # "web page", "numbre draw", ...
    bytes: int  # of its three files together

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "read_as": self.read_as, "created": self.created,
                "source": self.source, "bytes": self.bytes}


@dataclass(frozen=True)
class Usage:
    """What a corrections folder holds now."""

    count: int
    bytes: int


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def drawn_pixels(drawn: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey of a drawing given as uint8 or as float in [0, 1], shrunk to MAX_DRAWN_SIDE."""
    if drawn.ndim != 2 or drawn.size == 0:
        raise NumbreError(f"a drawing is a (height, width) grey image, not an array of shape {drawn.shape}")
    if drawn.dtype != np.uint8:
        drawn = (np.clip(np.asarray(drawn, np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if max(drawn.shape) > MAX_DRAWN_SIDE:
        image = Image.fromarray(drawn, "L")
        image.thumbnail((MAX_DRAWN_SIDE, MAX_DRAWN_SIDE), Image.Resampling.BOX)
        drawn = np.asarray(image)
    return drawn


def seen_pixels(seen: np.ndarray) -> np.ndarray:
    """(28, 28) uint8 of the network's input, given as float in [0, 1] (a Prediction's image) or uint8."""
    if seen.shape != (28, 28):
        raise NumbreError(f"what the network saw is a 28x28 image, not {seen.shape}")
    if seen.dtype == np.uint8:
        return seen
    return (np.clip(np.asarray(seen, np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def model_label(meta: dict[str, Any]) -> str:
    """Which model read the drawing, for a correction's record: architecture and the start of its weights'
    digest (a model file's, or the one an ONNX export was made from)."""
    digest = str(meta.get("weights_sha256") or meta.get("source_weights_sha256") or "")[:12]
    return f"{meta.get('architecture', '?')} {digest}".strip()


def check_label(label: object) -> int:
    """The label as an int 0-9, or a one-line error."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or not 0 <= int(label) <= 9:
        raise NumbreError(f"a correction's label is a digit 0-9, not {label!r}")
    return int(label)


class CorrectionStore:
    """A corrections folder that saves within its limits; safe to share between threads."""

    def __init__(self, folder: Path, limits: CorrectionLimits | None = None) -> None:
        self.folder = Path(folder)
        self.limits = limits or CorrectionLimits()
        self._lock = threading.Lock()

    def describe(self) -> str:
        """One line for a start-up message."""
        return (f"corrections kept in {self.folder} (at most {self.limits.max_count:,} corrections "
                f"and {self.limits.max_bytes:,} bytes)")

    def usage(self) -> Usage:
        """Corrections (complete records) and bytes of files in the folder now; (0, 0) before it is made."""
        count = size = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return Usage(0, 0)
        except OSError as error:
            raise CorrectionNotSaved(f"cannot read the corrections folder {self.folder}: "
                                     f"{error.strerror or error}") from None
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    size += entry.stat(follow_symlinks=False).st_size
                    count += entry.name.endswith(RECORD_SUFFIX) and NAME.match(entry.name[:-5]) is not None
        return Usage(count, size)

    def save(self, drawn: np.ndarray, seen: np.ndarray, label: int, *, read_as: int | None = None,
             confidence: float | None = None, source: str = "", model: str = "") -> Correction:
        """Keep one correction: `drawn` as drawn (grey, ink dark), `seen` the 28x28 the network saw.

        Raises CorrectionsFull when it would take the folder past a limit, NumbreError when the
        folder cannot be written; in both cases nothing of this correction stays on disk.
        """
        label = check_label(label)
        drawn_png, seen_png = _png(drawn_pixels(drawn)), _png(seen_pixels(seen))
        moment = time.time()
        now = time.gmtime(moment)
        # to the microsecond, so that names sort in the order the corrections came; the random part
        # keeps two in the same microsecond (two server processes) apart
        name = (f"{time.strftime('%Y%m%dT%H%M%S', now)}.{int(moment % 1 * 1e6):06d}Z-"
                f"{secrets.token_hex(4)}")
        record = {"format": FORMAT, "version": 1, "label": label, "read_as": read_as,
                  "confidence": None if confidence is None else round(float(confidence), 4),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", now), "source": source[:80],
                  "model": model[:200], "seen": name + SEEN_SUFFIX, "drawn": name + DRAWN_SUFFIX,
                  "numbre_version": __version__}
        record_bytes = (json.dumps(record, indent=1) + "\n").encode()
        adding = len(drawn_png) + len(seen_png) + len(record_bytes)
        with self._lock:
            usage = self.usage()
            if usage.count + 1 > self.limits.max_count:
                raise CorrectionsFull(
                    f"the corrections folder is full: it holds {usage.count:,} corrections, its limit; "
                    "train with them, then move them elsewhere, or raise the limit (--corrections-max-count)")
            if usage.bytes + adding > self.limits.max_bytes:
                raise CorrectionsFull(
                    f"the corrections folder is full: it holds {usage.bytes:,} bytes and this correction "
                    f"needs {adding:,} more, over its {self.limits.max_bytes:,} byte limit; train with "
                    "them, then move them elsewhere, or raise the limit (--corrections-max-bytes)")
            written: list[Path] = []
            try:
                for suffix, data in ((SEEN_SUFFIX, seen_png), (DRAWN_SUFFIX, drawn_png),
                                     (RECORD_SUFFIX, record_bytes)):  # the record last: it makes it count
                    path = self.folder / (name + suffix)
                    atomic_write(path, data)
                    written.append(path)
            except BaseException as error:
                for path in written:
                    with contextlib.suppress(OSError):
                        path.unlink()
                if isinstance(error, NumbreError):
                    raise CorrectionNotSaved(f"the correction was not kept: {error}") from None
                raise
        return Correction(name, label, read_as, record["created"], record["source"], adding)


def read_corrections(folder: Path) -> list[Correction]:
    """The complete corrections in `folder`, oldest first; a record that is not one is a DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no corrections folder at {folder}; give the folder `numbre serve --corrections` "
                        "or `numbre draw --corrections` saved into")
    found = []
    for path in sorted(folder.glob("*" + RECORD_SUFFIX)):
        name = path.name[: -len(RECORD_SUFFIX)]
        if not NAME.match(name):
            continue  # not a file this module wrote (a note, an export): left alone
        record = _record(path)
        files = [folder / (name + suffix) for suffix in (SEEN_SUFFIX, DRAWN_SUFFIX)]
        if not files[0].is_file():
            raise DataError(f"{path} names {files[0].name}, which is missing; delete {path.name} "
                            "or put the image back")
        size = path.stat().st_size + sum(file.stat().st_size for file in files if file.is_file())
        read_as = record.get("read_as")
        found.append(Correction(name, record["label"], read_as if isinstance(read_as, int) else None,
                                str(record.get("created", "")), str(record.get("source", "")), size))
    return found


def _record(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ValueError("too large")
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError("not a numbre correction")
        check_label(record.get("label"))
    except (OSError, ValueError, NumbreError) as error:
        raise DataError(f"{path} is not a readable correction record ({error}); delete it or move it "
                        "out of the corrections folder") from None
    return record


def load_corrections(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Correction]]:
    """(N, 28, 28) uint8 images as the network saw them, (N,) uint8 labels, and the corrections."""
    corrections = read_corrections(folder)
    images = np.zeros((len(corrections), 28, 28), np.uint8)
    for index, correction in enumerate(corrections):
        path = Path(folder) / (correction.name + SEEN_SUFFIX)
        try:
            with Image.open(path) as image:
                if image.size != (28, 28):
                    raise ValueError(f"it is {image.width}x{image.height}, not 28x28")
                images[index] = np.asarray(image.convert("L"))
        except (OSError, ValueError) as error:
            raise DataError(f"{path} is not a 28x28 image ({error}); delete its correction "
                            f"({correction.name}.json) or put the image back") from None
    labels = np.array([correction.label for correction in corrections], np.uint8)
    return images, labels, corrections


def summarise(corrections: list[Correction]) -> dict[str, Any]:
    """Counts per label and per (label, read as), bytes, and the first and last dates, for `data info`."""
    per_label = Counter(correction.label for correction in corrections)
    return {"count": len(corrections), "bytes": sum(correction.bytes for correction in corrections),
            "per_label": {digit: per_label.get(int(digit), 0) for digit in DIGITS},
            "read_as": Counter((correction.label, correction.read_as) for correction in corrections),
            "first": min((correction.created for correction in corrections), default=""),
            "last": max((correction.created for correction in corrections), default="")}
