"""How well a model says "not a digit", and how often it wrongly says so for a digit.

Every image goes through numbre.reading.preprocess.to_mnist, the pipeline users get
(an image it finds blank counts as rejected), then the model, then the
rejection policy stored in the model file (numbre.model.rejection, fitted on MNIST
validation digits at the end of training). Targets (issue "read real
handwriting"): at most 1% of MNIST test digits rejected, at least 95% of
Fashion-MNIST test images rejected, and the calibration error (ECE) of the
confidence, before and after temperature scaling.

Nothing here is fitted on the sets it measures. The ablation table refits the
policy with fewer signs on the same validation digits the model file names
(the last `val_images` of the MNIST training set) to show what each sign adds.

Sets: MNIST test as stored and preprocessed; MNIST test digits rendered as user
drawings and photos (numbre.data.drawn); Fashion-MNIST test; scribbles drawn with a
pen on a 280 px canvas (made here, not by numbre.training.negatives); letters typed in
the machine's fonts, split into those the negatives are made of and all other
letters (many of which look like digits: O, l, S, Z, b, g, q); and fresh
images from numbre.training.negatives, the generator the model was trained with.

Run:  python benchmarks/rejection.py [--model PATH] [--fashion FOLDER] [--drawn 1000] [--no-ablation]
"""

from __future__ import annotations

import argparse
import string
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from numbre.data import load_dataset
from numbre.data.drawn import STYLES, drawn_digit
from numbre.model.onnx_model import OnnxModel
from numbre.model.rejection import DIGITS, SIGNS, Rejector, expected_calibration_error, fit_rejector
from numbre.reading.preprocess import to_mnist
from numbre.reading.recognize import resolve_onnx
from numbre.training.negatives import LETTERS, font_files

FASHION = Path("/usr/share/datasets/fashion-mnist")
Logits = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) float32 in [0, 1] -> (N, C) logits
OTHER_LETTERS = "".join(sorted(set(string.ascii_letters) - set(LETTERS)))
VARIANTS = {"confidence only": ("confidence",), "ink + stroke only": ("ink", "stroke"),
            "confidence + ink + stroke (ten-class default)": ("confidence", "ink", "stroke"),
            "confidence + class (default)": ("confidence", "not_a_digit"), "all four": SIGNS}


