"""Model files: weights in safetensors, everything needed to use and trace them in its metadata.

One `.safetensors` file per model. Its header's metadata holds, as JSON, the
architecture and its config, input normalisation, class names, the training
recipe and command, the data checksum, the test figures and the numbre
version, plus two SHA-256 digests, one of the weights and one of the
metadata itself, so a file changed anywhere after it was written is refused.
Loading parses a JSON header and raw arrays: nothing is unpickled, and torch is
not needed to read one.

Model files come from strangers too (a download, a colleague's run folder), so
every way a file can be wrong (truncated, bit-flipped, foreign, a header that
declares sizes it does not hold, metadata of the wrong types) ends in a
`ModelFileError` that names the file; tests/model/test_fuzz_modelfile.py feeds the
loader ten thousand mutated files to hold it to that. Digests prove a file
unchanged, not sound: weights holding NaN or infinity (a run that diverged,
or a file made to hurt) are refused when saved and when loaded, since such a
model answers NaN for every image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre.atomic import atomic_save
from numbre.errors import ModelFileError
from numbre.text import clip_text

FORMAT = "numbre-model"
FORMAT_VERSION = 2  # 2 added the metadata digest; version 1 files (no such digest) are still read
MAX_FILE_BYTES = 512 * 2**20  # numbre's largest model is a few MB
MAX_CLASSES = 1_000  # class names a model may declare; MNIST-style datasets have 10
META_DIGEST = "meta_sha256"  # required from format version 2; in version 1 files only weights are checked
DEFAULT_MODEL = Path(__file__).parents[1] / "pretrained" / "numbre-default.safetensors"


# Pixels are divided by 255; images are white ink on black, as MNIST stores them.
INPUT_SPEC = {"height": 28, "width": 28, "scale": 1 / 255, "ink": "light-on-dark"}


def first_non_finite(tensors: dict[str, np.ndarray]) -> str | None:
    """The name of the first floating-point tensor (in name order) holding NaN or infinity; None if
    every value is finite."""
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            return name
    return None


def non_finite_message(name: str, where: str) -> str:
    """What to say about a model whose tensor `name` holds NaN or infinity, found in `where`."""
    return (f"{where}: weight tensor {clip_text(name, 60)!r} holds NaN or infinite values, so the model "
            "would answer NaN for every image; retrain it (a lower learning rate, or resume from an "
            "earlier checkpoint) or use another model")


def weights_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the metadata (without this digest) as canonical JSON: sorted keys, default spacing.

    Canonical JSON, not the stored text, so the digest survives a re-encoding
    that changes nothing (key order, spacing) and catches any change of a value.
    """
    body = {key: value for key, value in meta.items() if key != META_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A loaded model file: its arrays and its metadata."""

    path: Path | None
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def architecture(self) -> str:
        return self.meta["architecture"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])


def save_model_file(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write tensors and metadata atomically; both digests are added to the metadata.

    A failed write (a full disk, a read-only folder) raises `NumbreError` and
    leaves the previous file at `path` as it was (see `numbre.atomic`). Weights
    holding NaN or infinity are refused (`ModelFileError`) and nothing is written.
    """
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    poisoned = first_non_finite(tensors)
    if poisoned is not None:
        raise ModelFileError(non_finite_message(poisoned, f"{path} was not written"))
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "weights_sha256": weights_digest(tensors)}
    meta[META_DIGEST] = meta_digest(meta)
    header = {"numbre": json.dumps(meta, sort_keys=True)}
    atomic_save(Path(path), lambda temp: _write_safetensors(temp, tensors, header))


def _write_safetensors(temp: Path, tensors: dict[str, np.ndarray], header: dict[str, str]) -> None:
    """safetensors' writer, with its I/O failures raised as the OSError they are.

    The Rust writer reports a full disk as SafetensorError("... No space left on
    device (os error 28)"); as an OSError it reaches `numbre.atomic`, which removes
    the partial file and says the previous one is unchanged.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    try:
        save_file(tensors, str(temp), metadata=header)
    except SafetensorError as error:
        code = re.search(r"\(os error (\d+)\)", str(error))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1]))) from None


def load_model_file(path: Path | str | None = None) -> ModelFile:
    """Read and verify a model file; the shipped default model when `path` is None."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}; train one with `numbre train` "
                             "or leave the argument out to use the shipped model")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path} is {path.stat().st_size:,} bytes, too large to be a model file")
    header, tensors = _read_safetensors(path)
    if "numbre" not in header:
        raise ModelFileError(f"{path} is a safetensors file but not a numbre model "
                             "(it has no numbre metadata)")
    meta = _parse_meta(header["numbre"], path)
    if META_DIGEST in meta and meta_digest(meta) != meta[META_DIGEST]:
        raise ModelFileError(f"{path} was modified after it was written: "
                             "its metadata does not match the checksum it records")
    if weights_digest(tensors) != meta["weights_sha256"]:
        raise ModelFileError(f"{path} was modified after it was written: "
                             "its weights do not match the checksum it records")
    poisoned = first_non_finite(tensors)
    if poisoned is not None:
        raise ModelFileError(non_finite_message(poisoned, f"{path} is refused"))
    return ModelFile(path, tensors, meta)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The header metadata and every tensor; any failure of the parser is a ModelFileError.

    safetensors checks the header against the file before it reads a tensor
    (a declared length or offset beyond the file, a shape that does not match
    its byte range), so no allocation is larger than the file itself.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as reader:
            header = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}  # noqa: SIM118
    except Exception as error:  # the Rust parser raises its own error types for every kind of damage
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(
            f"{path} is not a readable model file (truncated, damaged or another format: "
            f"{first_line[:200]}); give a model file written by `numbre train` or a run folder"
        ) from None
    return header, tensors


def _parse_meta(text: str, path: Path) -> dict[str, Any]:
    """numbre's metadata from its JSON text, with the fields every model file must have, checked."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, over-long numbers, deep nesting
        raise ModelFileError(f"{path} has damaged metadata: {str(error)[:200]}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a numbre model file")
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{path} is model format version {str(version)[:20]}; "
                             f"this numbre reads versions 1 to {FORMAT_VERSION}: upgrade numbre")
    if version >= 2 and META_DIGEST not in meta:  # a damaged key name must not switch the check off
        raise ModelFileError(f"{path} metadata lacks {META_DIGEST!r}, which its format version records")
    for key in ("architecture", "class_names", "weights_sha256"):
        if key not in meta:
            raise ModelFileError(f"{path} metadata lacks {key!r}")
    for key in ("architecture", "weights_sha256", META_DIGEST):
        if key in meta and not isinstance(meta[key], str):
            raise ModelFileError(f"{path} has damaged metadata: {key!r} is not text")
    check_class_names(meta["class_names"], path)
    return meta


def check_class_names(names: Any, path: Path | str) -> None:
    """Refuse class names that are not a list of 1 to MAX_CLASSES strings (ONNX files share the rule)."""
    if (not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES
            or not all(isinstance(name, str) for name in names)):
        raise ModelFileError(f"{path} has damaged metadata: its class names are not a list of "
                             f"1 to {MAX_CLASSES:,} texts")
