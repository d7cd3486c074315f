"""Where the time of one canvas prediction goes: `Recognizer.predict(png_bytes)` step by step.

The web page sends a 280x280 opaque RGBA PNG (black strokes on white, `numbre.data.drawn.page_export`);
the server's throughput is bounded by this CPU cost. The steps are timed in
sequence, each run as `predict` runs it, and the median of each over
--repeats runs is printed, then the median of `predict` itself. (Timed alone
in a tight loop, a step looks up to twice as fast as it is inside `predict`,
where the other steps' code and data have pushed it out of the caches.)
Times are the thread's CPU time by default, which other jobs on the machine
disturb less than the wall clock (`--wall` for that).

`--process N` also times `python -m numbre predict one.png` as a whole
process (median of N runs); `--profile` adds a cProfile listing of `predict`.

Run:  python benchmarks/preprocess_profile.py [--repeats 1000] [--seed 0] [--wall] [--process 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inference_speed import canvas_png  # this folder is on sys.path when a script here runs
from numbre.reading.images import open_image
from numbre.reading.preprocess import center_ink, ink_map
from numbre.reading.recognize import Recognizer
from numbre.reading.segment import count_digits


def step_medians(recognizer: Recognizer, png: bytes, repeats: int, clock) -> dict[str, float]:
    """Median milliseconds of each step of `predict`, run in sequence as `predict` runs them."""
    steps: dict[str, list[float]] = {}
    for run in range(repeats + repeats // 10):
        marks = [("start", clock())]
        picture = open_image(png)
        marks.append(("decode (PNG to PIL image)", clock()))
        found = ink_map(picture)
        marks.append(("ink_map (rest)", clock()))
        count_digits(found.ink)
        marks.append(("count_digits (several digits?)", clock()))
        image = center_ink(found.ink, box=found.box)[None]
        marks.append(("center_ink", clock()))
        logits = recognizer.model.logits(image)
        marks.append(("network", clock()))
        recognizer.rejector.decide(logits, image)
        marks.append(("rejector", clock()))
        if run >= repeats // 10:  # the first tenth warms up
            for (_, before), (name, after) in itertools.pairwise(marks):
                steps.setdefault(name, []).append(after - before)
    return {name: statistics.median(times) * 1000 for name, times in steps.items()}


def median_ms(call, repeats: int, clock) -> float:
    for _ in range(repeats // 10):
        call()
    times = []
    for _ in range(repeats):
        started = clock()
        call()
        times.append(clock() - started)
    return statistics.median(times) * 1000


def process_seconds(png: bytes, runs: int) -> float:
    """Median wall time of `python -m numbre predict one.png`, the first run (cold file cache) left out."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.png"
        path.write_bytes(png)
        times = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "numbre", "predict", str(path)], check=True,
                           capture_output=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wall", action="store_true", help="time by the wall clock, not CPU time")
    parser.add_argument("--process", type=int, default=0, metavar="N",
                        help="also time `numbre predict one.png` as a process, median of N runs")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of predict")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.thread_time

    recognizer = Recognizer.load()
    png = canvas_png(args.seed)
    for name, milliseconds in step_medians(recognizer, png, args.repeats, clock).items():
        print(f"{name:>32}: {milliseconds:6.3f} ms")
    whole = median_ms(lambda: recognizer.predict(png), args.repeats, clock)
    print(f"{'predict (bytes -> Prediction)':>32}: {whole:6.3f} ms")
    if args.process:
        print(f"{'numbre predict one.png':>32}: {process_seconds(png, args.process):6.3f} s (wall)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeats):
            recognizer.predict(png)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
