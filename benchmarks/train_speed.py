"""Training speed and accuracy on this machine: the figures behind the README's model table.

For each recipe, trains with several seeds and reports test accuracy (mean and
worst seed) and training wall time (mean and median), measured from the data held in
memory as tensors to the final test evaluation done. Targets:

- numbre-fast reaches >= 99.0% in <= 4 s;
- numbre (the default) reaches >= 99.5% in <= 20 s, and the whole
  `numbre train` command, data loading included, takes at most 10 s more;
- numbre-best reaches >= 99.75% as one model in <= 15 minutes (`--only numbre-best`);
- each classic model with its article recipe reaches at least the accuracy
  Keras reached, in at most half of Keras' time (PRODUCT.md).

After the accuracy table comes the roofline: per recipe, the multiply-accumulates of one
training step (forward and backward, counted by torch's FlopCounterMode on the step the Trainer
runs), the measured time per step, the achieved GFLOP/s and its share of the machine's peak for
the same kernels (a large matmul and a large convolution, fp32 and bfloat16, on the training's
threads). `--profile NAME` says where one epoch's time goes (torch.profiler), and `--levers NAME`
measures each speed lever side by side in one process, alternating, as medians.

Run:  python benchmarks/train_speed.py [--seeds 3] [--only NAME ...] [--no-train]
          [--profile NAME ...] [--levers NAME ...]
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
from collections.abc import Callable
from pathlib import Path

from numbre.training.threads import prefer_passive_waiting

prefer_passive_waiting()  # as `numbre train` does, before torch loads its OpenMP runtime

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from numbre.data import load_dataset  # noqa: E402
from numbre.model.zoo import get_entry  # noqa: E402
from numbre.training.config import TrainConfig  # noqa: E402
from numbre.training.loop import Trainer  # noqa: E402
from numbre.training.threads import describe_change, training_threads  # noqa: E402

# name -> (target test accuracy, target training seconds); Keras figures from PRODUCT.md.
KERAS = {"seed-cnn-a": (0.9886, 99.5), "numbre-mlp": (0.9708, 38.7), "mlp-3-hidden": (0.9696, 73.8),
         "seed-cnn-b": (0.9906, 167.0)}
TARGETS = {"numbre-fast": (0.990, 4.0), "numbre": (0.995, 20.0), "numbre-best": (0.9975, 900.0),
           **{name: (accuracy, seconds / 2) for name, (accuracy, seconds) in KERAS.items()}}


THREADS: list[int | None] = [None]  # --threads: None uses the cores this process may use


def train_once(name: str, seed: int, dataset) -> tuple[float, float, list[str]]:
    """Test accuracy, training seconds, and what the thread tuner changed (a time is only read
    rightly knowing the threads it ran on)."""
    recipe = dataclasses.asdict(get_entry(name).recipe)
    config = TrainConfig(**recipe, model=name, seed=seed, threads=THREADS[0])
    trainer = Trainer(config, dataset, None, progress=False)
    result = trainer.run()
    changes = [describe_change(change) for change in trainer.tuner.changes] if trainer.tuner else []
    return result.test.accuracy, result.train_seconds, changes


def whole_command(name: str) -> float:
    """Wall time of `numbre train` as a user runs it: process start, data loading, training, files."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "numbre", "train", "-m", name, "--out",
                        str(Path(folder) / "run"), "-q"], check=True, capture_output=True)
        return time.perf_counter() - started


# --- How close to the machine: peak kernels, counted work, measured steps --------------------

