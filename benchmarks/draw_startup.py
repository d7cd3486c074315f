"""How fast `numbre draw` shows its window: the time from process start to the first frame.

The window reports it itself ("first frame shown X s after start", measured from the process's own
start time, so the interpreter's start-up counts); the wall time as seen from here, until the
process has closed again after `--quit-after 1`, is printed beside it. Runs under SDL's dummy video
driver by default (no screen needed); `--xvfb` runs each start on a fresh Xvfb display instead,
as a desktop would show it. The first run fills the OS file cache and is not counted.

Target on this 2-core machine: under 2 s to the first frame (median).

Run:  python benchmarks/draw_startup.py [--runs 7] [--xvfb]
Needs: the desktop extra (`pip install -e '.[desktop]'`); for --xvfb, Debian's xvfb.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from xvfb import xvfb_display  # a sibling module: the benchmarks run as scripts from this folder

TARGET_S = 2.0
COMMAND = [sys.executable, "-m", "numbre", "draw", "--quit-after", "1"]


def one_start(xvfb: bool) -> tuple[float, float]:
    """(first frame after process start as the window reports it, wall time until it has closed)."""
    with tempfile.TemporaryDirectory() as folder, \
            (xvfb_display("draw_startup") if xvfb else contextlib.nullcontext(None)) as display:
        environment = {**os.environ, "SDL_VIDEODRIVER": "x11" if display else "dummy"}
        if display:
            environment["DISPLAY"] = display
        started = time.perf_counter()
        done = subprocess.run(COMMAND, env=environment, cwd=folder, capture_output=True, text=True,
                              timeout=60)
        wall = time.perf_counter() - started
    found = re.search(r"first frame shown (\d+\.\d+) s after start", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"draw_startup: numbre draw failed (exit {done.returncode}):\n{done.stderr}")
    return float(found[1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="counted starts (default: 7)")
    parser.add_argument("--xvfb", action="store_true",
                        help="show the window on Xvfb instead of SDL's dummy driver")
    args = parser.parse_args()
    one_start(args.xvfb)  # fills the OS file cache
    runs = [one_start(args.xvfb) for _ in range(args.runs)]
    first, wall = statistics.median(run[0] for run in runs), statistics.median(run[1] for run in runs)
    where = "Xvfb" if args.xvfb else "SDL dummy driver"
    print(f"# numbre draw, {args.runs} starts on {where}, {os.cpu_count()} cores")
    print("| measure | median | range | target | met |\n|---|---|---|---|---|")
    print(f"| first frame, from process start | {first:.2f} s | {min(r[0] for r in runs):.2f}-"
          f"{max(r[0] for r in runs):.2f} s | < {TARGET_S:g} s | {'yes' if first < TARGET_S else 'NO'} |")
    print(f"| start, first frame and close, wall | {wall:.2f} s | {min(r[1] for r in runs):.2f}-"
          f"{max(r[1] for r in runs):.2f} s | - | - |")


if __name__ == "__main__":
    main()
