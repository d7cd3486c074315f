"""How well the whole path reads digits as people hand them in: drawn, written, photographed.

Renders MNIST test digits with numbre.data.drawn in each style (canvas, paper,
marker, photo), sends each rendered image through numbre.reading.preprocess.to_mnist
and a trained recognizer, and prints accuracy per style as a markdown table,
next to the raw 28x28 MNIST accuracy and MNIST digits sent through the same
preprocessing. `--ablation` repeats the styles with each optional step turned
off or on (stroke normalisation, deskew) to show what each one is worth.
Also times to_mnist on 280x280 canvas PNGs (bytes in, 28x28 out) next to
PNG decoding alone, and split_digits on a five-digit 1000x200 line.

Run:  python benchmarks/drawn_accuracy.py [--model PATH] [--n 2000] [--ablation] [--timing-only]
      python benchmarks/drawn_accuracy.py --lines none   # numbers read by cutting alone (no line model)
      python benchmarks/drawn_accuracy.py --n 50 --numbers 300 --scribbles 150   # the numbers' figures
      python benchmarks/drawn_accuracy.py --calibrate   # MNIST's stroke width for preprocess.STROKE_TARGET
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from numbre.data import load_dataset
from numbre.data.drawn import NUMBER_KINDS, STYLES, drawn_digit, drawn_number, written_numbers
from numbre.data.lines import make_lines
from numbre.reading.images import load_image, open_image
from numbre.reading.preprocess import (
    DIGIT,
    STROKE_SCALE,
    _resize,
    ink_box,
    ink_map,
    stroke_width,
    to_ink,
    to_mnist,
)
from numbre.reading.recognize import Recognizer
from numbre.reading.segment import split_digits

Answers = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 in [0, 1] -> (N,) predicted classes
SCRIBBLE_SEED = 31  # the scribble lines of docs/model-card.md (the reading rules were chosen on others)
VARIANTS = {"default": {}, "no stroke normalisation": {"normalise_stroke": False},
            "with deskew": {"deskew": True}}


def model_answers(recognizer: Recognizer) -> Answers:
    """The network's most likely digit for prepared 28x28 images (no rejection): for the ablation."""

    def answers(images: np.ndarray) -> np.ndarray:
        return recognizer.model.logits(images)[:, :10].argmax(axis=1)

    return answers