def _median_seconds(run: Callable[[], object], repeats: int = 7) -> float:
    run()  # warm-up: oneDNN picks and caches its kernels on the first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_gflops(repeats: int = 7) -> dict[str, float]:
    """GFLOP/s of a large matmul and a large 3x3 convolution, fp32 and bfloat16, on this process's
    threads: the most the kernels a training step uses reach here."""
    peaks = {}
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        peaks[f"matmul {label}"] = 2 * 2048**3 / _median_seconds(lambda a=a, b=b: a @ b, repeats) / 1e9
        x = torch.randn(256, 64, 14, 14, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(128, 64, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
        flops = 2 * 256 * 128 * 14 * 14 * 64 * 9
        peaks[f"conv {label}"] = flops / _median_seconds(lambda x=x, w=w: F.conv2d(x, w, padding=1),
                                                        repeats) / 1e9
    return peaks


def recipe_trainer(name: str, dataset, steps: int = 20, **changes) -> Trainer:
    """A Trainer of `name`'s recipe on the first `steps` batches: the model, optimizer and autocast
    the real run uses, for counting and timing steps."""
    recipe = dataclasses.asdict(get_entry(name).recipe) | changes
    recipe["max_train"] = recipe["batch_size"] * steps
    return Trainer(TrainConfig(**recipe, model=name, seed=0, threads=THREADS[0]), dataset, None,
                   progress=False)


def _step(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One optimizer step as the loop takes it, without data indexing or augmentation."""
    with torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.bf16):
        logits = trainer.model(images)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=trainer.config.label_smoothing)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()


def step_flops(trainer: Trainer) -> int:
    """FLOPs of one training step, forward and backward (2 per multiply-accumulate), counted by
    torch on the recipe's own model, memory format and autocast."""
    batch = trainer.config.batch_size
    images, labels = trainer.x[:batch], trainer.y[:batch]
    with FlopCounterMode(display=False) as counter:
        _step(trainer, images, labels)
    return counter.get_total_flops()


def kernel_step_seconds(trainer: Trainer, repeats: int = 5, steps: int = 10) -> float:
    """Median seconds of one step on a batch already in place: the arithmetic, without the data
    indexing, augmentation, evaluation and bookkeeping of the real loop."""
    batch = trainer.config.batch_size
    images, labels = trainer.x[:batch].clone(), trainer.y[:batch].clone()
    # Learning rate 0: the same arithmetic, on weights that stay put, so that a hundred steps on one
    # batch do not drift into weights (and gradients) no real run has.
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.0

    def steps_run() -> None:
        for _ in range(steps):
            _step(trainer, images, labels)

    return _median_seconds(steps_run, repeats) / steps


def roofline_rows(names: list[str], dataset, trained: dict[str, float],
                  peaks: dict[str, float]) -> list[dict]:
    """Per recipe: counted work per step, measured step times, achieved GFLOP/s, share of peak."""
    rows = []
    for name in names:
        trainer = recipe_trainer(name, dataset)
        flops = step_flops(trainer)
        kernel = kernel_step_seconds(trainer)
        peak = peaks["conv bf16" if trainer.bf16 else "conv fp32"]
        row = {"model": name, "macs_per_step": flops // 2, "batch": trainer.config.batch_size,
               "kernel_step_ms": kernel * 1000, "kernel_gflops": flops / kernel / 1e9, "peak_gflops": peak,
               "dtype": "bf16" if trainer.bf16 else "fp32"}
        if name in trained:
            full = recipe_trainer(name, dataset, steps=10**9)  # the whole training set: its step count
            run_step = trained[name] / full.total_steps
            row |= {"run_step_ms": run_step * 1000, "run_gflops": flops / run_step / 1e9,
                    "steps": full.total_steps}
        rows.append(row)
    return rows


def print_roofline(rows: list[dict], peaks: dict[str, float]) -> None:
    print(f"\n## Roofline ({torch.get_num_threads()} threads)\n")
    print("peak of the kernels here: " + ", ".join(f"{kind} {value:.0f} GFLOP/s"
                                                   for kind, value in peaks.items()))
    header = ("model", "MACs per step (fwd+bwd)", "batch", "step ms, arithmetic alone", "GFLOP/s",
              "step ms in the run", "GFLOP/s in the run", "peak (conv, same dtype)", "share of peak",
              "arithmetic share of the run")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        run_ms = f"{row['run_step_ms']:.1f}" if "run_step_ms" in row else "-"
        run_gflops = f"{row['run_gflops']:.0f}" if "run_gflops" in row else "-"
        achieved = row.get("run_gflops", row["kernel_gflops"])
        arithmetic = (f"{row['kernel_step_ms'] / row['run_step_ms']:.0%}" if "run_step_ms" in row else "-")
        print(f"| {row['model']} | {row['macs_per_step'] / 1e6:,.0f} M | {row['batch']} | "
              f"{row['kernel_step_ms']:.1f} | {row['kernel_gflops']:.0f} | {run_ms} | {run_gflops} | "
              f"{row['peak_gflops']:.0f} {row['dtype']} | {achieved / row['peak_gflops']:.0%} "
              f"| {arithmetic} |",
              flush=True)


# --- Where the time goes: torch.profiler over one epoch and the final test evaluation ---------

# An op's own time goes to the first category whose words its name contains, unless an enclosing
# region (augmentation, optimizer, evaluation) claims it first.
OP_CATEGORIES = (("convolution", ("conv",)), ("batch norm", ("batch_norm",)), ("max-pool", ("max_pool",)),
                 ("ReLU", ("relu", "clamp_min", "threshold")), ("zero fills", ("fill_", "zero_")),
                 ("linear head and loss", ("mm", "softmax", "nll_loss", "cross_entropy")),
                 ("autocast casts", ("_to_copy", "copy_")),
                 ("data indexing", ("index", "randperm", "slice")))
REGIONS = {"augmentation": "augmentation", "Optimizer.": "optimizer", "evaluation": "evaluation"}


def _category(event) -> str:
    parent = event
    while parent is not None:
        for prefix, region in REGIONS.items():
            if parent.name.startswith(prefix):
                return region
        parent = parent.cpu_parent
    return next((category for category, words in OP_CATEGORIES
                 if any(word in event.name for word in words)), "other ops")


def profile_recipe(name: str, dataset) -> tuple[dict[str, float], float]:
    """Seconds per category of one epoch of `name`'s recipe and its final test evaluation, and the
    wall time of both. What no op accounts for is Python and the loop's bookkeeping."""
    from numbre.training import loop

    recipe = dataclasses.asdict(get_entry(name).recipe) | {"epochs": 1}
    trainer = Trainer(TrainConfig(**recipe, model=name, seed=0, threads=THREADS[0]), dataset, None,
                      progress=False)
    augmentations, evaluate = dict(loop.AUGMENTATIONS), loop.predict_logits

    def labelled(label: str, function: Callable) -> Callable:
        def run(*args, **kwargs):
            with record_function(label):
                return function(*args, **kwargs)
        return run

    loop.AUGMENTATIONS.update({kind: labelled("augmentation", f) for kind, f in augmentations.items()})
    loop.predict_logits = labelled("evaluation", evaluate)
    try:
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            started = time.perf_counter()
            trainer.run()
            wall = time.perf_counter() - started
    finally:
        loop.AUGMENTATIONS.update(augmentations)
        loop.predict_logits = evaluate
    seconds: dict[str, float] = {}
    for event in profiler.events():
        category = _category(event)
        seconds[category] = seconds.get(category, 0.0) + event.self_cpu_time_total / 1e6
    seconds["Python and loop bookkeeping"] = max(0.0, wall - sum(seconds.values()))
    return seconds, wall


def print_profile(name: str, seconds: dict[str, float], wall: float) -> None:
    print(f"\n## Where the time goes: {name}, one epoch and the final test evaluation "
          f"(torch.profiler, {wall:.1f} s under the profiler)\n")
    print("| part | s | share |")
    print("|---|---|---|")
    for category, value in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"| {category} | {value:.2f} | {value / wall:.1%} |")


# --- Levers, measured side by side ----------------------------------------------------------

def _variants(name: str, dataset, compiled: bool) -> dict[str, tuple[Trainer, int]]:
    """Each lever as a Trainer changed in one respect, with the thread count it runs on."""
    threads = torch.get_num_threads()
    base = recipe_trainer(name, dataset)
    batch = base.config.batch_size
    variants = {"the recipe as it trains": (base, threads)}
    if compiled:  # the first step compiles: kernel_step_seconds' warm-up takes it
        trainer = recipe_trainer(name, dataset)
        trainer.model = torch.compile(trainer.model)
        variants["torch.compile (inductor)"] = (trainer, threads)
    plain = recipe_trainer(name, dataset)
    plain.model.to(memory_format=torch.contiguous_format)
    variants["without channels-last"] = (plain, threads)
    other = recipe_trainer(name, dataset, bf16=not base.config.bf16)
    variants["with bf16 autocast" if other.bf16 else "without bf16 autocast"] = (other, threads)
    for label, options in (("SGD/Adam one tensor at a time", {"foreach": False}),
                           ("SGD/Adam fused kernel", {"fused": True})):
        trainer = recipe_trainer(name, dataset)
        group = trainer.optimizer.defaults
        if "fused" in group and "foreach" in group:
            trainer.optimizer = type(trainer.optimizer)(
                trainer.optimizer.param_groups, **{key: value for key, value in group.items()
                                                   if key not in ("fused", "foreach", "params")},
                **{"foreach": False, "fused": False} | options)
            variants[label] = (trainer, threads)
    for factor in (2, 4):
        variants[f"batch {batch * factor}"] = (recipe_trainer(name, dataset, batch_size=batch * factor),
                                               threads)
    for count in sorted({1, 2} - {threads}):
        variants[f"{count} thread{'s' if count > 1 else ''}"] = (recipe_trainer(name, dataset), count)
    return variants


def lever_ratios(name: str, dataset, rounds: int = 5,
                 compiled: bool = False) -> list[tuple[str, float, float]]:
    """Per lever: median microseconds per training image of a step, and its ratio to the recipe as
    it trains; variants alternate within each round, so a busy stretch of the machine hits all.
    The last rows are the costs beside the step: one batch's augmentation and the test evaluation
    per training image of one epoch, as ratios to the step."""
    from numbre.model.network import predict_logits
    from numbre.training.loop import AUGMENTATIONS

    variants = _variants(name, dataset, compiled)
    threads = torch.get_num_threads()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, (trainer, count) in variants.items():
            torch.set_num_threads(count)
            times[label].append(kernel_step_seconds(trainer, repeats=1, steps=5) / trainer.config.batch_size)
    torch.set_num_threads(threads)
    base = statistics.median(times["the recipe as it trains"])
    rows = [(label, statistics.median(values) * 1e6, statistics.median(values) / base)
            for label, values in times.items()]
    trainer = variants["the recipe as it trains"][0]
    images = trainer.x[:trainer.config.batch_size].clone()
    for kind, augment in AUGMENTATIONS.items():
        seconds = _median_seconds(lambda augment=augment: augment(images), rounds) / len(images)
        rows.append((f"beside the step: {kind} augmentation", seconds * 1e6, seconds / base))
    test = trainer.x_test
    seconds = _median_seconds(lambda: predict_logits(trainer.model, test), 3) / len(trainer.dataset.x_train)
    rows.append(("beside the step: the test evaluation, per image of one epoch", seconds * 1e6,
                 seconds / base))
    return rows


def print_levers(name: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n## Levers: {name}, one training step, medians (ratio < 1 is faster)\n")
    print("| lever | us per image | ratio |")
    print("|---|---|---|")
    for label, micros, ratio in rows:
        print(f"| {label} | {micros:.1f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per recipe (default: 3)")
    parser.add_argument("--only", nargs="*", default=[name for name in TARGETS if name != "numbre-best"],
                        help="recipes to run (default: all but numbre-best, 15 minutes a seed)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--no-train", action="store_true",
                        help="skip the training runs: the roofline from measured steps alone")
    parser.add_argument("--profile", nargs="*", default=[], metavar="NAME",
                        help="profile one epoch and the test evaluation of these recipes")
    parser.add_argument("--levers", nargs="*", default=[], metavar="NAME",
                        help="measure each speed lever's ratio on these recipes' training step")
    parser.add_argument("--compile", action="store_true",
                        help="--levers also measures torch.compile (its compilation takes a minute here)")
    parser.add_argument("--threads", type=int,
                        help="training threads (default: the cores this process may use)")
    args = parser.parse_args()
    dataset = load_dataset(quiet=True)
    THREADS[0] = args.threads
    torch.set_num_threads(training_threads(args.threads))  # what Trainer uses
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seeds} seeds each")
    header = ("model", "recipe", "accuracy mean", "worst seed", "target", "train s mean",
              "train s median", "target s", "met")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = []
    for name in [] if args.no_train else args.only:
        accuracies, seconds = [], []
        for seed in range(args.seeds):
            accuracy, elapsed, changes = train_once(name, seed, dataset)
            accuracies.append(accuracy)
            seconds.append(elapsed)
            print(f"  {name} seed {seed}: {accuracy:.2%} in {elapsed:.1f} s", file=sys.stderr, flush=True)
            for change in changes:  # a seed that moved threads: its time is not an idle machine's
                print(f"    thread tuner: {change}", file=sys.stderr, flush=True)
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
    peaks = peak_gflops()
    trained = {row["model"]: row["median_seconds"] for row in rows}
    roofline = roofline_rows(args.only, dataset, trained, peaks)
    print_roofline(roofline, peaks)
    for name in args.profile:
        print_profile(name, *profile_recipe(name, dataset))
    for name in args.levers:
        print_levers(name, lever_ratios(name, dataset, compiled=args.compile))
    if "numbre" in args.only and not args.no_train:
        commands = [whole_command("numbre") for _ in range(args.seeds)]
        default = next(row for row in rows if row["model"] == "numbre")
        extra = statistics.median(commands) - default["median_seconds"]  # both medians
        print(f"\nwhole `numbre train` command (median of {len(commands)}): "
              f"{statistics.median(commands):.1f} s, {extra:.1f} s beyond training (target <= 10 s)")
        rows.append({"model": "numbre (whole command)", "seconds": commands, "extra_seconds": extra})
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "peaks": peaks, "roofline": roofline}, indent=2))


if __name__ == "__main__":
    main()
