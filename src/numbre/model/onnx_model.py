"""A numbre model in ONNX form, run by ONNX Runtime: the inference path, without torch.

Loading checks, before ONNX Runtime sees the bytes, that the file is a size a
model can have, parses as ONNX, carries numbre's metadata and is the file it
was exported as: a SHA-256 of the metadata, of the whole model without it, and
of its initializers (files exported before the first two existed carry only
the last). A digest proves the file unchanged, not harmless: anyone can write a
file with matching digests. So the graph must also be one numbre's exports
make: operators from a fixed list (none whose output size comes from data,
which ONNX Runtime would fold into a tensor of any size while loading), small
windows and paddings, no external data (a path ONNX Runtime would read), no
subgraphs or functions, and no weight or constant holding NaN or infinity
(which would make every answer NaN). Any failure is a ModelFileError that
names the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre.errors import ModelFileError
from numbre.model.file import (
    META_DIGEST,
    check_class_names,
    first_non_finite,
    meta_digest,
    non_finite_message,
)

META_KEY = "numbre"
MAX_ONNX_BYTES = 256 * 2**20
DEFAULT_ONNX = Path(__file__).parents[1] / "pretrained" / "numbre-default.onnx"
SEVEN_BIT_WEIGHTS = "7-bit weights"  # in the "quantized" metadata of int8 exports whose sums cannot saturate

# What torch's exporter writes for the registered models, what ONNX Runtime's int8 quantiser
# turns it into, and a few plain layers a future model may add. Every one of them makes an
# output no larger than its inputs times a window; operators that size their output from data
# (ConstantOfShape, Expand, Tile, Range, Resize, Pad, OneHot) or run subgraphs (If, Loop, Scan)
# are not here.
OPERATORS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div",
    "Dropout", "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "LeakyRelu",
    "LogSoftmax", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Sigmoid", "Softmax", "Squeeze",
    "Sub", "Tanh", "Transpose", "Unsqueeze",
    "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QGemm",
    "QLinearAdd", "QLinearAveragePool", "QLinearConv", "QLinearGlobalAveragePool",
    "QLinearLeakyRelu", "QLinearMatMul", "QLinearMul", "QLinearSigmoid", "QuantizeLinear",
})
DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})  # com.microsoft: ONNX Runtime's int8 kernels
WINDOW_ATTRIBUTES = frozenset({"kernel_shape", "pads", "strides", "dilations"})
MAX_WINDOW = 64  # inputs are 28x28: a larger kernel, stride or padding is no numbre model's
MAX_NODES = 10_000
# ONNX element types read straight from raw bytes (little-endian), as onnx.numpy_helper reads them.
PLAIN_TYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
               7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
# Small tensors (the int8 model's scales and zero points) keep their values in typed fields instead.
TYPED_FIELDS = {1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data", 5: "int32_data",
                6: "int32_data", 7: "int64_data", 9: "int32_data", 11: "double_data"}
REJECTION_NUMBERS = ("temperature", "min_confidence", "max_not_a_digit", "max_ink", "max_stroke")


def initializer_digest(proto, path: Path | str = "the model") -> str:
    """SHA-256 over every initializer's name, type, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for tensor in sorted(proto.graph.initializer, key=lambda item: item.name):
        array = np.ascontiguousarray(tensor_array(tensor, path))
        digest.update(f"{tensor.name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def model_digest(proto) -> str:
    """SHA-256 of the model serialized deterministically, without numbre's metadata entry."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    others = [entry for entry in copy.metadata_props if entry.key != META_KEY]
    del copy.metadata_props[:]
    copy.metadata_props.extend(others)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def seal_onnx(proto, meta: dict[str, Any]) -> None:
    """Store `meta` in `proto` under "numbre" with the digests `verify_onnx` checks (in place).

    The last step of an export: nothing in `proto` may change afterwards.
    """
    meta = {key: value for key, value in meta.items() if key not in ("weights_sha256", META_DIGEST)}
    others = [entry for entry in proto.metadata_props if entry.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(others)
    meta["onnx_weights_sha256"] = initializer_digest(proto)
    meta["onnx_model_sha256"] = model_digest(proto)
    meta[META_DIGEST] = meta_digest(meta)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)


def tensor_array(tensor, path: Path | str) -> np.ndarray:
    """A TensorProto's values, refusing external data and sizes the stored bytes do not hold.

    Read here, not by onnx.numpy_helper, which would follow an external-data path
    to a file on disk. The arrays are the same: the shipped model, whose digest
    was computed with numpy_helper, verifies.
    """
    from onnx import TensorProto, numpy_helper

    name = tensor.name or "a constant"
    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        raise ModelFileError(f"{path}: tensor {name[:60]!r} keeps its data in another file; "
                             "numbre models hold all their weights")
    if any(size < 0 for size in tensor.dims):
        raise ModelFileError(f"{path}: tensor {name[:60]!r} has a negative size")
    count = math.prod(tensor.dims)
    dtype = PLAIN_TYPES.get(tensor.data_type)
    if tensor.HasField("raw_data") and dtype is not None and sys.byteorder == "little":
        if len(tensor.raw_data) != count * np.dtype(dtype).itemsize:
            raise ModelFileError(f"{path}: tensor {name[:60]!r} declares {count:,} values but holds "
                                 f"{len(tensor.raw_data):,} bytes")
        return np.frombuffer(tensor.raw_data, dtype).reshape(tuple(tensor.dims))
    field = TYPED_FIELDS.get(tensor.data_type)
    if field is not None and not tensor.HasField("raw_data"):
        values = getattr(tensor, field)
        if len(values) != count:
            raise ModelFileError(f"{path}: tensor {name[:60]!r} declares {count:,} values but holds "
                                 f"{len(values):,}")
        storage = {"int32_data": np.int32, "int64_data": np.int64}.get(field, dtype)
        return np.asarray(values, storage).astype(dtype, copy=False).reshape(tuple(tensor.dims))
    if count > MAX_ONNX_BYTES * 2:  # no encoding stores more than two values a byte
        raise ModelFileError(f"{path}: tensor {name[:60]!r} declares {count:,} values")
    try:
        return numpy_helper.to_array(tensor)
    except Exception as error:  # onnx raises assorted errors for malformed tensors
        raise ModelFileError(f"{path}: tensor {name[:60]!r} is malformed: "
                             f"{str(error).splitlines()[0][:200] if str(error) else error!r}") from None


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
        exact = SEVEN_BIT_WEIGHTS not in str(meta.get("quantized", SEVEN_BIT_WEIGHTS))
        single = _session(data, 1, path, exact_int8=exact)
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
                exact = SEVEN_BIT_WEIGHTS not in str(self.meta.get("quantized", SEVEN_BIT_WEIGHTS))
                self.pooled = _session(self.data, self.threads, self.path, exact_int8=exact)
            session = self.pooled
        return session.run(None, {"image": batch})[0]


def _session(data: bytes, threads: int, path: Path | None, *, exact_int8: bool = False):
    """An ONNX Runtime session; `exact_int8` for int8 files with full 8-bit weights (see below)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are not the user's concern
    # On x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime multiplies unsigned by signed
    # 8-bit values through 16-bit sums that saturate: measured on an AVX2 EPYC, MNIST test accuracy
    # 99.47% against 99.64%, and small drawings misread. `numbre export --int8` now writes 7-bit
    # weights, whose sums fit; for older files with 8-bit weights this setting takes the exact u8u8
    # kernels there (one image 0.103 -> 0.127 ms) and changes nothing on other CPUs.
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime raises its own untyped errors for bad graphs
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelFileError(f"{path}: ONNX Runtime cannot run this model: {first_line}") from None


def read_model_bytes(path: Path) -> bytes:
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise ModelFileError(f"no ONNX model at {path}; write one with `numbre export MODEL -o {path}`")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelFileError(f"{path} is {size:,} bytes, too large to be a numbre model")
    return path.read_bytes()


def parse_onnx(data: bytes, path: Path | str) -> tuple[Any, dict[str, str]]:
    """`data` as an ONNX model proto and its metadata properties; a one-line error for other bytes."""
    import onnx

    try:
        proto = onnx.load_from_string(data)
    except Exception as error:  # protobuf's DecodeError, or whatever onnx makes of odd bytes
        raise ModelFileError(f"{path} is not an ONNX file (truncated, damaged or another format): "
                             f"{str(error)[:200]}") from None
    return proto, {entry.key: entry.value for entry in proto.metadata_props}


def verify_onnx(data: bytes, path: Path | str) -> dict[str, Any]:
    """Parse `data` as ONNX, check numbre's metadata, the digests and the graph; return the metadata."""
    proto, props = parse_onnx(data, path)
    if META_KEY not in props:
        raise ModelFileError(f"{path} is an ONNX file but not a numbre model (no numbre metadata); "
                             "export one with `numbre export`")
    meta = _parse_meta(props[META_KEY], path)
    modified = f"{path} was modified after export: its {{}} do not match the checksum it records"
    sealed = [key for key in (META_DIGEST, "onnx_model_sha256") if key in meta]
    if len(sealed) == 1:  # exports write both or neither: a damaged key name must not switch a check off
        raise ModelFileError(f"{path} records {sealed[0]!r} without its companion digest; "
                             "the file is damaged")
    if META_DIGEST in meta and meta[META_DIGEST] != meta_digest(meta):
        raise ModelFileError(modified.format("metadata"))
    if "onnx_model_sha256" in meta and meta["onnx_model_sha256"] != model_digest(proto):
        raise ModelFileError(modified.format("graph and weights"))
    _check_structure(proto, meta, path)
    if initializer_digest(proto, path) != meta.get("onnx_weights_sha256"):
        raise ModelFileError(modified.format("weights"))
    check_finite(proto, f"{path} is refused")
    return meta


def check_finite(proto, where: str) -> None:
    """Refuse a graph whose initializers or constants hold NaN or infinity, naming the first one."""
    from onnx import AttributeProto

    tensors = {tensor.name: tensor_array(tensor, where) for tensor in proto.graph.initializer}
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.type in (AttributeProto.TENSOR, AttributeProto.TENSORS):
                many = attribute.type == AttributeProto.TENSORS
                for index, tensor in enumerate(attribute.tensors if many else (attribute.t,)):
                    label = f"{node.name or node.op_type}.{attribute.name}[{index}]"
                    tensors[label] = tensor_array(tensor, where)
    poisoned = first_non_finite(tensors)
    if poisoned is not None:
        raise ModelFileError(non_finite_message(poisoned, where))


def _parse_meta(text: str, path: Path | str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, over-long numbers, deep nesting
        raise ModelFileError(f"{path} has damaged metadata: {str(error)[:200]}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("class_names"), list):
        raise ModelFileError(f"{path} has numbre metadata without its class names")
    check_class_names(meta["class_names"], path)
    if "rejection" in meta and not _is_rejection_policy(meta["rejection"]):
        raise ModelFileError(f"{path} has damaged metadata: its rejection policy needs finite "
                             "numbers and a positive temperature")
    return meta


def _is_rejection_policy(policy: Any) -> bool:
    """Whether `policy` can become a `numbre.model.rejection.Rejector` that computes with numbers."""
    if not isinstance(policy, dict):
        return False
    numbers = [policy.get(key, 1.0) for key in REJECTION_NUMBERS]
    return all(isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
               for value in numbers) and numbers[0] > 0


def _check_structure(proto, meta: dict[str, Any], path: Path | str) -> None:
    """Refuse graphs numbre never exports, before ONNX Runtime builds (and constant-folds) them."""
    from onnx import AttributeProto

    graph = proto.graph
    if len(proto.functions) or len(proto.training_info) or len(graph.sparse_initializer):
        raise ModelFileError(f"{path} holds functions, training steps or sparse weights; "
                             "numbre models have none")
    if len(graph.node) > MAX_NODES:
        raise ModelFileError(f"{path} has {len(graph.node):,} operators; numbre models have a few dozen")
    tensor_types = (AttributeProto.TENSOR, AttributeProto.TENSORS)
    for node in graph.node:
        if node.domain not in DOMAINS or node.op_type not in OPERATORS:
            raise ModelFileError(f"{path} uses the operator {node.domain or 'ai.onnx'}.{node.op_type[:60]}, "
                                 "which numbre models do not use; refused before running it")
        for attribute in node.attribute:
            if attribute.type not in (*tensor_types, AttributeProto.INT, AttributeProto.INTS,
                                      AttributeProto.FLOAT, AttributeProto.FLOATS,
                                      AttributeProto.STRING, AttributeProto.STRINGS):
                raise ModelFileError(f"{path}: operator {node.op_type} has a {attribute.name[:60]!r} "
                                     "attribute holding a graph or a sparse tensor; numbre models "
                                     "have none")
            for tensor in (attribute.t, *attribute.tensors) if attribute.type in tensor_types else ():
                tensor_array(tensor, path)
            if attribute.name in WINDOW_ATTRIBUTES and any(abs(value) > MAX_WINDOW
                                                           for value in attribute.ints):
                raise ModelFileError(f"{path}: operator {node.op_type} has {attribute.name} "
                                     f"{list(attribute.ints)[:8]}, far beyond a 28x28 image")
    _check_signature(proto, meta, path)


def _check_signature(proto, meta: dict[str, Any], path: Path | str) -> None:
    """One float (N, 1, 28, 28) input called "image"; one output with a logit per class."""
    graph = proto.graph
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    shape = [dim.dim_value or dim.dim_param for dim in inputs[0].type.tensor_type.shape.dim] if inputs else []
    if (len(inputs) != 1 or inputs[0].name != "image" or inputs[0].type.tensor_type.elem_type != 1
            or shape[1:] != [1, 28, 28]):
        raise ModelFileError(f"{path} does not take one (N, 1, 28, 28) float input called 'image'; "
                             "it is not a numbre model")
    outputs = list(graph.output)
    dims = outputs[0].type.tensor_type.shape.dim if len(outputs) == 1 else []
    if len(outputs) != 1 or (len(dims) == 2 and dims[1].dim_value
                             and dims[1].dim_value != len(meta["class_names"])):
        raise ModelFileError(f"{path} does not give one logit per class of its "
                             f"{len(meta['class_names'])} class names")
