"""You against the model: the test digits a model finds hardest, and its answers on them.

A contest set is a few dozen MNIST test digits with their true labels and one model's answers.
`hardest_digits` picks them: the model's misreadings first, then the digits it was least sure of,
each ranked by the probability it gave the true label. The set is stored as two small files, a
PNG sprite of the digits and a JSON file with the labels, the answers, where the digits came from
and which model answered, so shipping it does not ship MNIST, and `load_contest_set` reads it
back with numpy and Pillow only (the inference install).

The answers belong to one model. `answered_by` keeps them when the set was made by the model at
hand (same ONNX weights digest) and otherwise asks that model afresh, so a contest is always
against the model being served, even after the shipped model changes.

The model answers the test digit as MNIST stores it (already centred, 20 px, white on black), as
`numbre evaluate` scores it, with the calibrated probabilities the Recognizer reports. Its answer
is its most likely digit even where the Recognizer would say "not a digit": the person must name
a digit too.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from numbre import __version__
from numbre.atomic import atomic_write
from numbre.errors import NumbreError

if TYPE_CHECKING:
    from numbre.data import Dataset
    from numbre.reading.recognize import Recognizer

FORMAT = "numbre-contest"
FORMAT_VERSION = 1
SPRITE = "contest.png"
LISTING = "contest.json"
SIDE = 28  # MNIST's image side, in pixels
COLUMNS = 10  # digits per row of the sprite
DIGIT_NAMES = [str(digit) for digit in range(10)]


class ContestError(NumbreError):
    """A contest set cannot be made or read: foreign data, a damaged file, a model that reads no digits."""


@dataclass(frozen=True)
class ModelAnswers:
    """One model's answers on the contest digits, with the identity of that model."""

    model: dict[str, Any]  # architecture and weights digests (`model_identity`)
    digits: np.ndarray  # (N,) its most likely digit
    confidences: np.ndarray  # (N,) calibrated probability of that digit
    label_probabilities: np.ndarray  # (N,) calibrated probability it gave the true label


@dataclass(frozen=True)
class ContestSet:
    """Contest digits, their true labels and one model's answers; index i is digit id i."""

    images: np.ndarray  # (N, 28, 28) uint8, white ink on black as MNIST stores it
    labels: np.ndarray  # (N,) int64 true digits
    answers: ModelAnswers
    source: dict[str, Any]  # the dataset (name, checksum), the test-set index of each digit, the command

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def model_right(self) -> np.ndarray:
        return self.answers.digits == self.labels


def model_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """What names a model's answers: its architecture and the digests of its ONNX and source weights."""
    return {"architecture": meta.get("architecture"), "onnx_weights_sha256": meta.get("onnx_weights_sha256"),
            "weights_sha256": meta.get("source_weights_sha256")}


def check_reads_digits(recognizer: Recognizer) -> None:
    """Refuse a model whose first ten classes are not the digits 0-9 (a Fashion-MNIST model, say)."""
    if list(recognizer.class_names) != DIGIT_NAMES:
        names = ", ".join(recognizer.class_names[:4])
        raise ContestError(f"the model reads {names}, ..., not the digits 0-9; "
                           "the contest needs a digit model")


def ask_model(recognizer: Recognizer, images: np.ndarray, labels: np.ndarray) -> ModelAnswers:
    """`recognizer`'s model on (N, 28, 28) uint8 MNIST-style digits, one batch."""
    check_reads_digits(recognizer)
    scaled = np.asarray(images, np.float32) / 255  # (N, 28, 28) in [0, 1], as the model was trained
    logits = recognizer.model.logits(scaled)
    probabilities, _ = recognizer.rejector.decide(logits, scaled)  # (N, 10), calibrated
    digits = probabilities.argmax(axis=1)
    rows = np.arange(len(labels))
    return ModelAnswers(model_identity(recognizer.meta), digits.astype(np.int64),
                        probabilities[rows, digits].astype(np.float64),
                        probabilities[rows, np.asarray(labels, np.int64)].astype(np.float64))


def hardest_digits(recognizer: Recognizer, dataset: Dataset, count: int, command: str) -> ContestSet:
    """The `count` test digits `recognizer` finds hardest: misread first, then least sure of the truth.

    Ties (equal probabilities) go to the lower test-set index, so the same model and data always
    give the same set.
    """
    if list(dataset.class_names) != DIGIT_NAMES:
        raise ContestError(f"{dataset.name} is not a digit dataset (classes: "
                           f"{', '.join(dataset.class_names[:4])}, ...); use MNIST or another digit set")
    if not 1 <= count <= len(dataset.y_test):
        raise ContestError(f"count must be between 1 and {len(dataset.y_test):,}, the test set's size; "
                           f"got {count}")
    labels = dataset.y_test.astype(np.int64)
    answers = ask_model(recognizer, dataset.x_test, labels)
    order = np.lexsort((np.arange(len(labels)), answers.label_probabilities, answers.digits == labels))
    chosen = order[:count]  # hardest first: digit id 0 is the hardest
    picked = ModelAnswers(answers.model, answers.digits[chosen], answers.confidences[chosen],
                          answers.label_probabilities[chosen])
    source = {"dataset": dataset.name, "dataset_sha256": dataset.checksum, "split": "test",
              "test_indices": [int(index) for index in chosen], "command": command,
              "numbre_version": __version__}
    return ContestSet(dataset.x_test[chosen].copy(), labels[chosen], picked, source)


