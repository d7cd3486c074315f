"""The whole-number line model in ONNX form: its input, its output classes, CTC decoding; no torch.

The network (numbre.model.line_net) reads a line of ink scaled to HEIGHT px
and answers, for every STRIDE px column strip, a score per class: "blank"
(no new digit here), the digits 0-9, and "not a digit" (a scribble). Greedy
CTC decoding takes each strip's best class, merges runs of one class and drops
blanks: the number, with no cutting. Training (numbre.training.lines) and
reading (numbre.reading.line_reader) both use `line_input`, so the network
sees lines at reading time exactly as it saw them in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from numbre.errors import ModelFileError
from numbre.model.file import META_DIGEST, meta_digest
from numbre.model.onnx_model import (
    META_KEY,
    check_finite,
    initializer_digest,
    model_digest,
    parse_onnx,
    read_model_bytes,
    tensor_array,
)

HEIGHT = 32  # the network's input height
CONTENT = 28  # the ink's height inside it (2 px of background above and below)
STRIDE = 4  # input columns per output frame
PAD_X = 8  # background columns added at each end
MAX_WIDTH = 4096  # input columns at most: a line scaled wider is scaled down to fit
BLANK = 0
JUNK_CLASS = 11  # classes: blank, the digits 0-9 (1-10), "not a digit"
CLASSES = 12
DEFAULT_LINE_ONNX = Path(__file__).parents[1] / "pretrained" / "numbre-lines.onnx"
KIND = "ctc-line"
LINE_OPERATORS = frozenset({"Conv", "Relu", "MaxPool", "BatchNormalization", "Squeeze", "Transpose",
                            "Reshape", "Identity", "Constant", "Add"})


def alignable(width: int, labels: int) -> bool:
    """Whether CTC can align `labels` symbols to a network input `width` columns wide: it needs a
    frame per symbol and a blank between repeats, so two frames per label, and at least one label."""
    return labels > 0 and width // STRIDE >= 2 * labels


@dataclass(frozen=True)
class LineInput:
    """A line ready for the network and the way back from its columns to the ink map's."""

    image: np.ndarray  # (HEIGHT, W) float32, W a multiple of STRIDE
    scale: float  # network pixels per ink-map pixel
    x0: int  # ink-map column of the crop's left edge (network column PAD_X)
    y0: int
    y1: int

    def ink_column(self, column: float) -> float:
        """A network input column as an ink-map column."""
        return self.x0 + (column - PAD_X) / self.scale


def line_input(ink: np.ndarray, box: tuple[int, int, int, int]) -> LineInput:
    """The ink inside `box` (x0, y0, x1, y1), scaled to CONTENT px tall, padded to HEIGHT x (k * STRIDE).

    Shrinking uses Pillow's BOX filter (area average), enlarging BILINEAR, as
    preprocess does for digits.
    """
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(ink[y0:y1, x0:x1], np.float32)
    height, width = crop.shape
    scale = min(CONTENT / height, (MAX_WIDTH - 2 * PAD_X) / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(crop, "F").resize(size, Image.BOX if scale < 1 else Image.BILINEAR))
    total = -(-(size[0] + 2 * PAD_X) // STRIDE) * STRIDE
    image = np.zeros((HEIGHT, total), np.float32)
    top = (HEIGHT - size[1]) // 2
    image[top:top + size[1], PAD_X:PAD_X + size[0]] = np.clip(resized, 0.0, 1.0)
    return LineInput(image, scale, x0, y0, y1)


@dataclass(frozen=True)
class Token:
    """One decoded symbol: its class (1-10 a digit, JUNK_CLASS), frames and probability."""

    label: int
    first: int  # first frame of its run(s)
    last: int  # last frame
    peak: int  # the frame where it is most probable
    probability: float  # its probability at the peak
    digit_probabilities: tuple[float, ...]  # the ten digits' share of the peak frame, summing to 1

    @property
    def digit(self) -> int | None:
        return None if self.label == JUNK_CLASS else self.label - 1


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def greedy_decode(logits: np.ndarray) -> list[Token]:
    """(T, CLASSES) logits of one line -> its symbols: best class per frame, runs merged, blanks dropped.

    A class repeated with a blank between is two symbols ("11"); without one, it is one.
    """
    probabilities = softmax(np.asarray(logits, np.float64))
    best = probabilities.argmax(axis=1)
    tokens: list[Token] = []
    frame = 0
    frames = len(best)
    while frame < frames:
        label = int(best[frame])
        end = frame
        while end + 1 < frames and best[end + 1] == label:
            end += 1
        if label != BLANK:
            run = probabilities[frame:end + 1, label]
            peak = frame + int(run.argmax())
            digits = probabilities[peak, 1:11]
            share = digits / max(float(digits.sum()), 1e-12)
            tokens.append(Token(label, frame, end, peak, float(run.max()), tuple(float(p) for p in share)))
        frame = end + 1
    return tokens


class LineModel:
    """An ONNX line model checked like the digit models (digests, operators, finite weights)."""

    def __init__(self, path: Path, meta: dict[str, Any], session: Any) -> None:
        self.path = path
        self.meta = meta
        self.session = session

    @classmethod
    def load(cls, path: Path | str | None = None, threads: int = 1) -> LineModel:
        path = Path(path) if path is not None else DEFAULT_LINE_ONNX
        data = read_model_bytes(path)
        meta = verify_line_onnx(data, path)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own untyped errors for bad graphs
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ModelFileError(f"{path}: ONNX Runtime cannot run this model: {first_line}") from None
        return cls(path, meta, session)

    def logits(self, image: np.ndarray) -> np.ndarray:
        """(HEIGHT, W) float32 line -> (W // STRIDE, CLASSES) float32 logits."""
        batch = np.ascontiguousarray(image, np.float32)[None, None]
        return self.session.run(None, {"line": batch})[0][0]


def verify_line_onnx(data: bytes, path: Path | str) -> dict[str, Any]:
    """Parse `data`, check it is a sealed numbre line model with only the expected operators."""
    proto, props = parse_onnx(data, path)
    try:
        meta = json.loads(props[META_KEY])
    except (KeyError, ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise ModelFileError(f"{path} is not a numbre line model; write one with `numbre export-lines`")
    modified = f"{path} was modified after export: its {{}} do not match the checksum it records"
    if meta.get(META_DIGEST) != meta_digest(meta):
        raise ModelFileError(modified.format("metadata"))
    if meta.get("onnx_model_sha256") != model_digest(proto):
        raise ModelFileError(modified.format("graph and weights"))
    if initializer_digest(proto, path) != meta.get("onnx_weights_sha256"):
        raise ModelFileError(modified.format("weights"))
    if len(proto.functions) or len(proto.graph.node) > 200:
        raise ModelFileError(f"{path} is not shaped like a numbre line model")
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in LINE_OPERATORS:
            raise ModelFileError(f"{path} uses the operator {node.op_type[:60]}, which numbre line models "
                                 "do not use; refused before running it")
        for attribute in node.attribute:
            if attribute.name in ("kernel_shape", "pads", "strides") and any(abs(v) > 16
                                                                             for v in attribute.ints):
                raise ModelFileError(f"{path}: operator {node.op_type} has {attribute.name} "
                                     f"{list(attribute.ints)[:8]}, beyond any numbre line model")
    for tensor in proto.graph.initializer:
        tensor_array(tensor, path)
    check_finite(proto, f"{path} is refused")
    return meta

