"""numbre against Tesseract on handwriting from writers neither has seen: the outside benchmark.

The images come from the held-out part of numbre.data.synthetic (allographs
and bands of slant, aspect, pen width, resolution, blur, noise and JPEG
quality never used in training or tuning): single digits, and whole numbers
of 2-10 digits written apart, touching, or with broken strokes, each as a
scan, a phone photo or a canvas drawing. Both readers get the same PNG files:

- numbre: `Recognizer.load()` (the shipped model), `predict` for one digit and
  `read` for a number. A rejected digit ("not a digit", "several digits")
  counts as wrong.
- Tesseract, as a user would run it: `--psm 10` (one character) for digits,
  `--psm 7` (one text line) for numbers, `-c tessedit_char_whitelist=0123456789`,
  each OCR engine (`--oem 0` legacy, `--oem 1` LSTM) that the installed
  traineddata holds. Images go to `tesseract` 25 at a time (a list file), so
  its start-up is spread over them as numbre's model loading is.
  A transparent canvas export is flattened onto white first (Tesseract drops
  the alpha channel, which would leave black on black).

ms/image is wall time per image over the whole set, in the same run, one
process each, on whatever else the machine is doing.

Run:  python benchmarks/outside_accuracy.py [--digits 1000] [--numbers 100] [--split heldout] [--seed 0]
      python benchmarks/outside_accuracy.py --speed [100000]   # synthesiser: images/s, median of 3
      python benchmarks/outside_accuracy.py --cross [2000]   # held-out letter forms vs bands, numbre alone
      python benchmarks/outside_accuracy.py --pens [240]   # training writers with finer and bolder pens
      python benchmarks/outside_accuracy.py --no-tesseract --lines none   # numbre alone, numbers by cutting
      (Tesseract: apt-get install -y tesseract-ocr tesseract-ocr-eng; without it only numbre is measured)
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from numbre.data.synthetic import (
    MEDIA,
    NUMBER_KINDS,
    digit_ink,
    page_image,
    random_writer,
    synth_digits,
    synth_numbers,
)
from numbre.reading.recognize import Recognizer

WHITELIST = "tessedit_char_whitelist=0123456789"
ENGINES = {0: "legacy", 1: "LSTM"}
CHUNK = 25  # images per tesseract call


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def flattened(image: np.ndarray) -> np.ndarray:
    """RGBA -> RGB on white paper; RGB unchanged."""
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255
        return np.round(image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return image


def tesseract_engines() -> list[int]:
    """The --oem values the installed English traineddata supports (Debian's holds LSTM only)."""
    if shutil.which("tesseract") is None:
        return []
    probe = Image.new("L", (40, 40), 255)
    found = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.png"
        probe.save(path)
        for engine in ENGINES:
            done = subprocess.run(["tesseract", str(path), "-", "--oem", str(engine), "--psm", "10"],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                found.append(engine)
    return found


def tesseract_read(images: list[np.ndarray], engine: int, psm: int) -> tuple[list[str], float]:
    """Tesseract's text for each image (whitespace removed) and the seconds it took for all.

    One call reads a list of CHUNK images. Tesseract 5.3 sometimes dies on an
    image (SIGFPE on some lines); then that chunk's images are read one call
    each, and an image that still fails counts as read wrong.
    """
    command = ["--oem", str(engine), "--psm", str(psm), "-c", WHITELIST]
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images):
            path = Path(folder) / f"{index:06d}.png"
            Image.fromarray(flattened(image)).save(path)
            paths.append(str(path))
        started = time.perf_counter()
        pages = []
        for start in range(0, len(paths), CHUNK):
            pages += _tesseract_pages(paths[start:start + CHUNK], Path(folder) / "images.txt", command)
        seconds = time.perf_counter() - started
    return ["".join(page.split()) for page in pages], seconds


def _tesseract_pages(paths: list[str], listing: Path, command: list[str]) -> list[str]:
    listing.write_text("\n".join(paths) + "\n")
    done = subprocess.run(["tesseract", str(listing), "-", *command], capture_output=True, text=True,
                          check=False)
    if done.returncode == 0:
        pages = done.stdout.split("\f")[:len(paths)]
        return pages + [""] * (len(paths) - len(pages))
    pages = []
    for path in paths:
        single = subprocess.run(["tesseract", path, "-", *command], capture_output=True, text=True,
                                check=False)
        pages.append(single.stdout if single.returncode == 0 else "?")
    return pages


def numbre_read(recognizer: Recognizer, files: list[bytes], read: Callable) -> tuple[list[str], float]:
    started = time.perf_counter()
    answers = [read(recognizer, data) for data in files]
    return answers, time.perf_counter() - started


def numbre_digit(recognizer: Recognizer, data: bytes) -> str:
    digit = recognizer.predict(data).digit
    return "" if digit is None else str(digit)


def numbre_number(recognizer: Recognizer, data: bytes) -> str:
    return recognizer.read(data).number or ""


def synthesiser_speed(count: int, workers: int) -> None:
    """Time synth_digits making `count` training digits in MNIST form (the training source's work).

    Wall time depends on what else the machine runs; CPU time (this process and
    its finished workers) says what 2 free cores would do: 2 / (CPU s per image).
    """
    rates, cpu = [], []
    for _ in range(3):
        before, started = os.times(), time.perf_counter()
        synth_digits(count, len(rates), split="train", form="mnist", workers=workers)
        wall, after = time.perf_counter() - started, os.times()
        rates.append(count / wall)
        used = sum(after[:4]) - sum(before[:4])  # user + system, self and children
        cpu.append(1000 * used / count)
    rate, cpu_ms = statistics.median(rates), statistics.median(cpu)
    print(f"| synthesised digits | workers | images/s (median of 3) | wall s per {count:,} | CPU ms/image "
          f"| s per {count:,} on 2 free cores |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {count:,} | {workers} | {rate:,.0f} | {count / rate:.1f} | {cpu_ms:.2f} "
          f"| {count * cpu_ms / 2000:.1f} |")


def cross_table(count: int, seed: int, model: str | None) -> None:
    """numbre on digits whose letter forms and style bands come from either split: which part of the
    held-out writers costs what (single digits, right answer share, per medium)."""
    recognizer = Recognizer.load(model)
    print(f"numbre on {count} synthesised digits per row, seed {seed}: letter forms and style bands "
          "each from the training or the held-out split\n")
    print("| letter forms | bands | right | canvas | photo | scan |\n|---|---|---:|---:|---:|---:|")
    for forms, bands in (("train", "train"), ("heldout", "train"), ("train", "heldout"),
                         ("heldout", "heldout")):
        images, labels, styles = synth_digits(count, seed, split=bands, form="raw", forms=forms)
        answers, _ = numbre_read(recognizer, [png_bytes(image) for image in images], numbre_digit)
        right = np.array([answer == str(int(label)) for answer, label in zip(answers, labels, strict=True)])
        media = np.array([style["medium"] for style in styles])
        shares = [f"{right[media == medium].mean():.1%}" for medium in ("canvas", "photo", "scan")]
        print(f"| {forms} | {bands} | {right.mean():.1%} | " + " | ".join(shares) + " |", flush=True)


# Pen widths (share of the digit's height) for --pens: the training writers' band in the middle,
# finer and bolder ones on either side, the outermost beyond the held-out bands too.
PEN_RANGES = ((0.025, 0.045), (0.045, 0.07), (0.07, 0.105), (0.105, 0.21), (0.21, 0.25), (0.25, 0.28),
              (0.28, 0.34))


def pens_table(count: int, seed: int, model: str | None) -> None:
    """numbre on training letter forms and bands with the pen width drawn from each of PEN_RANGES:
    what the stroke steps (hysteresis, thickening, thinning) make of fine liners and markers, on
    writers that are otherwise the training part's (never the held-out split)."""
    recognizer = Recognizer.load(model)
    print(f"numbre on synthesised training-part writers, the pen width set per row, {count} digits a "
          f"cell, seed {seed}\n")
    print("| pen / height | " + " | ".join(MEDIA) + " |\n|---|" + "---:|" * len(MEDIA))
    for low, high in PEN_RANGES:
        cells = []
        for medium in MEDIA:
            pictures = []
            for index in range(count):
                rng = np.random.default_rng((seed, 5, index))
                writer = random_writer(rng, "train", medium)
                writer = dataclasses.replace(writer, pen=float(rng.uniform(low, high)))
                pictures.append(page_image(digit_ink(index % 10, rng, writer)[0], writer, rng, writer.height))
            answers, _ = numbre_read(recognizer, [png_bytes(picture) for picture in pictures], numbre_digit)
            cells.append(np.mean([answer == str(index % 10) for index, answer in enumerate(answers)]))
        print(f"| {low:.3f}-{high:.3f} | " + " | ".join(f"{cell:.1%}" for cell in cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=1000, help="single digits (default 1000)")
    parser.add_argument("--numbers", type=int, default=100, help="numbers per kind (default 100)")
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout",
                        help="which writers (default: the held-out ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model file or ONNX (default: the shipped model)")
    parser.add_argument("--speed", type=int, nargs="?", const=100_000, default=None, metavar="COUNT",
                        help="time the synthesiser instead (default 100,000 images)")
    parser.add_argument("--workers", type=int, default=2, help="processes for --speed (default 2)")
    parser.add_argument("--cross", type=int, nargs="?", const=2000, default=None, metavar="COUNT",
                        help="instead, numbre alone on letter forms and bands of either split, "
                             "COUNT digits a row (default 2,000)")
    parser.add_argument("--pens", type=int, nargs="?", const=240, default=None, metavar="COUNT",
                        help="instead, numbre alone on training writers with finer and bolder pens, "
                             "COUNT digits a cell (default 240)")
    parser.add_argument("--no-tesseract", action="store_true",
                        help="measure numbre alone (Tesseract is slow)")
    parser.add_argument("--lines", default="shipped",
                        help="numbre's line model for numbers: an ONNX file of numbre train-lines, "
                             "'shipped' (default) or 'none' (cut into digits alone)")
    args = parser.parse_args()
    if args.speed:
        synthesiser_speed(args.speed, args.workers)
        return
    if args.cross:
        cross_table(args.cross, args.seed, args.model)
        return
    if args.pens:
        pens_table(args.pens, args.seed, args.model)
        return

    images, labels, _ = synth_digits(args.digits, args.seed, split=args.split, form="raw")
    digit_truth = [str(int(label)) for label in labels]
    numbers = {kind: synth_numbers(args.numbers, args.seed, split=args.split, kind=kind)
               for kind in NUMBER_KINDS}

    lines = {"shipped": True, "none": False}.get(args.lines, args.lines)
    recognizer = Recognizer.load(args.model, lines=lines)
    engines = [] if args.no_tesseract else tesseract_engines()
    readers: dict[str, tuple[Callable, Callable]] = {
        f"numbre ({'shipped model' if args.model is None else Path(args.model).name})": (
            lambda pictures: numbre_read(recognizer, [png_bytes(p) for p in pictures], numbre_digit),
            lambda pictures: numbre_read(recognizer, [png_bytes(p) for p in pictures], numbre_number)),
    }
    for engine in engines:
        readers[f"Tesseract {ENGINES[engine]} (--oem {engine})"] = (
            lambda pictures, e=engine: tesseract_read(pictures, e, 10),
            lambda pictures, e=engine: tesseract_read(pictures, e, 7))

    count = sum(len(found) for found in numbers.values())
    print(f"{args.split} writers of numbre.data.synthetic, seed {args.seed}: {len(images)} single digits, "
          f"{count} numbers of 2-10 digits ({args.numbers} each {', '.join(NUMBER_KINDS)})")
    if args.no_tesseract:
        print("(Tesseract left out: --no-tesseract)")
    elif not engines:
        print("(tesseract is not installed: apt-get install -y tesseract-ocr tesseract-ocr-eng)")
    print()
    header = ["reader", "single digits", "ms/digit"] + [f"numbers {kind}" for kind in NUMBER_KINDS] + \
        ["numbers all", "ms/number"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for name, (read_digits, read_numbers) in readers.items():
        answers, seconds = read_digits(images)
        accuracy = np.mean([a == t for a, t in zip(answers, digit_truth, strict=True)])
        cells = [name, f"{100 * accuracy:.1f}%", f"{1000 * seconds / len(images):.1f}"]
        right, total_seconds = 0, 0.0
        for found in numbers.values():
            if not found:  # --numbers 0: the digits only
                cells.append("-")
                continue
            answers, seconds = read_numbers([image for _, image, _ in found])
            hits = sum(a == truth for a, (truth, _, _) in zip(answers, found, strict=True))
            cells.append(f"{100 * hits / len(found):.1f}%")
            right += hits
            total_seconds += seconds
        cells += ([f"{100 * right / count:.1f}%", f"{1000 * total_seconds / count:.1f}"] if count
                  else ["-", "-"])
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
