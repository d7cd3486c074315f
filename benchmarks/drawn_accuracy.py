"""How well the whole path reads digits as people hand them in: drawn, written, photographed.

Renders MNIST test digits with numbre.drawn in each style (canvas, paper,
marker, photo), sends each rendered image through numbre.preprocess.to_mnist
and a trained recognizer, and prints accuracy per style as a markdown table,
next to the raw 28x28 MNIST accuracy and MNIST digits sent through the same
preprocessing. `--ablation` repeats the styles with each optional step turned
off or on (stroke normalisation, deskew) to show what each one is worth.
Also times to_mnist on 280x280 canvas PNGs (bytes in, 28x28 out) next to
PNG decoding alone, and split_digits on a five-digit 1000x200 line.

Run:  python benchmarks/drawn_accuracy.py [--model PATH] [--n 2000] [--ablation] [--timing-only]
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
from numbre.drawn import STYLES, drawn_digit, drawn_number
from numbre.images import load_image
from numbre.preprocess import DIGIT, STROKE_SCALE, _resize, ink_box, ink_map, stroke_width, to_ink, to_mnist
from numbre.segment import split_digits

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "runs" / "default" / "model.safetensors"
Recognizer = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 in [0, 1] -> (N,) predicted classes
VARIANTS = {"default": {}, "no stroke normalisation": {"normalise_stroke": False},
            "with deskew": {"deskew": True}}


def torch_recognizer(path: Path | None) -> Recognizer:
    """The model call, kept behind one function so an ONNX Runtime session can replace it."""
    import torch

    from numbre.checkpoint import load_torch_model

    network, _ = load_torch_model(path)

    def recognize(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = network(torch.from_numpy(np.ascontiguousarray(images, np.float32))[:, None])
        return logits.argmax(dim=1).numpy()

    return recognize


def rendered(style: str, digits: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [drawn_digit(digit, rng, style=style) for digit in digits]


def accuracy(recognize: Recognizer, images: np.ndarray, labels: np.ndarray) -> float:
    batches = [recognize(images[start:start + 500]) for start in range(0, len(images), 500)]
    predictions = np.concatenate(batches)
    return float((predictions == labels).mean())


def accuracy_table(recognize: Recognizer, count: int, seed: int, ablation: bool) -> None:
    mnist = load_dataset(quiet=True)
    digits, labels = mnist.x_test[:count], mnist.y_test[:count].astype(np.int64)
    variants = VARIANTS if ablation else {"default": {}}
    inputs = {"mnist 28x28 via to_mnist": list(digits)}
    started = time.perf_counter()
    for index, style in enumerate(STYLES):
        inputs[style] = rendered(style, digits, seed + index)
    print(f"rendered {count} digits x {len(STYLES)} styles in {time.perf_counter() - started:.0f} s\n")
    header = "| input | n | " + " | ".join(variants) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    raw = accuracy(recognize, digits.astype(np.float32) / 255, labels)
    print(f"| raw MNIST 28x28 (no preprocessing) | {count} | {raw:.2%} |" + " |" * (len(variants) - 1))
    for name, images in inputs.items():
        cells = []
        for options in variants.values():
            prepared = np.stack([to_mnist(image, **options).image for image in images])
            cells.append(f"{accuracy(recognize, prepared, labels):.2%}")
        print(f"| {name} | {count} | " + " | ".join(cells) + " |")


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
        decode = median_ms(lambda data=data: Image.open(io.BytesIO(data)).load(), 500)
        whole = median_ms(lambda data=data: to_mnist(data), 500)
        print(f"| PNG decoding alone, 280x280 canvas ({name}) | {decode:.3f} |")
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
                        help=f"model file (default: {DEFAULT_MODEL} if present, else the shipped model)")
    parser.add_argument("--n", type=int, default=2000, help="MNIST test digits per style (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="rendering seed (default: 0)")
    parser.add_argument("--ablation", action="store_true", help="also measure without each optional step")
    parser.add_argument("--timing-only", action="store_true", help="only the timings (no model needed)")
    parser.add_argument("--calibrate", action="store_true", help="only print MNIST's stroke width")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.n)
        return
    if not args.timing_only:
        model = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.exists() else None)
        print(f"model: {model or 'shipped default'}")
        accuracy_table(torch_recognizer(model), args.n, args.seed, args.ablation)
    timings(args.seed)


if __name__ == "__main__":
    main()