def onnx_logits(model: OnnxModel) -> Logits:
    """The model call the Recognizer makes: ONNX Runtime, in batches of 1,000."""

    def logits(images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(images, np.float32)
        return np.concatenate([model.logits(batch[start:start + 1000])
                               for start in range(0, len(batch), 1000)])

    return logits


def preprocess(sources) -> tuple[np.ndarray, np.ndarray]:
    """Each source through to_mnist: (N, 28, 28) float32 images and (N,) True where it was blank."""
    prepared = [to_mnist(source) for source in sources]
    return np.stack([item.image for item in prepared]), np.array([item.empty for item in prepared])


def scribbles(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Pen scribbles on a 280 px canvas: a curve through 6-14 random points, white on black."""
    images = []
    for _ in range(count):
        canvas = Image.new("L", (280, 280))
        points = [tuple(point) for point in rng.uniform(40, 240, size=(rng.integers(6, 15), 2))]
        ImageDraw.Draw(canvas).line(points, fill=255, width=int(rng.integers(6, 22)), joint="curve")
        images.append(np.asarray(canvas))
    return images


def typed(letters: str) -> list[np.ndarray]:
    """Each letter in each font found on this machine, black on white paper, 160 px tall."""
    images = []
    for path in font_files():
        try:
            font = ImageFont.truetype(str(path), 160)
        except OSError:
            continue
        for letter in letters:
            canvas = Image.new("L", (280, 280), 255)
            ImageDraw.Draw(canvas).text((140, 140), letter, fill=0, font=font, anchor="mm")
            if np.asarray(canvas).min() < 128:  # the font has the letter
                images.append(np.asarray(canvas))
    return images


def synthetic_negatives(count: int) -> np.ndarray:
    import torch

    from numbre.training.negatives import make_negatives

    torch.manual_seed(2024)  # not a seed training uses for its batches
    return make_negatives(count)[:, 0].numpy()


def measure(policy: Rejector, logits: np.ndarray, images: np.ndarray, empty: np.ndarray,
            labels: np.ndarray | None) -> dict[str, float]:
    """Rejected share (blank counts as rejected), what each sign catches, digit figures when labelled."""
    scores = policy.scores(logits, images)
    probabilities, reasons = policy.decide(logits, images)
    rejected = np.array([reason is not None for reason in reasons]) | empty
    row = {"images": len(images), "rejected": rejected.mean(), "blank": empty.mean(),
           "by confidence": (scores["confidence"] < policy.min_confidence).mean(),
           "by class": (scores["not_a_digit"] > policy.max_not_a_digit).mean(),
           "by ink": (scores["ink"] > policy.max_ink).mean(),
           "by stroke": (scores["stroke"] > policy.max_stroke).mean()}
    if labels is not None:
        correct = probabilities.argmax(1) == labels
        row["accuracy"] = correct.mean()
        row["accepted accuracy"] = correct[~rejected].mean() if (~rejected).any() else float("nan")
        raw = Rejector().scores(logits, images)["probabilities"]
        row["ECE raw"] = expected_calibration_error(raw, labels)
        row["ECE calibrated"] = expected_calibration_error(probabilities, labels)
    return row


def percent(value: float | None) -> str:
    return "" if value is None or np.isnan(value) else f"{100 * value:.2f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="ONNX file, model file or run folder (default: the shipped model).")
    parser.add_argument("--fashion", type=Path, default=FASHION,
                        help=f"Fashion-MNIST folder (default: {FASHION}).")
    parser.add_argument("--drawn", type=int, default=1000,
                        help="MNIST test digits rendered per drawing style (default: 1000).")
    parser.add_argument("--scribbles", type=int, default=1000, help="Canvas scribbles (default: 1000).")
    parser.add_argument("--no-ablation", action="store_true",
                        help="Skip the table of policies with fewer signs (default: show it).")
    args = parser.parse_args()

    started = time.perf_counter()
    model = OnnxModel.load(resolve_onnx(args.model))  # what `numbre predict` and the server run
    meta = model.meta
    if "rejection" not in meta:
        raise SystemExit(f"{model.path} has no rejection policy (trained without a validation split)")
    policy = Rejector.from_meta(meta)
    logits_of = onnx_logits(model)
    mnist = load_dataset(quiet=True)
    fashion = load_dataset(str(args.fashion), quiet=True)
    rng = np.random.default_rng(0)

    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    raw = mnist.x_test.astype(np.float32) / 255
    sets["MNIST test, as stored"] = (raw, np.zeros(len(raw), bool), mnist.y_test)
    sets["MNIST test, preprocessed"] = (*preprocess(mnist.x_test), mnist.y_test)
    chosen = rng.choice(len(mnist.x_test), size=args.drawn, replace=False)
    for style in STYLES:
        drawn = [drawn_digit(mnist.x_test[index], rng, style=style) for index in chosen]
        sets[f"MNIST test drawn: {style}"] = (*preprocess(drawn), mnist.y_test[chosen])
    sets["Fashion-MNIST test, preprocessed"] = (*preprocess(fashion.x_test), None)
    fashion_raw = fashion.x_test.astype(np.float32) / 255
    sets["Fashion-MNIST test, as stored"] = (fashion_raw, np.zeros(len(fashion_raw), bool), None)
    sets["scribbles, 280 px canvas"] = (*preprocess(scribbles(args.scribbles, rng)), None)
    sets[f"letters of the negatives ({LETTERS})"] = (*preprocess(typed(LETTERS)), None)
    sets["other letters (many digit-like)"] = (*preprocess(typed(OTHER_LETTERS)), None)
    negatives = synthetic_negatives(1000)
    sets["numbre.training.negatives, fresh seed"] = (negatives, np.zeros(len(negatives), bool), None)
    logits = {name: logits_of(images) for name, (images, _, _) in sets.items()}

    fitted = policy.fitted
    form = f", {meta['quantized']}" if "quantized" in meta else ""
    print(f"model {model.path} ({meta['architecture']}{form}), float model's test accuracy "
          f"{meta.get('test', {}).get('accuracy', float('nan')):.2%}")
    print(f"policy: temperature {policy.temperature:.3f}, min confidence {policy.min_confidence:.4f}, "
          f"max not-a-digit {policy.max_not_a_digit:.4f}, max ink {policy.max_ink:.4f}, "
          f"max stroke {policy.max_stroke:.3f} px; fitted on {fitted.get('images')} validation digits "
          f"to reject {percent(fitted.get('target_rejected'))} (rejected {percent(fitted.get('rejected'))})")
    print()
    columns = ["images", "rejected", "blank", "by confidence", "by class", "by ink", "by stroke",
               "accuracy", "accepted accuracy", "ECE raw", "ECE calibrated"]
    print("| set | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, (images, empty, labels) in sets.items():
        row = measure(policy, logits[name], images, empty, labels)
        cells = [str(row["images"])] + [
            (f"{row[key]:.4f}" if key.startswith("ECE") else percent(row[key])) if key in row else ""
            for key in columns[1:]]
        print(f"| {name} | " + " | ".join(cells) + " |")

    images, empty, _ = sets["Fashion-MNIST test, preprocessed"]
    rejected = np.array([reason is not None for reason in policy.decide(logits[
        "Fashion-MNIST test, preprocessed"], images)[1]]) | empty
    print("\nFashion-MNIST test rejected per class: " + ", ".join(
        f"{name} {percent(rejected[fashion.y_test == index].mean())}"
        for index, name in enumerate(fashion.class_names)))

    if not args.no_ablation:
        count = meta["data"]["val_images"]
        val_images = mnist.x_train[-count:].astype(np.float32) / 255
        val_logits, val_labels = logits_of(val_images), mnist.y_train[-count:]
        shown = ["MNIST test, preprocessed", "MNIST test drawn: photo", "Fashion-MNIST test, preprocessed",
                 "scribbles, 280 px canvas", f"letters of the negatives ({LETTERS})"]
        print(f"\nPolicies refitted on the same {count} validation digits "
              f"(target {percent(fitted.get('target_rejected', 0.005))}), rejected share:")
        print("| signs | " + " | ".join(shown) + " |")
        print("|---|" + "---:|" * len(shown))
        for variant, signs in VARIANTS.items():
            if "not_a_digit" in signs and len(model.class_names) <= DIGITS:
                continue
            refitted = fit_rejector(val_logits, val_labels, val_images,
                                    fitted.get("target_rejected", 0.005), signs=signs)
            cells = [percent(measure(refitted, logits[name], *sets[name][:2], None)["rejected"])
                     for name in shown]
            print(f"| {variant} | " + " | ".join(cells) + " |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