def answered_by(contest: ContestSet, recognizer: Recognizer) -> tuple[ContestSet, bool]:
    """The set with `recognizer`'s answers, and whether they had to be computed (another model made it)."""
    check_reads_digits(recognizer)
    identity = model_identity(recognizer.meta)
    if identity["onnx_weights_sha256"] == contest.answers.model.get("onnx_weights_sha256"):
        return contest, False
    return replace(contest, answers=ask_model(recognizer, contest.images, contest.labels)), True


# --- the files -------------------------------------------------------------------------------

def save_contest_set(contest: ContestSet, folder: Path) -> tuple[Path, Path]:
    """Write the sprite and the listing into `folder`; the same set always gives the same bytes."""
    folder = Path(folder)
    count = len(contest)
    rows = -(-count // COLUMNS)
    sprite = np.zeros((rows * SIDE, COLUMNS * SIDE), np.uint8)
    for index, image in enumerate(contest.images):
        row, column = divmod(index, COLUMNS)
        sprite[row * SIDE:(row + 1) * SIDE, column * SIDE:(column + 1) * SIDE] = image
    buffer = io.BytesIO()
    Image.fromarray(sprite, "L").save(buffer, "PNG", optimize=True)  # Pillow writes no timestamp
    answers = contest.answers
    source = dict(contest.source)
    test_indices = source.pop("test_indices", [None] * count)
    digits = [{"id": index, "test_index": test_indices[index], "label": int(contest.labels[index]),
               "model_digit": int(answers.digits[index]),
               "model_confidence": round(float(answers.confidences[index]), 6),
               "model_label_probability": round(float(answers.label_probabilities[index]), 6)}
              for index in range(count)]
    listing = {"format": FORMAT, "format_version": FORMAT_VERSION, "count": count,
               "sprite": {"file": SPRITE, "side": SIDE, "columns": COLUMNS},
               "model": answers.model, "source": source, "digits": digits}
    text = json.dumps(listing, indent=1, sort_keys=True) + "\n"
    atomic_write(folder / SPRITE, buffer.getvalue())
    atomic_write(folder / LISTING, text.encode())
    return folder / SPRITE, folder / LISTING


def load_contest_set(folder: Path) -> ContestSet:
    """Read a set written by `save_contest_set`; a missing or damaged file is a ContestError."""
    folder = Path(folder)
    remake = "remake it with `python scripts/make_contest_set.py`"
    try:
        listing = json.loads((folder / LISTING).read_text(encoding="utf-8"))
        with Image.open(folder / SPRITE) as opened:
            sprite = np.asarray(opened.convert("L"))
    except FileNotFoundError as error:
        raise ContestError(f"no contest set at {folder} ({Path(error.filename).name} is missing); "
                           f"{remake}") from None
    except (OSError, ValueError) as error:
        raise ContestError(f"the contest set at {folder} is damaged ({error}); {remake}") from None
    if not isinstance(listing, dict) or listing.get("format") != FORMAT:
        raise ContestError(f"{folder / LISTING} is not a numbre contest set; {remake}")
    try:
        entries = listing["digits"]
        count = len(entries)
        if sprite.shape != (-(-count // COLUMNS) * SIDE, COLUMNS * SIDE):
            raise ValueError(f"the sprite is {sprite.shape[1]}x{sprite.shape[0]} pixels, "
                             f"not the size of {count} digits")
        images = np.stack([sprite[(index // COLUMNS) * SIDE:(index // COLUMNS + 1) * SIDE,
                                  (index % COLUMNS) * SIDE:(index % COLUMNS + 1) * SIDE]
                           for index in range(count)])
        labels = np.array([entry["label"] for entry in entries], np.int64)
        answers = ModelAnswers(dict(listing["model"]),
                               np.array([entry["model_digit"] for entry in entries], np.int64),
                               np.array([entry["model_confidence"] for entry in entries], np.float64),
                               np.array([entry["model_label_probability"] for entry in entries], np.float64))
        source = {**listing["source"], "test_indices": [entry.get("test_index") for entry in entries]}
    except (KeyError, TypeError, ValueError) as error:
        raise ContestError(f"the contest set at {folder} is damaged ({error}); {remake}") from None
    if count == 0 or not np.isin(labels, range(10)).all() or not np.isin(answers.digits, range(10)).all():
        raise ContestError(f"the contest set at {folder} holds no digits or labels outside 0-9; {remake}")
    return ContestSet(images, labels, answers, source)
