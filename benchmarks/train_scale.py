"""Distributed training on this machine: time per epoch and accuracy for 1 and 2 processes.

Each setting runs `numbre train` as a user does, several times, interleaved (one run of each in
turn, so that a change in the machine's load touches them all alike); repeat k uses seed k for
every setting, so the accuracies show the seeds' spread. Threads per process are set
so that the cores are not oversubscribed: on 2 cores, 1 process of 2 threads against 2 processes
of 1 thread; 1 process of 1 thread is shown as well, the work one rank does alone. Time per epoch
is the `seconds` of each epoch in history.json (rank 0's wall time from an epoch's first step to
its checkpoint), the median over all epochs of all repeats; the whole command includes starting
the processes and loading the data.

Run:  python benchmarks/train_scale.py [--model numbre-fast] [--epochs 2] [--repeats 3]
                                       [--max-train N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (label, processes, threads per process)
SETTINGS = [("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1),
            ("1 process x 1 thread", 1, 1)]


def run_once(model: str, epochs: int, max_train: int | None, nproc: int, threads: int, seed: int,
             out: Path) -> dict[str, float | list[float]]:
    command = [sys.executable, "-m", "numbre", "train", "-m", model, "--epochs", str(epochs),
               "--threads", str(threads), "--nproc", str(nproc), "--seed", str(seed), "--out", str(out),
               "--overwrite", "-q",
               *(["--max-train", str(max_train)] if max_train else [])]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    whole = time.perf_counter() - started
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"epochs": [row["seconds"] for row in history], "accuracy": metrics["accuracy"], "whole": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="numbre-fast")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=None)
    args = parser.parse_args()
    print(f"# {args.model}, {args.epochs} epochs, {args.max_train or 'all'} training images, "
          f"{args.repeats} repeats; {os.cpu_count()} cores; load average before "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    results: dict[str, list[dict]] = {label: [] for label, _, _ in SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for label, nproc, threads in SETTINGS:
                result = run_once(args.model, args.epochs, args.max_train, nproc, threads,
                                  repeat, Path(folder) / f"{nproc}-{threads}")
                results[label].append(result)
                print(f"  repeat {repeat + 1}: {label}: epochs {result['epochs']} s, accuracy "
                      f"{result['accuracy']:.4f}, whole {result['whole']:.1f} s", flush=True)
    print(f"# load average after {os.getloadavg()[0]:.1f}")
    base = statistics.median(s for run in results[SETTINGS[0][0]] for s in run["epochs"])
    print()
    print("| run | s per epoch (median) | vs 1 process x 2 threads | test accuracy (median, min-max) "
          "| whole command s (median) |")
    print("|---|---:|---:|---:|---:|")
    for label, _, _ in SETTINGS:
        runs = results[label]
        epoch = statistics.median(s for run in runs for s in run["epochs"])
        accuracies = [run["accuracy"] for run in runs]
        print(f"| {label} | {epoch:.2f} | {base / epoch:.2f}x | {statistics.median(accuracies):.2%} "
              f"({min(accuracies):.2%}-{max(accuracies):.2%}) | "
              f"{statistics.median(run['whole'] for run in runs):.1f} |")


if __name__ == "__main__":
    main()
