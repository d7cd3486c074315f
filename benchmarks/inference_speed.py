"""Inference speed on this machine, without torch: the figures behind the README's speed table.

Targets (2-core CPU):
- the model alone, one prepared 28x28 image: <= 0.1 ms median;
- one 280x280 canvas PNG from bytes to result (decode, preprocess, model, rejection): <= 1 ms median;
- batch throughput: >= 20,000 MNIST-sized images per second (the network on prepared 28x28 images;
  the whole `predict_batch` path on raw 28x28 arrays is reported beside it);
- `numbre predict one.png` as a whole process: <= 0.6 s median.

Run:  python benchmarks/inference_speed.py [--model FILE.onnx] [--json OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from numbre.drawn import drawn_digit, glyph
from numbre.recognize import Recognizer


def median_ms(call, repeats: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def canvas_png(seed: int = 0) -> bytes:
    """A 280x280 RGBA canvas export with a mouse-drawn digit, as the web page sends it."""
    image = drawn_digit(glyph(7), np.random.default_rng(seed), style="canvas")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def mnist_like(count: int) -> np.ndarray:
    """(count, 28, 28) float32 digits: the test set when it is cached, else the stroke font."""
    try:
        from numbre.data import load_dataset

        images = load_dataset(quiet=True).x_test
    except Exception:  # no data here: any 28x28 digits do for timing
        images = np.stack([glyph(digit % 10) for digit in range(100)])
    return (np.resize(images, (count, 28, 28)) / 255).astype(np.float32)


def process_seconds(model: str | None, png: bytes, repeats: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.png"
        path.write_bytes(png)
        command = [sys.executable, "-m", "numbre", "predict", str(path)]
        if model:
            command += ["--model", model]
        times = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:])  # the first run fills the OS file cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="an ONNX model (default: the shipped one)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    recognizer = Recognizer.load(args.model)
    png = canvas_png()
    one = mnist_like(1)
    batch = mnist_like(10_000)
    raw = [(image * 255).astype(np.uint8) for image in mnist_like(2_000)]

    model_ms = median_ms(lambda: recognizer.model.logits(one), 3000)
    canvas_ms = median_ms(lambda: recognizer.predict(png), 1000)
    recognizer.model.logits(batch)  # make the all-cores session
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for start in range(0, len(batch), 1000):
            recognizer.model.logits(batch[start:start + 1000])
        runs.append(len(batch) / (time.perf_counter() - started))
    network_rate = statistics.median(runs)
    started = time.perf_counter()
    recognizer.predict_batch(raw)
    pipeline_rate = len(raw) / (time.perf_counter() - started)
    process_s = process_seconds(args.model, png, 7)

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, model "
          f"{recognizer.meta.get('architecture')} ({recognizer.meta.get('quantized', 'float32')})")
    print("| measure | median | target | met |")
    print("|---|---|---|---|")
    rows = [
        ("model alone, one 28x28 image", f"{model_ms:.3f} ms", "<= 0.1 ms", model_ms <= 0.1),
        ("280x280 canvas PNG, bytes to result", f"{canvas_ms:.3f} ms", "<= 1 ms", canvas_ms <= 1.0),
        ("batch throughput, network (batches of 1,000)", f"{network_rate:,.0f} images/s",
         ">= 20,000 images/s", network_rate >= 20_000),
        ("batch throughput, predict_batch on raw 28x28 arrays", f"{pipeline_rate:,.0f} images/s", "-", None),
        ("`numbre predict one.png`, whole process", f"{process_s:.2f} s", "<= 0.6 s", process_s <= 0.6),
    ]
    for name, value, target, met in rows:
        print(f"| {name} | {value} | {target} | {'-' if met is None else 'yes' if met else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps({"model_ms": model_ms, "canvas_ms": canvas_ms,
                                         "network_images_per_s": network_rate,
                                         "pipeline_images_per_s": pipeline_rate,
                                         "process_s": process_s}, indent=2))


if __name__ == "__main__":
    main()
