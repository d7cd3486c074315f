"""How `numbre batch` scales on this machine: one process against Ray Data with 1 and 2 workers.

    python benchmarks/batch_scale.py              # 20,000 canvas-sized PNGs (280x280), made once
    python benchmarks/batch_scale.py --count 4000

The same PNGs (digits drawn in the drawing page's style, see numbre.data.drawn) go through
`numbre predict --json` (one process, one image after another) and `numbre batch` on a local
Ray with 1 and 2 workers, each a fresh command in its own process, all in this one run.
Printed as a markdown table:

- wall: the whole command, start to exit (Ray's start-up included for batch);
- starting Ray workers: for batch, from Ray being up to the first rows coming back (worker
  processes started, numbre imported, the model loaded): paid once per run;
- images/s: for predict, images over the wall time (its start-up is about a second); for batch,
  the rate once the workers are up (`numbre batch` prints it), so the comparison is of the
  reading loops, not of a one-off start-up;
- speed-up: against batch with 1 worker; overhead: how much slower batch with 1 worker reads
  than the one-process loop.

Targets: 2 workers at least 1.7 times 1 worker; Ray's overhead against one process at most 15%.
On a machine shared with other work the 2-worker figure is depressed: both cores are rarely free.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from numbre.data.drawn import drawn_digit, glyph, page_export

NUMBRE = [sys.executable, "-m", "numbre"]


def make_images(folder: Path, count: int) -> None:
    """`count` 280x280 canvas PNGs as the drawing page exports them, made once per count."""
    done = folder / f".complete-{count}"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        image = page_export(drawn_digit(glyph(index % 10, rng), rng, canvas=280, style="canvas"))
        Image.fromarray(image).save(folder / f"{index:06d}.png")
    done.touch()


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return wall, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="images (default 20,000)")
    parser.add_argument("--images", type=Path, default=Path(tempfile.gettempdir()) / "numbre-batch-scale",
                        help="where the PNGs are made (kept for the next run)")
    args = parser.parse_args()
    folder = args.images / str(args.count)
    make_images(folder, args.count)

    rows = []
    wall, output = timed([*NUMBRE, "predict", "--json", str(folder)])
    answered = output.count('"file"')
    assert answered == args.count, f"predict answered {answered} of {args.count}"
    rows.append(("numbre predict (one process)", wall, 0.0, args.count / wall))
    for workers in (1, 2):
        out = Path(tempfile.mkdtemp(prefix="numbre-batch-out-"))
        try:
            wall, output = timed([*NUMBRE, "batch", str(folder), "-o", str(out / "out"),
                                  "--workers", str(workers), "--no-progress"])
        finally:
            shutil.rmtree(out, ignore_errors=True)
        found = re.search(r"read (\d+) images in ([\d.]+) s "
                          r"\(([\d.]+) s starting workers, then (\d+) images/s", output)
        if not found or int(found.group(1)) != args.count:
            raise SystemExit(f"numbre batch --workers {workers} did not read every image:\n{output[-2000:]}")
        rows.append((f"numbre batch, {workers} worker{'s' * (workers > 1)}", wall, float(found.group(3)),
                     float(found.group(4))))

    one_process, one_worker = rows[0][3], rows[1][3]
    print(f"{args.count:,} canvas PNGs (280x280)\n")
    print("| run | wall (s) | of it starting Ray workers (s) | images/s | vs batch 1 worker |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, startup, rate in rows:
        print(f"| {name} | {wall:.1f} | {startup:.1f} | {rate:.0f} | {rate / one_worker:.2f}x |")
    print(f"\nspeed-up, 2 workers over 1: {rows[2][3] / one_worker:.2f}x (target >= 1.7x)")
    print(f"Ray's overhead, 1 worker against one process: {1 - one_worker / one_process:+.0%} "
          "(target <= 15%)")


if __name__ == "__main__":
    main()
