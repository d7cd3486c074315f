"""Dev sets for choices about reading writers numbre never saw: training letter forms only.

The held-out part of numbre.data.synthetic (benchmarks/outside_accuracy.py) measures; it must
never choose. Choices about the shipped model and the reading pipeline are made here instead, on
synthesised writers who write only the *training* letter forms:

- "training writers": the training part itself (bands and letter forms), seed 310;
- "pens beyond both splits": the same writers with a pen finer or bolder than either split's
  (0.025-0.045 or 0.28-0.34 of the digit's height), seed 320;
- "one band beyond both splits": one of slant, aspect, height, blur, noise and JPEG quality drawn
  beyond both splits' bands (further out than the held-out writers, on the other side of them), the
  rest from the training bands, seed 340;
- "every band at its edge": every one of those (and the pen) in the outer 15% of its training
  band, on a random side: writers still inside the training bands, but with all their habits at
  once at the far end of them, as a writer outside them has (the held-out writers are outside
  every band at once), seed 330.

Each digit is drawn by its own writer, as a scan, a phone photo or a canvas, and read from its PNG
bytes by the Recognizer as a user's file is; a refusal counts as wrong. Several models are read
side by side in one run (same images), with each set's count of digits that changed between the
first model and the others.

With --numbers N, whole numbers too: N numbers of 2-10 digits per kind (apart, touching, broken)
and set, each written by one writer of the set, read by `Recognizer.read` with the shipped line
model (or --lines FILE) beside each digit model; exact matches.

Run:  python benchmarks/dev_accuracy.py [--count 1200] [--model FILE ...] [--numbers 200] [--lines FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numbre.data.synthetic import (
    MEDIA,
    NUMBER_KINDS,
    STYLE_BANDS,
    Writer,
    digit_ink,
    page_image,
    random_writer,
    synth_number,
)
from numbre.parallel import index_chunks, map_in_order
from numbre.reading.recognize import Recognizer
from outside_accuracy import numbre_digit, numbre_number, png_bytes  # a sibling: scripts run from here

# Beyond both splits: past the held-out bands, which lie past the training ones.
BEYOND: dict[str, tuple[tuple[float, float], ...]] = {
    "slant": ((-0.35, -0.25), (0.45, 0.55)),
    "aspect": ((0.5, 0.6), (1.4, 1.55)),
    "height": ((10.0, 12.0), (160.0, 220.0)),
    "blur": ((1.4, 1.8),),
    "noise": ((0.08, 0.1),),
    "jpeg": ((12.0, 20.0),),
}
PENS_BEYOND = ((0.025, 0.045), (0.28, 0.34))
EDGE = 0.15  # share of a training band at each end that "at its edge" draws from


def _uniform_over(rng: np.random.Generator, bands: tuple[tuple[float, float], ...]) -> float:
    low, high = bands[int(rng.integers(len(bands)))]
    return float(rng.uniform(low, high))


def _training(writer: Writer, rng: np.random.Generator) -> Writer:
    return writer


def _pens_beyond(writer: Writer, rng: np.random.Generator) -> Writer:
    return dataclasses.replace(writer, pen=_uniform_over(rng, PENS_BEYOND))


def _one_beyond(writer: Writer, rng: np.random.Generator) -> Writer:
    name = sorted(BEYOND)[int(rng.integers(len(BEYOND)))]
    return dataclasses.replace(writer, **{name: _uniform_over(rng, BEYOND[name])})


def _at_edge(writer: Writer, rng: np.random.Generator) -> Writer:
    values = {}
    for name in (*BEYOND, "pen"):
        (low, high), = STYLE_BANDS["train"][name]
        width = EDGE * (high - low)
        values[name] = float(rng.uniform(low, low + width) if rng.random() < 0.5
                             else rng.uniform(high - width, high))
    return dataclasses.replace(writer, **values)


SETS: dict[str, tuple[int, Callable[[Writer, np.random.Generator], Writer]]] = {
    "training writers": (310, _training),
    "pens beyond both splits": (320, _pens_beyond),
    "one band beyond both splits": (340, _one_beyond),
    "every band at its edge": (330, _at_edge),
}


def dev_digit(name: str, index: int) -> tuple[np.ndarray, int, dict]:
    """Digit `index` of dev set `name`: its picture, label and writer's style with its letter form
    (deterministic from the set's seed and the index; the medium cycles scan, photo, canvas)."""
    seed, change = SETS[name]
    rng = np.random.default_rng((seed, 7, index))
    writer = change(random_writer(rng, "train", MEDIA[index % len(MEDIA)]), rng)
    digit = index % 10
    ink, allograph = digit_ink(digit, rng, writer)
    return page_image(ink, writer, rng, writer.height), digit, {**writer.style(), "allograph": allograph}


def dev_pictures(name: str, count: int) -> tuple[list[bytes], list[int], list[str]]:
    """The PNG files, labels and media of the first `count` digits of one dev set."""
    files, labels, media = [], [], []
    for index in range(count):
        picture, digit, style = dev_digit(name, index)
        files.append(png_bytes(picture))
        labels.append(digit)
        media.append(style["medium"])
    return files, labels, media


def dev_number(name: str, kind: str, index: int) -> tuple[np.ndarray, str, dict]:
    """Number `index` of kind `kind` in dev set `name`: its picture, its digits (2-10 of them) and its
    writer's style with the letter forms."""
    seed, change = SETS[name]
    rng = np.random.default_rng((seed, 8, NUMBER_KINDS.index(kind), index))
    writer = change(random_writer(rng, "train", MEDIA[index % len(MEDIA)]), rng)
    digits = rng.integers(0, 10, size=int(rng.integers(2, 11))).tolist()
    picture, style = synth_number(digits, rng, split="train", kind=kind, writer=writer)
    return picture, style["digits"], style


def _read(task: tuple[str, str | None, bool | str, list[bytes]]) -> list[str]:
    """One process's share: each file read as outside_accuracy.py reads it ("" for a refusal)."""
    reader, model, lines, files = task
    recognizer = Recognizer.load(model, lines=lines)
    read = numbre_digit if reader == "digit" else numbre_number
    return [read(recognizer, data) for data in files]


def read_side_by_side(workers: int, reader: str, model: str | None, lines: bool | str,
                      files: list[bytes]) -> np.ndarray:
    """Every file read by `model` in `workers` processes, the answers in the files' order."""
    tasks = [(reader, model, lines, files[start:stop]) for start, stop in index_chunks(len(files), workers)]
    answers = np.empty(len(files), object)
    answers[:] = [answer for part in map_in_order(_read, tasks, workers) for answer in part]
    return answers


def numbers_table(models: list[str | None], names: list[str], count: int, lines: str, workers: int) -> None:
    print(f"\nwhole numbers (2-10 digits), {count} a kind and set, line model: {lines}; exact match\n")
    print("| set | model | " + " | ".join(NUMBER_KINDS) + " | all |")
    print("|---|---|" + "---:|" * (len(NUMBER_KINDS) + 1))
    line_model = True if lines == "shipped" else lines
    for name in SETS:
        made = {kind: [dev_number(name, kind, index) for index in range(count)] for kind in NUMBER_KINDS}
        files = [png_bytes(picture) for kind in NUMBER_KINDS for picture, _, _ in made[kind]]
        truth = np.array([digits for kind in NUMBER_KINDS for _, digits, _ in made[kind]])
        kinds = np.repeat(np.array(NUMBER_KINDS), count)
        for model, shown in zip(models, names, strict=True):
            right = read_side_by_side(workers, "number", model, line_model, files) == truth
            cells = [f"{right[kinds == kind].mean():.1%}" for kind in NUMBER_KINDS]
            print(f"| {name} | {shown} | " + " | ".join(cells) + f" | {right.mean():.2%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1200, help="digits per set (default 1,200)")
    parser.add_argument("--model", action="append", default=None,
                        help="model file or ONNX, repeatable (default: the shipped model)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--numbers", type=int, default=0, metavar="COUNT",
                        help="also COUNT whole numbers per kind and set (default: none)")
    parser.add_argument("--lines", default="shipped",
                        help="line model for --numbers: an ONNX file of numbre train-lines or 'shipped'")
    args = parser.parse_args()
    models = args.model or [None]
    names = ["shipped" if model is None else Path(model).name for model in models]
    if len(set(names)) < len(names):  # two files of one name: say where each lies
        names = ["shipped" if model is None else str(model) for model in models]
    print(f"numbre on dev writers (training letter forms only), {args.count} digits a set\n")
    print("| set | model | right | " + " | ".join(MEDIA) + " | changed |\n|---|---|---:|"
          + "---:|" * (len(MEDIA) + 1))
    for name in SETS:
        files, labels, media = dev_pictures(name, args.count)
        truth, kinds = np.array([str(label) for label in labels]), np.array(media)
        first = None
        for model, shown in zip(models, names, strict=True):
            answers = read_side_by_side(args.workers, "digit", model, False, files)
            right = answers == truth
            changed = "" if first is None else f"{int((answers != first).sum())}"
            first = answers if first is None else first
            cells = [f"{right[kinds == medium].mean():.1%}" for medium in MEDIA]
            print(f"| {name} | {shown} | {right.mean():.2%} | " + " | ".join(cells)
                  + f" | {changed} |", flush=True)
    if args.numbers:
        numbers_table(models, names, args.numbers, args.lines, args.workers)


if __name__ == "__main__":
    main()
