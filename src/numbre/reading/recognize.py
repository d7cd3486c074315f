"""The Recognizer: images in, digits out, for every front end (library, CLI, HTTP API, windows).

    from numbre import Recognizer
    recognizer = Recognizer.load()            # the shipped model; or Recognizer.load("model.onnx")
    recognizer.predict("digit.png").digit     # 7, or None with a reason
    recognizer.read("number.jpg").number      # "2024"

Every image goes through `numbre.reading.preprocess` (the one pipeline) and the model
runs in ONNX Runtime, so nothing here needs torch. A prediction names a digit
only when it should be trusted: a blank image is "empty", several digits
given to `predict` are "several digits" (use `read`), and an image the model
does not recognise as a digit is "not a digit" (see `numbre.model.rejection`).

Every number handed out is finite: a model that answers NaN or infinity (its
weights overflow; weights that hold NaN are refused when the file loads) raises
`ModelFileError` for that image instead, so JSON never carries a bare NaN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from numbre.errors import ModelFileError
from numbre.model.line_model import DEFAULT_LINE_ONNX, LineModel
from numbre.model.onnx_model import DEFAULT_ONNX, OnnxModel
from numbre.model.rejection import NOT_A_DIGIT, Rejector
from numbre.reading.images import ImageSource
from numbre.reading.line_reader import read_tokens
from numbre.reading.preprocess import SIDE, InkMap, center_ink, ink_map
from numbre.reading.read_line import read_line
from numbre.reading.segment import count_digits
from numbre.text import clip_text

Box = tuple[int, int, int, int]

EMPTY = "empty"
SEVERAL = "several digits"
# A digit whose ink falls apart into pieces (a gap in a stroke) still counts as one when the
# network reads it as one digit at least this surely. Measured on 3,000 MNIST test digits plus
# 1,000 drawn ones and 400 drawn numbers of 2-3 digits: pieces alone call 3.3% of single digits
# "several"; with this check 0.2%, while 97% of the numbers are still called "several digits".
SURE_ALONE = 0.9
# `read` takes the line model's number without also cutting the line into digits when its least sure
# digit is at least this probable; below it, both readers read and the surer one's number is kept.
# Chosen on 240 drawn lines of MNIST test digits (seed 21, not the benchmark's): see docs/model-card.md.
LINE_SURE = 0.98
# When only the line model reads a number, an unsure digit of it that the digit model finds more
# likely no digit than the digit model's threshold allows (its "not a digit" class above this)
# makes the number doubted, and the cutting reader's refusal stands. Any rejection by the digit
# model used to (a low confidence, or "not a digit" above 0.044): a broken or oddly written digit
# was then refused with its line. Chosen on dev lines only (drawn MNIST test digits, seeds 21 and
# 22; synthesised training-part writers with a band beyond both splits, seeds 350 and 351; 600
# lines each) against scribbles among digits (600 lines, seeds 31, 41 and 51): numbers read 1,053
# -> 1,058 and 1,025 -> 1,046 of 1,200, scribble lines read as a number 26 -> 31 of 600; 0.5 read
# 1,063 and 1,055 but let 36 scribble lines through (every threshold from 0.1 to 0.7 measured:
# docs/model-card.md).
DOUBT_NOT_A_DIGIT = 0.2


def _least_sure(reading: Reading) -> float:
    return min((digit.confidence for digit in reading.digits), default=0.0)


@dataclass(frozen=True)
class Prediction:
    """One image read as one digit, or `digit=None` with the reason."""

    digit: int | None
    confidence: float  # the calibrated probability of the named (or most likely) class
    probabilities: tuple[float, ...]  # one per class, summing to 1 (all zero for an empty image)
    _image: np.ndarray | Callable[[], np.ndarray] = field(repr=False)  # `image`, or what makes it
    box: Box | None = None  # (x0, y0, x1, y1) of the ink in the input, x1/y1 exclusive
    reason: str | None = None  # "empty", "several digits" or "not a digit" when digit is None

    @functools.cached_property
    def image(self) -> np.ndarray:
        """(28, 28) float32: what the network saw, the digit's ink placed as MNIST placed digits.

        A digit the line model read surely was never shown to the digit network; its image is made
        only when someone looks (the page's 28x28 view, `image=1`), not on every reading.
        """
        return self._image() if callable(self._image) else self._image

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by `numbre predict --json` and `POST /api/predict`."""
        result: dict[str, Any] = {"digit": self.digit, "confidence": _finite(self.confidence),
                                  "probabilities": [_finite(p) for p in self.probabilities]}
        if self.reason is not None:
            result["reason"] = self.reason
        return result


@dataclass(frozen=True)
class Reading:
    """A written number: its digits left to right; `number` is None when one of them is unreadable."""

    number: str | None
    digits: tuple[Prediction, ...]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by `numbre read --json` and `POST /api/read`."""
        digits = []
        for digit in self.digits:
            entry: dict[str, Any] = {"digit": digit.digit, "confidence": _finite(digit.confidence),
                                     "box": list(digit.box) if digit.box else None}
            if digit.reason is not None:
                entry["reason"] = digit.reason
            digits.append(entry)
        result: dict[str, Any] = {"number": self.number, "digits": digits}
        if self.reason is not None:
            result["reason"] = self.reason
        return result


def _finite(value: float) -> float:
    """`value` rounded for JSON; NaN or infinity is refused, since JSON has no such numbers."""
    if not math.isfinite(value):
        raise ModelFileError(f"the model gave a probability of {value}; its weights are damaged: "
                             "use another model, such as the shipped one")
    return round(value, 6)


class Recognizer:
    """A model plus the rules for trusting it; cheap to call, safe to share between threads."""

    def __init__(self, model: OnnxModel, line_model: LineModel | None = None) -> None:
        names = model.class_names
        if not (len(names) == 10 or (len(names) == 11 and names[10] == NOT_A_DIGIT)):
            shown = ", ".join(clip_text(name, 40) for name in names[:4])
            raise ModelFileError(f"{model.path} tells {len(names)} classes apart ({shown}, "
                                 "...); reading images needs a model of ten classes (such as the digits "
                                 f"0-9), with or without {NOT_A_DIGIT!r}. Measure this one with numbre "
                                 "evaluate")
        self.model = model
        self.class_names = names[:10]
        self.rejector = Rejector.from_meta(model.meta)
        self.line_model = line_model  # reads whole numbers in one pass (`read`); None: by cutting alone

    @classmethod
    def load(cls, path: Path | str | None = None, *, threads: int | None = None,
             lines: Path | str | bool | None = None) -> Recognizer:
        """The shipped model, an ONNX file, or a model file / run folder (exported on first use).

        `lines`: the line model `read` uses (True: the shipped one, when installed; False: none, numbers
        are then cut into digits by `numbre.reading.read_line` alone; or an ONNX file of
        `numbre train-lines`). None (the default) pairs the shipped line model with the shipped digit
        model only: a model of your own then reads numbers alone, so what you measure is your model.
        """
        where = line_model_path(path, lines)
        line_model = LineModel.load(where) if where is not None else None
        return cls(OnnxModel.load(resolve_onnx(path), threads=threads), line_model)

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.meta

    # --- one digit -------------------------------------------------------------------------
    def predict(self, image: ImageSource) -> Prediction:
        """Read `image` as a single digit."""
        return self._predict_maps([ink_map(image)])[0]

    def predict_batch(self, images: Iterable[ImageSource]) -> list[Prediction]:
        """`predict` for many images, with one network call for all of them."""
        return self._predict_maps([ink_map(image) for image in images])

    def _predict_maps(self, maps: Sequence[InkMap]) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(maps)
        images, where, boxes = [], [], []
        for index, found in enumerate(maps):
            if found.empty:
                results[index] = self._empty()
                continue
            images.append(center_ink(found.ink, box=found.box))
            where.append(index)
            boxes.append(found.input_box(found.box))
        if images:
            batch = np.stack(images) if len(images) > 1 else images[0][None]  # one image: no copy
            for index, prediction in zip(where, self._classify(batch, boxes), strict=True):
                sure = prediction.digit is not None and prediction.confidence >= SURE_ALONE
                if not sure and count_digits(maps[index].ink) > 1:
                    # The ink falls apart into digit-sized pieces and the network does not read it
                    # confidently as one digit: several digits, not a broken one (see SURE_ALONE).
                    # Counted only when unsure: cutting touching digits apart is the costly part.
                    prediction = Prediction(None, 0.0, (0.0,) * 10, prediction.image, prediction.box,
                                            SEVERAL)
                results[index] = prediction
        return [result for result in results if result is not None]

    # --- a whole number --------------------------------------------------------------------
    def read(self, image: ImageSource) -> Reading:
        """Read one line of written digits, any count, left to right.

        The line model (`numbre.reading.line_reader`) reads the whole line in one
        pass, no cutting. When it is unsure of a digit (LINE_SURE), the line is also
        cut into digits where the digit network reads the pieces best
        (`numbre.reading.read_line`), and the reading whose least sure digit is
        surer wins. Ink the line model calls "not a digit" makes the number
        unreadable, as does a piece the cutting reader rejects when neither reads
        a number.
        """
        found = ink_map(image)
        if found.empty:
            return Reading(None, (), EMPTY)
        if self.line_model is None:
            return self._read_by_cutting(found)
        whole, doubted = self._read_in_one_pass(found)
        if whole is not None and whole.number is not None and _least_sure(whole) >= LINE_SURE:
            return whole  # read surely in one pass: no cutting needed
        cut = self._read_by_cutting(found)
        if whole is None or (whole.number is None and cut.number is None):
            return cut  # neither reads a number: the cutting reader's digits say which ink is no digit
        if whole.number is None:
            return whole  # the line model saw ink that is no digit (a scribble)
        if cut.number is None:
            # Only the line model reads a number. An unsure digit of it that the digit model finds
            # more likely no digit is a scribble read as digits: the cutting reader's refusal stands.
            return cut if doubted else whole
        return whole if _least_sure(whole) >= _least_sure(cut) else cut

    def _read_in_one_pass(self, found: InkMap) -> tuple[Reading | None, bool]:
        """The line model's reading (see `numbre.reading.line_reader`), each digit's box cut out for
        what the network saw, or None when the line model sees no symbol in the ink; and whether the
        digit model finds the box of a digit the line model read less surely than LINE_SURE more likely
        no digit (DOUBT_NOT_A_DIGIT)."""
        line = read_tokens(found, self.line_model)
        if not line.tokens:
            return None, False
        unsure = [index for index, token in enumerate(line.tokens) if token.probability < LINE_SURE]
        # Placing a digit MNIST's way costs a quarter of reading a line: done now only for the digits
        # the digit model checks, for the others when their image is asked for.
        images = {index: center_ink(found.ink, box=line.boxes[index]) for index in unsure}
        made = [images[index] if index in images else functools.partial(center_ink, found.ink, box=box)
                for index, box in enumerate(line.boxes)]
        digits = tuple(
            Prediction(token.digit, token.probability, token.digit_probabilities, image, found.input_box(box),
                       NOT_A_DIGIT if token.digit is None else None)
            for token, image, box in zip(line.tokens, made, line.boxes, strict=True))
        doubted = False
        if unsure:  # the digit model looks only at digits the line model is unsure of
            checked_images = np.stack([images[index] for index in unsure])
            logits = self._logits(checked_images)
            not_a_digit = self.rejector.not_a_digit(logits)
            if not_a_digit is not None:
                doubted = bool((not_a_digit > DOUBT_NOT_A_DIGIT).any())
            else:  # a model without a "not a digit" class: any rejection of it
                doubted = any(check.reason is not None for check in self._decide(logits, checked_images))
        if any(digit.digit is None for digit in digits):
            return Reading(None, digits, NOT_A_DIGIT), doubted
        return Reading("".join(str(digit.digit) for digit in digits), digits), doubted

    def _read_by_cutting(self, found: InkMap) -> Reading:
        line = read_line(found.ink, self._logits, self.rejector)
        if not line.boxes:
            return Reading(None, (), EMPTY)
        decided = self._decide(line.logits, line.images, [found.input_box(box) for box in line.boxes])
        # A digit cut out of touching ink and read unsurely is more likely a piece of a scribble.
        digits = tuple(replace(digit, digit=None, reason=NOT_A_DIGIT) if doubtful and digit.digit is not None
                       else digit for digit, doubtful in zip(decided, line.doubtful, strict=True))
        if any(digit.digit is None for digit in digits):
            return Reading(None, digits, NOT_A_DIGIT)
        return Reading("".join(str(digit.digit) for digit in digits), digits)

    # --- the network -----------------------------------------------------------------------
    def _classify(self, images: np.ndarray | None,
                  boxes: Sequence[Box | None] | None = None) -> list[Prediction]:
        """(N, 28, 28) prepared digits (and their boxes) -> predictions, calibrated, rejection applied."""
        if images is None or len(images) == 0:
            return []
        return self._decide(self._logits(images), images, boxes)

    def _logits(self, images: np.ndarray) -> np.ndarray:
        """The model's logits for (N, 28, 28) images, all finite, or a `ModelFileError`.

        Finite weights can still overflow to infinity (and NaN after the softmax);
        nothing computed from such logits is an answer.
        """
        logits = self.model.logits(images)
        if not np.isfinite(logits).all():
            raise ModelFileError(f"{self.model.path} answered NaN or infinity for this image: its weights "
                                 "overflow. Use another model, such as the shipped one")
        return logits

    def _decide(self, logits: np.ndarray, images: np.ndarray,
                boxes: Sequence[Box | None] | None = None) -> list[Prediction]:
        """The network's (N, classes) logits for (N, 28, 28) images -> calibrated predictions."""
        probabilities, reasons = self.rejector.decide(logits, images)
        predictions = []
        for index, (image, row, reason) in enumerate(zip(images, probabilities, reasons, strict=True)):
            values = row.tolist()
            best = values.index(max(values))  # np.argmax's first maximum, without its overhead
            predictions.append(Prediction(None if reason else best, values[best], tuple(values), image,
                                          boxes[index] if boxes else None, reason))
        return predictions

    @staticmethod
    def _empty() -> Prediction:
        return Prediction(None, 0.0, (0.0,) * 10, np.zeros((SIDE, SIDE), np.float32), None, EMPTY)


def line_model_path(path: Path | str | None, lines: Path | str | bool | None) -> Path | None:
    """The line model file `Recognizer.load(path, lines=lines)` reads, or None for none.

    One answer for every front end and for each worker of `numbre batch`, which is handed this path
    rather than the choice, so a worker given the shipped digit model's file still reads numbers as
    `numbre read` does.
    """
    if lines is None:
        lines = path is None
    if lines is True:
        return DEFAULT_LINE_ONNX if DEFAULT_LINE_ONNX.is_file() else None
    if lines is False:
        return None
    return Path(lines)


def resolve_onnx(path: Path | str | None) -> Path:
    """Where the ONNX form of `path` is: itself (an .onnx file), or for a model file or run folder
    its export beside it (`numbre export`'s default output) when that was exported from these very
    weights, else an export into the cache, made once.

    An export beside a model file is used only when it records the model file's weights digest:
    a run trained again, or any other file that happens to share the name, is never read instead.
    """
    if path is None:
        return DEFAULT_ONNX
    path = Path(path)
    if path.is_dir():
        source, beside = path / "model.safetensors", path / "model.onnx"
        if not source.is_file():
            if beside.is_file():  # a folder holding only an export
                return beside
            raise ModelFileError(f"{path} holds no model: neither model.safetensors (a run folder of "
                                 "`numbre train`) nor model.onnx (`numbre export`); give a run folder, "
                                 "a model file or an ONNX file, or leave --model out for the shipped model")
    elif path.suffix == ".onnx" or not path.exists():
        return path  # OnnxModel.load reads it, or says there is no model there
    else:
        source, beside = path, path.with_suffix(".onnx")
    from numbre.model.file import load_model_file

    digest = load_model_file(source).meta["weights_sha256"]  # refuses anything but a model file
    if not beside.is_file():
        return _export_to_cache(source, digest)
    if _exported_from(beside, digest):
        return beside
    return _export_to_cache(source, digest, stale=beside)


def _exported_from(onnx_path: Path, digest: str) -> bool:
    """Whether `onnx_path` is a sound numbre ONNX file exported from weights with this digest."""
    from numbre.model.onnx_model import read_model_bytes, verify_onnx

    try:
        meta = verify_onnx(read_model_bytes(onnx_path), onnx_path)
    except ModelFileError:
        return False  # damaged or foreign: the model file itself is exported instead
    return meta.get("source_weights_sha256") == digest


def _export_to_cache(path: Path, digest: str, stale: Path | None = None) -> Path:
    try:
        import torch  # noqa: F401  (exporting needs the training extra)
    except ImportError:
        found = f" ({stale} is not an export of these weights)" if stale else ""
        raise ModelFileError(f"{path} is a training model file; reading digits needs its ONNX form{found}. "
                             f"Export it where torch is installed: numbre export {path}") from None
    from numbre.data.dataset import cache_root
    from numbre.model.export import export_onnx

    cached = cache_root() / "onnx" / f"{digest[:32]}.onnx"
    if not cached.is_file():
        export_onnx(path, cached)
    return cached