def rendered(style: str, digits: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [drawn_digit(digit, rng, style=style) for digit in digits]


def read_digits(recognizer: Recognizer, images: list, labels: np.ndarray) -> tuple[float, float, float]:
    """End to end as a user gets it: accuracy (the right digit named), rejected share, and
    accuracy of the answers given (a rejection is "not a digit", "several digits" or "empty")."""
    named = np.array([-1 if p.digit is None else p.digit for p in recognizer.predict_batch(images)])
    answered = named >= 0
    accepted = float((named[answered] == labels[answered]).mean()) if answered.any() else float("nan")
    return float((named == labels).mean()), float(1 - answered.mean()), accepted


def accuracy_table(recognizer: Recognizer, count: int, seed: int, ablation: bool) -> None:
    mnist = load_dataset(quiet=True)
    digits, labels = mnist.x_test[:count], mnist.y_test[:count].astype(np.int64)
    inputs = {"MNIST 28x28 through the pipeline": list(digits)}
    started = time.perf_counter()
    for index, style in enumerate(STYLES):
        inputs[f"drawn: {style}"] = rendered(style, digits, seed + index)
    print(f"rendered {count} digits x {len(STYLES)} styles in {time.perf_counter() - started:.0f} s\n")
    print("Recognizer.predict_batch, end to end (decode, preprocess, network, rejection):\n")
    print("| input | n | accuracy | rejected | accuracy of answers given |\n|---|---:|---:|---:|---:|")
    for name, images in inputs.items():
        right, rejected, accepted = read_digits(recognizer, images, labels)
        print(f"| {name} | {count} | {right:.2%} | {rejected:.2%} | {accepted:.2%} |")
    if ablation:
        answers = model_answers(recognizer)
        print("\nThe network's top digit (no rejection) with each optional preprocessing step:\n")
        print("| input | " + " | ".join(VARIANTS) + " |\n|---|" + "---:|" * len(VARIANTS))
        for name, images in inputs.items():
            cells = []
            for options in VARIANTS.values():
                prepared = np.stack([to_mnist(image, **options).image for image in images])
                cells.append(f"{float((answers(prepared) == labels).mean()):.2%}")
            print(f"| {name} | " + " | ".join(cells) + " |")


def number_table(recognizer: Recognizer, count: int, seed: int) -> None:
    """Digit-string exact match of `Recognizer.read` on written numbers of 2-8 digits."""
    mnist = load_dataset(quiet=True)
    rng = np.random.default_rng(seed)
    print(f"\nRecognizer.read on {count} written numbers per kind (2-8 digits, styles in turn):\n")
    print("| kind | numbers | exact match | digits right | read as a number |\n|---|---:|---:|---:|---:|")
    for kind, options in NUMBER_KINDS.items():
        exact = digits_right = digits_total = answered = 0
        for truth, image in written_numbers(mnist.x_test, mnist.y_test, rng, count, **options):
            reading = recognizer.read(image)
            exact += reading.number == truth
            answered += reading.number is not None
            found = "".join("?" if d.digit is None else str(d.digit) for d in reading.digits)
            if len(found) == len(truth):
                digits_right += sum(a == b for a, b in zip(found, truth, strict=True))
            digits_total += len(truth)
        print(f"| {kind} | {count} | {exact / count:.2%} | {digits_right / digits_total:.2%} "
              f"| {answered / count:.2%} |")


def scribble_table(recognizer: Recognizer, count: int, seed: int = SCRIBBLE_SEED) -> None:
    """How often a line of MNIST test digits holding one scribble is read as a number (it should not be)."""
    mnist = load_dataset(quiet=True)
    lines = make_lines(count, seed, mnist.x_test, mnist.y_test, junk_share=1.0)
    taken = sum(recognizer.read(line.image).number is not None for line in lines)
    print(f"\n| lines of MNIST test digits with one scribble (numbre.data.lines, seed {seed}) | lines "
          "| read as a number |\n|---|---:|---:|")
    print(f"| 1-12 digits, every kind | {count} | {taken / count:.2%} |")


def read_timing(recognizer: Recognizer, seed: int, runs: int = 200) -> None:
    """Median time of `Recognizer.read` on one 6-digit line (MNIST test digits, 200 px tall, paper)."""
    mnist = load_dataset(quiet=True)
    rng = np.random.default_rng(seed)
    line = drawn_number([mnist.x_test[i] for i in range(10, 16)], rng, height=200)
    data = png_bytes(line)
    reader = "line model" if recognizer.line_model is not None else "cutting alone"
    print(f"\n| Recognizer.read ({reader}), 6 digits | median ms |\n|---|---:|")
    size = f"{line.shape[1]}x{line.shape[0]}"
    print(f"| array {size} | {median_ms(lambda: recognizer.read(line), runs):.2f} |")
    print(f"| PNG bytes {size} | {median_ms(lambda: recognizer.read(data), runs):.2f} |")


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def timings(seed: int) -> None:
    """Median times of the preprocessing steps a front end runs per request."""
    mnist = load_dataset(quiet=True)
    rng = np.random.default_rng(seed)
    canvases: dict[str, bytes] = {}
    index = 0
    while len(canvases) < 2:  # one transparent export and one opaque white-on-black canvas
        image = drawn_digit(mnist.x_test[index], rng, style="canvas")
        canvases.setdefault("RGBA, transparent" if image.shape[2] == 4 else "RGB", png_bytes(image))
        index += 1
    number = drawn_number([mnist.x_test[i] for i in range(5)], rng, height=200)
    number = np.asarray(Image.fromarray(number).resize((1000, 200), Image.BILINEAR))
    number_ink = to_ink(load_image(number))
    print("\n| step | median ms |\n|---|---|")
    for name, data in canvases.items():
        decode = median_ms(lambda data=data: open_image(data), 500)  # libspng for plain PNGs
        whole = median_ms(lambda data=data: to_mnist(data), 500)
        print(f"| PNG decoding alone (open_image), 280x280 canvas ({name}) | {decode:.3f} |")
        print(f"| to_mnist, 280x280 canvas PNG bytes ({name}) -> 28x28 | {whole:.3f} |")
    split = median_ms(lambda: split_digits(number_ink), 100)
    print(f"| split_digits, 5 digits on 1000x200 (full-resolution ink map) | {split:.3f} |")
    both = median_ms(lambda: split_digits(ink_map(number).ink), 100)
    print(f"| ink_map + split_digits, 5 digits on a 1000x200 array | {both:.3f} |")


def calibrate(count: int) -> None:
    """Print MNIST's stroke width as preprocess measures it: the source of STROKE_TARGET."""
    mnist = load_dataset(quiet=True)
    widths = []
    for digit in mnist.x_train[:count]:
        ink = to_ink(digit.astype(np.float32) / 255)
        x0, y0, x1, y1 = ink_box(ink)
        crop = np.ascontiguousarray(ink[y0:y1, x0:x1])
        scale = STROKE_SCALE * DIGIT / max(crop.shape)
        widths.append(stroke_width(_resize(crop, scale)))
    print(f"MNIST stroke width at {STROKE_SCALE * DIGIT} px: median {np.median(widths):.2f}, "
          f"5-95% {np.percentile(widths, 5):.2f}-{np.percentile(widths, 95):.2f} (n={count})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX file, model file or run folder (default: the shipped model)")
    parser.add_argument("--numbers", type=int, default=300,
                        help="written numbers per kind for the exact-match table (default: 300)")
    parser.add_argument("--n", type=int, default=2000, help="MNIST test digits per style (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed (default: 0)")
    parser.add_argument("--scribbles", type=int, default=150,
                        help="lines holding a scribble, read to count those taken for numbers (default: 150)")
    parser.add_argument("--ablation", action="store_true", help="also measure without each optional step")
    parser.add_argument("--timing-only", action="store_true", help="only the timings (no model needed)")
    parser.add_argument("--calibrate", action="store_true", help="only print MNIST's stroke width")
    parser.add_argument("--lines", default="shipped",
                        help="line model for numbers: an ONNX file of numbre train-lines, 'shipped' "
                             "(default) or 'none' (cut into digits alone)")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.n)
        return
    if not args.timing_only:
        lines = {"shipped": True, "none": False}.get(args.lines, args.lines)
        recognizer = Recognizer.load(args.model, lines=lines)
        line_model = recognizer.line_model.path if recognizer.line_model is not None else "none"
        print(f"model: {recognizer.model.path} ({recognizer.meta['architecture']}); line model: {line_model}")
        accuracy_table(recognizer, args.n, args.seed, args.ablation)
        if args.numbers > 0:  # --numbers 0: the digits only
            number_table(recognizer, args.numbers, args.seed)
        if args.scribbles > 0:
            scribble_table(recognizer, args.scribbles)
        read_timing(recognizer, args.seed)
    timings(args.seed)


if __name__ == "__main__":
    main()
