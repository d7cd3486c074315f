"""A numbre model in ONNX form, run by ONNX Runtime: the inference path, without torch.

Loading checks, before ONNX Runtime sees the bytes, that the file is a size a
model can have, parses as ONNX, carries numbre's metadata and still holds the
weights it was exported with (a SHA-256 over its initializers). Any failure is
a ModelFileError that names the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre.errors import ModelFileError

META_KEY = "numbre"
MAX_ONNX_BYTES = 256 * 2**20
DEFAULT_ONNX = Path(__file__).parent / "pretrained" / "numbre-default.onnx"


def initializer_digest(proto) -> str:
    """SHA-256 over every initializer's name, type, shape and bytes, in name order."""
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for tensor in sorted(proto.graph.initializer, key=lambda item: item.name):
        array = np.ascontiguousarray(numpy_helper.to_array(tensor))
        digest.update(f"{tensor.name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


SMALL_BATCH = 16  # up to this many images, one thread is faster than waking a thread pool


@dataclass
class OnnxModel:
    """ONNX Runtime sessions with the model's metadata; `logits` maps (N, 28, 28) to (N, classes).

    Small batches (one drawing, one request) run on a single-threaded session,
    which answers fastest; large batches run on a session using every core.
    """

    path: Path | None
    meta: dict[str, Any]
    data: bytes
    threads: int
    single: Any  # the one-thread session
    pooled: Any = None  # the all-cores session, made on the first large batch

    @classmethod
    def load(cls, path: Path | str | None = None, threads: int | None = None) -> OnnxModel:
        path = Path(path) if path is not None else DEFAULT_ONNX
        data = read_model_bytes(path)
        meta = verify_onnx(data, path)
        single = _session(data, 1, path)
        inputs = single.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 28, 28]:
            raise ModelFileError(f"{path} does not take one (N, 1, 28, 28) image input; "
                                 "it is not a numbre model")
        return cls(path, meta, data, threads or min(4, os.cpu_count() or 1), single)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1], white ink on black -> (N, classes) float32 logits."""
        batch = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, 1, 28, 28)
        session = self.single
        if len(batch) > SMALL_BATCH and self.threads > 1:
            if self.pooled is None:
                self.pooled = _session(self.data, self.threads, self.path)
            session = self.pooled
        return session.run(None, {"image": batch})[0]


def _session(data: bytes, threads: int, path: Path | None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are not the user's concern
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime raises its own untyped errors for bad graphs
        raise ModelFileError(f"{path}: ONNX Runtime cannot run this model: {error}") from None


def read_model_bytes(path: Path) -> bytes:
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise ModelFileError(f"no ONNX model at {path}; write one with `numbre export MODEL -o {path}`")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelFileError(f"{path} is {size:,} bytes, too large to be a numbre model")
    return path.read_bytes()


def verify_onnx(data: bytes, path: Path | str) -> dict[str, Any]:
    """Parse `data` as ONNX, check numbre's metadata and the weights digest; return the metadata."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path} is not an ONNX file (truncated, damaged or another format): "
                             f"{error}") from None
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if META_KEY not in props:
        raise ModelFileError(f"{path} is an ONNX file but not a numbre model (no numbre metadata); "
                             "export one with `numbre export`")
    try:
        meta = json.loads(props[META_KEY])
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path} has damaged metadata: {error}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("class_names"), list):
        raise ModelFileError(f"{path} has numbre metadata without its class names")
    try:
        digest = initializer_digest(proto)
    except Exception as error:  # onnx raises assorted errors for malformed tensors
        raise ModelFileError(f"{path} holds malformed weights: {error}") from None
    if digest != meta.get("onnx_weights_sha256"):
        raise ModelFileError(f"{path} was modified after export: its weights do not match the "
                             "checksum it records")
    return meta
