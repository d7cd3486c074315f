"""Inference speed on this machine, without torch: the figures behind the README's speed table.

Targets (2-core CPU):
- the model alone, one prepared 28x28 image: <= 0.1 ms median;
- one 280x280 canvas PNG from bytes to result (decode, preprocess, model, rejection): <= 1 ms median,
  on the PNG the drawing page sends (black on white, opaque RGBA, as Chromium's canvas.toBlob writes it);
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

from numbre.data.drawn import drawn_digit, glyph, page_export
from numbre.reading.recognize import Recognizer


def median_ms(call, repeats: int, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def canvas_png(seed: int = 0, *, transparent: bool = False) -> bytes:
    """A 280x280 PNG of a mouse-drawn 7 as numbre's drawing page sends it (black on white, opaque
    RGBA); `transparent`: a canvas export with transparency around black paint instead."""
    rng = np.random.default_rng(seed)
    while True:
        image = drawn_digit(glyph(7), rng, style="canvas")
        if not transparent or image.shape[2] == 4:
            break
    if not transparent:
        image = page_export(image)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def block_median_ms(call, blocks: int = 7, repeats: int = 400) -> tuple[float, float, float]:
    """Median over `blocks` of each block's median, with the lowest and highest block medians.

    The machine's speed drifts over seconds (other guests on the host): one long run can fall
    wholly in a slow or a fast stretch, several short blocks show the spread.
    """
    medians = sorted(median_ms(call, repeats, warmup=20) for _ in range(blocks))
    return statistics.median(medians), medians[0], medians[-1]


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

    transparent = canvas_png(transparent=True)
    model_ms, model_low, model_high = block_median_ms(lambda: recognizer.model.logits(one), repeats=1000)
    canvas_ms, canvas_low, canvas_high = block_median_ms(lambda: recognizer.predict(png))
    transparent_ms, transparent_low, transparent_high = block_median_ms(
        lambda: recognizer.predict(transparent))
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
    print("| measure | median (range of 7 block medians) | target | met |")
    print("|---|---|---|---|")
    rows = [
        ("model alone, one 28x28 image", f"{model_ms:.3f} ms ({model_low:.3f}-{model_high:.3f})", "<= 0.1 ms",
         model_ms <= 0.1),
        ("280x280 canvas PNG as the drawing page sends it, bytes to result",
         f"{canvas_ms:.3f} ms ({canvas_low:.3f}-{canvas_high:.3f})", "<= 1 ms", canvas_ms <= 1.0),
        ("280x280 transparent canvas export, bytes to result",
         f"{transparent_ms:.3f} ms ({transparent_low:.3f}-{transparent_high:.3f})", "-", None),
        ("batch throughput, network (batches of 1,000)", f"{network_rate:,.0f} images/s",
         ">= 20,000 images/s", network_rate >= 20_000),
        ("batch throughput, predict_batch on raw 28x28 arrays", f"{pipeline_rate:,.0f} images/s", "-", None),
        ("`numbre predict one.png`, whole process", f"{process_s:.2f} s", "<= 0.6 s", process_s <= 0.6),
    ]
    for name, value, target, met in rows:
        print(f"| {name} | {value} | {target} | {'-' if met is None else 'yes' if met else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps({"model_ms": model_ms, "canvas_ms": canvas_ms,
                                         "transparent_canvas_ms": transparent_ms,
                                         "network_images_per_s": network_rate,
                                         "pipeline_images_per_s": pipeline_rate,
                                         "process_s": process_s}, indent=2))


if __name__ == "__main__":
    main()
