"""Training speed and accuracy on this machine: the figures behind the README's model table.

For each recipe, trains with several seeds and reports test accuracy (mean and
worst seed) and training wall time (mean and median), measured from the data held in
memory as tensors to the final test evaluation done. Targets:

- numbre-fast reaches >= 99.0% in <= 10 s;
- numbre (the default) reaches >= 99.5% in <= 60 s, and the whole
  `numbre train` command, data loading included, takes at most 10 s more;
- each classic model with its article recipe reaches at least the accuracy
  Keras reached, in at most half of Keras' time (PRODUCT.md).

Run:  python benchmarks/train_speed.py [--seeds 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from numbre.data import load_dataset
from numbre.model.zoo import get_entry
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer

# name -> (target test accuracy, target training seconds); Keras figures from PRODUCT.md.
KERAS = {"seed-cnn-a": (0.9886, 99.5), "numbre-mlp": (0.9708, 38.7), "mlp-3-hidden": (0.9696, 73.8),
         "seed-cnn-b": (0.9906, 167.0)}
TARGETS = {"numbre-fast": (0.990, 10.0), "numbre": (0.995, 60.0),
           **{name: (accuracy, seconds / 2) for name, (accuracy, seconds) in KERAS.items()}}


def train_once(name: str, seed: int, dataset) -> tuple[float, float]:
    recipe = dataclasses.asdict(get_entry(name).recipe)
    config = TrainConfig(**recipe, model=name, seed=seed)
    result = Trainer(config, dataset, None, progress=False).run()
    return result.test.accuracy, result.train_seconds


def whole_command(name: str) -> float:
    """Wall time of `numbre train` as a user runs it: process start, data loading, training, files."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "numbre", "train", "-m", name, "--out",
                        str(Path(folder) / "run"), "-q"], check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per recipe (default: 3)")
    parser.add_argument("--only", nargs="*", default=list(TARGETS), help="recipes to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()
    dataset = load_dataset(quiet=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seeds} seeds each")
    header = ("model", "recipe", "accuracy mean", "worst seed", "target", "train s mean",
              "train s median", "target s", "met")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = []
    for name in args.only:
        accuracies, seconds = [], []
        for seed in range(args.seeds):
            accuracy, elapsed = train_once(name, seed, dataset)
            accuracies.append(accuracy)
            seconds.append(elapsed)
        target_accuracy, target_seconds = TARGETS[name]
        mean, median = statistics.mean(accuracies), statistics.median(seconds)
        mean_seconds = statistics.mean(seconds)
        met = mean >= target_accuracy and mean_seconds <= target_seconds
        row = {"model": name, "recipe": get_entry(name).recipe.describe(), "accuracies": accuracies,
               "seconds": seconds, "mean_accuracy": mean, "mean_seconds": mean_seconds,
               "median_seconds": median,
               "target_accuracy": target_accuracy, "target_seconds": target_seconds, "met": met}
        rows.append(row)
        print(f"| {name} | {row['recipe']} | {mean:.2%} | {min(accuracies):.2%} | {target_accuracy:.2%} "
              f"| {mean_seconds:.1f} | {median:.1f} | {target_seconds:.1f} | {'yes' if met else 'NO'} |",
              flush=True)
    if "numbre" in args.only:
        commands = [whole_command("numbre") for _ in range(args.seeds)]
        default = next(row for row in rows if row["model"] == "numbre")
        extra = statistics.median(commands) - default["median_seconds"]  # both medians
        print(f"\nwhole `numbre train` command (median of {len(commands)}): "
              f"{statistics.median(commands):.1f} s, {extra:.1f} s beyond training (target <= 10 s)")
        rows.append({"model": "numbre (whole command)", "seconds": commands, "extra_seconds": extra})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
