"""Model files: weights in safetensors, everything needed to use and trace them in its metadata.

One `.safetensors` file per model. Its header's metadata holds, as JSON, the
architecture and its config, input normalisation, class names, the training
recipe and command, the data checksum, the test figures and the numbre
version, plus a SHA-256 of the weights so a changed file is refused. Loading
parses a JSON header and raw arrays: nothing is unpickled, and torch is not
needed to read one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre.atomic import atomic_save
from numbre.errors import ModelFileError

FORMAT = "numbre-model"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 512 * 2**20  # numbre's largest model is a few MB
DEFAULT_MODEL = Path(__file__).parent / "pretrained" / "numbre-default.safetensors"

# Pixels are divided by 255; images are white ink on black, as MNIST stores them.
INPUT_SPEC = {"height": 28, "width": 28, "scale": 1 / 255, "ink": "light-on-dark"}


def weights_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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
    """Write tensors and metadata atomically; the weights digest is added to the metadata."""
    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(array) for name, array in tensors.items()}
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "weights_sha256": weights_digest(tensors)}
    header = {"numbre": json.dumps(meta, sort_keys=True)}
    atomic_save(Path(path), lambda temp: save_file(tensors, str(temp), metadata=header))


def load_model_file(path: Path | str | None = None) -> ModelFile:
    """Read and verify a model file; the shipped default model when `path` is None."""
    from safetensors import SafetensorError, safe_open

    path = Path(path) if path is not None else DEFAULT_MODEL
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}; train one with `numbre train` "
                             "or leave the argument out to use the shipped model")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path} is {path.stat().st_size:,} bytes, too large to be a model file")
    try:
        with safe_open(str(path), framework="numpy") as reader:
            header = reader.metadata() or {}
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        raise ModelFileError(
            f"{path} is not a readable model file (truncated, damaged or another format): {error}"
        ) from None
    if "numbre" not in header:
        raise ModelFileError(f"{path} is a safetensors file but not a numbre model "
                             "(it has no numbre metadata)")
    try:
        meta = json.loads(header["numbre"])
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} has damaged metadata: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a numbre model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} is model format version {meta.get('format_version')}; "
                             f"this numbre reads version {FORMAT_VERSION}: upgrade numbre")
    for key in ("architecture", "class_names", "weights_sha256"):
        if key not in meta:
            raise ModelFileError(f"{path} metadata lacks {key!r}")
    if weights_digest(tensors) != meta["weights_sha256"]:
        raise ModelFileError(f"{path} was modified after it was written: "
                             "its weights do not match the checksum it records")
    return ModelFile(path, tensors, meta)
