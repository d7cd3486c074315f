"""Training and reading on a busy machine: how much slower numbre gets beside other work.

Most people train on a laptop or a shared server that is doing something else at the same time.
This script runs each task idle, beside 1 and 2 busy processes (`python -c "while True: pass"`)
and beside another numbre training (`numbre train` of the default recipe), all started and stopped
by the script; each task in a fresh process, conditions and tasks alternated round by round so
that drifting load from elsewhere spreads over all of them. It prints the median time of each and
its slowdown (busy time / idle time). Tasks:

- training a fixed number of steps of seed-cnn-a (batch 32) and of the default recipe (numbre,
  batch 128), with the settings `numbre train` uses (the time of the training steps only, as the
  run's history records it);
- with --fixed, the same with the thread count fixed at the free cores (no tuner: numbre before
  the thread tuner, and what `--threads N` does);
- with --old, the same with the settings numbre used before: every core, threads spinning while
  they wait (OpenMP's default);
- Keras training seed-cnn-a for the same steps, where TensorFlow is importable (numbre does not
  depend on it; see benchmarks/keras_reference.py for a separate environment);
- `numbre predict FOLDER` over a folder of drawn digits, the whole command;
- `numbre serve` answering POST /api/predict for a few hundred drawings sent by 4 httpx clients.

Targets: numbre's training slowdown no worse than Keras' in each condition, and at most 3 beside
2 busy processes on a 2-core machine. The load average at each run's start is reported: when
other people's work shares the machine, "idle" is not idle, and the factors shrink.

Run:  python benchmarks/busy_machine.py [--rounds 3] [--fixed] [--old] [--only train|read]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

STEPS = {"seed-cnn-a": 300, "numbre": 150}  # 2-6 s each on an idle 2-core machine
OLD_STEPS = {"seed-cnn-a": 100, "numbre": 20}  # the old settings can be 50 times slower beside 2
PREDICT_IMAGES = 200
SERVE_REQUESTS = 300
SERVE_CLIENTS = 4
CONDITIONS = ("idle", "1 busy", "2 busy", "1 training")  # what runs beside the task


# --- the children: one task each, in a fresh process, printing one JSON line ----------------
def child_train(model: str, steps: int, settings: str) -> dict:
    """Train `steps` steps of `model`'s recipe on MNIST; the seconds of the training steps.

    `settings`: "numbre" (what `numbre train` does), "fixed" (the same with the thread count fixed
    at the free cores, no tuner), "old" (every core, OpenMP's default spinning), or "spin:N"
    (numbre's thread count, threads spinning N rounds before they sleep)."""
    if settings.startswith("spin:"):
        os.environ.pop("OMP_WAIT_POLICY", None)  # GNU libgomp reads GOMP_SPINCOUNT only without it
        os.environ["GOMP_SPINCOUNT"] = settings.removeprefix("spin:")
    elif settings in ("numbre", "fixed"):
        from numbre.training.threads import prefer_passive_waiting

        prefer_passive_waiting()  # as `numbre train` does, before torch loads
    import dataclasses

    import torch

    from numbre.data import load_dataset
    from numbre.model.zoo import get_entry
    from numbre.training.config import TrainConfig
    from numbre.training.loop import Trainer

    dataset = load_dataset(quiet=True)
    # A small test set: its evaluation is not what is measured.
    dataset = dataclasses.replace(dataset, x_test=dataset.x_test[:256], y_test=dataset.y_test[:256])
    recipe = dataclasses.asdict(get_entry(model).recipe)
    recipe.update(epochs=1, val_split=0.0, max_train=steps * recipe["batch_size"])
    if settings == "old":
        recipe["threads"] = os.cpu_count()  # what torch used before: every core of the machine
    elif settings == "fixed":
        from numbre.training.threads import available_cores

        recipe["threads"] = available_cores()  # a count given is never tuned
    started = resource.getrusage(resource.RUSAGE_SELF)
    result = Trainer(TrainConfig(**recipe, model=model), dataset, None, progress=False).run()
    ended = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": result.history[0]["seconds"], "threads": torch.get_num_threads(),
            "cpu": ended.ru_utime + ended.ru_stime - started.ru_utime - started.ru_stime}


def child_keras(model: str, steps: int) -> dict:
    """Keras training the same model for the same steps: the seconds of `fit` after a warm-up fit."""
    sys.path.insert(0, str(Path(__file__).parent))
    import keras

    from keras_reference import build, mnist_folder, read_idx

    keras.utils.set_random_seed(0)
    batch = 32
    x = read_idx(mnist_folder() / "train-images-idx3-ubyte")[: steps * batch].astype("float32") / 255
    y = keras.utils.to_categorical(read_idx(mnist_folder() / "train-labels-idx1-ubyte")[: steps * batch], 10)
    network = build(model, keras)
    network.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x = x.reshape(-1, 28, 28, 1)
    network.fit(x[: 5 * batch], y[: 5 * batch], batch_size=batch, epochs=1, verbose=0)  # tracing
    started = time.perf_counter()
    network.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return {"seconds": time.perf_counter() - started, "threads": None, "cpu": None}


# --- the parent ----------------------------------------------------------------------------
@contextlib.contextmanager
def busy(condition: str) -> Iterator[None]:
    """What runs beside the task while the block runs: nothing, 1 or 2 processes that each keep a
    core busy, or another numbre training (the default recipe, its own settings, long enough)."""
    with tempfile.TemporaryDirectory() as run:
        if condition == "1 training":
            hogs = [subprocess.Popen([sys.executable, "-m", "numbre", "train", "--out", run,
                                      "--epochs", "1000", "-q"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)]
            settle = 10.0  # data loaded and training
        else:
            count = 0 if condition == "idle" else int(condition.split()[0])
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
            settle = 0.5 if count else 0  # let them take their cores
        try:
            time.sleep(settle)
            for hog in hogs:
                if hog.poll() is not None:
                    raise SystemExit(f"busy_machine: the busy process for {condition!r} ended early")
            yield
        finally:
            for hog in hogs:
                hog.kill()
            for hog in hogs:
                hog.wait()


def run_child(*arguments: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *arguments], capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"busy_machine: {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drawings(folder: Path, count: int) -> None:
    """`count` PNG drawings of digits (numbre's stroke font, as the drawing page sends them)."""
    import numpy as np
    from PIL import Image

    from numbre.data.drawn import drawn_digit, glyph, page_export

    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = page_export(drawn_digit(glyph(index % 10, rng), rng, style="canvas"))
        Image.fromarray(pixels).save(folder / f"{index:04d}.png")


def time_predict(folder: Path) -> dict:
    """The whole `numbre predict FOLDER` command, process start included."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "numbre", "predict", str(folder)], check=True,
                   capture_output=True)
    return {"seconds": time.perf_counter() - started}


def time_serve(folder: Path) -> dict:
    """A fresh `numbre serve`; the seconds to answer SERVE_REQUESTS drawings from SERVE_CLIENTS clients."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "numbre", "serve", "--port", str(port),
                               "--no-access-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("busy_machine: numbre serve did not become ready") from None
                time.sleep(0.1)
        pngs = [path.read_bytes() for path in sorted(folder.glob("*.png"))]

        def send(client: httpx.Client, index: int) -> None:
            response = client.post(f"{url}/api/predict", content=pngs[index % len(pngs)],
                                   headers={"Content-Type": "image/png"})
            if response.status_code != 200:
                raise SystemExit(f"busy_machine: /api/predict answered {response.status_code}")

        clients = [httpx.Client(timeout=60) for _ in range(SERVE_CLIENTS)]
        try:
            send(clients[0], 0)  # the first request warms the model up
            started = time.perf_counter()
            with ThreadPoolExecutor(SERVE_CLIENTS) as pool:
                list(pool.map(lambda index: send(clients[index % SERVE_CLIENTS], index),
                              range(SERVE_REQUESTS)))
            return {"seconds": time.perf_counter() - started}
        finally:
            for client in clients:
                client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)


def tasks(args: argparse.Namespace, folder: Path) -> dict:
    """Task name -> a function that runs it once and returns its figures."""
    found: dict = {}
    if args.only in (None, "train"):
        for model, steps in STEPS.items():
            found[f"numbre train {model} ({steps} steps)"] = (
                lambda model=model, steps=steps: run_child("train", model, str(steps), "numbre"))
            for spin in args.spin:
                found[f"{model} ({steps} steps, spinning {spin:,} rounds)"] = (
                    lambda model=model, steps=steps, spin=spin: run_child("train", model, str(steps),
                                                                         f"spin:{spin}"))
            if args.fixed:
                found[f"fixed threads: {model} ({steps} steps)"] = (
                    lambda model=model, steps=steps: run_child("train", model, str(steps), "fixed"))
            if args.old:
                old = OLD_STEPS[model]
                found[f"before: {model} ({old} steps, all cores, spinning)"] = (
                    lambda model=model, steps=old: run_child("train", model, str(steps), "old"))
        if find_spec("tensorflow") is not None and find_spec("keras") is not None:
            steps = STEPS["seed-cnn-a"]
            found[f"Keras seed-cnn-a ({steps} steps)"] = (
                lambda: run_child("keras", "seed-cnn-a", str(steps)))
        else:
            print("note: TensorFlow/Keras is not importable here, so Keras is left out; run this script "
                  "in an environment that has it to compare: python -m venv /tmp/kenv && /tmp/kenv/bin/pip "
                  "install tensorflow-cpu==2.21.0 torch==2.13.0 -e '.[serve]'")
    if args.only in (None, "read"):
        found[f"numbre predict folder ({PREDICT_IMAGES} images)"] = lambda: time_predict(folder)
        found[f"numbre serve ({SERVE_REQUESTS} requests, {SERVE_CLIENTS} clients)"] = (
            lambda: time_serve(folder))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each task in each condition "
                        "(default: 3; medians are reported)")
    parser.add_argument("--old", action="store_true",
                        help="also train with the settings numbre used before (every core, spinning)")
    parser.add_argument("--fixed", action="store_true",
                        help="also train with the thread count fixed at the free cores (no tuner)")
    parser.add_argument("--spin", type=int, nargs="*", default=[], metavar="ROUNDS",
                        help="also train with threads that spin this many rounds before sleeping "
                             "(GNU libgomp's GOMP_SPINCOUNT; 300000 is its default, 0 sleeps at once)")
    parser.add_argument("--idle-only", action="store_true",
                        help="the idle condition only: compare settings on a quiet machine")
    parser.add_argument("--only", choices=("train", "read"), help="training or reading tasks only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, model, steps, *rest = args.child
        result = child_train(model, int(steps), *rest) if kind == "train" else child_keras(model, int(steps))
        print(json.dumps(result))
        return
    from numbre.training.threads import available_cores

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        drawings(folder, PREDICT_IMAGES)
        work = tasks(args, folder)
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
              f"({available_cores()} free to this process), {args.rounds} rounds, medians; "
              f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
        seconds: dict[tuple[str, str], list[float]] = {}
        loads: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
        for round_ in range(args.rounds):
            conditions = ("idle",) if args.idle_only else CONDITIONS if round_ % 2 == 0 else CONDITIONS[::-1]
            for order, condition in enumerate(conditions):
                names = list(work) if (round_ + order) % 2 == 0 else list(work)[::-1]
                with busy(condition):
                    for name in names:
                        loads[condition].append(os.getloadavg()[0])
                        result = work[name]()
                        seconds.setdefault((name, condition), []).append(result["seconds"])
                        print(f"round {round_ + 1}, {condition}: {name}: {result['seconds']:.2f} s"
                              + (f" ({result['cpu']:.2f} s CPU, {result['threads']} threads)"
                                 if result.get("cpu") is not None else ""), file=sys.stderr, flush=True)
        print_table(work, seconds, loads)


def print_table(work: dict, seconds: dict, loads: dict) -> None:
    conditions = [condition for condition in CONDITIONS if (next(iter(work)), condition) in seconds]
    header = ["task", "idle s"]
    for condition in conditions[1:]:
        header += [f"{condition} s", "slowdown"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for name in work:
        idle = statistics.median(seconds[(name, "idle")])
        cells = [name, f"{idle:.2f}"]
        for condition in conditions[1:]:
            value = statistics.median(seconds[(name, condition)])
            cells += [f"{value:.2f}", f"{value / idle:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    print("\nload average (1 min) at the runs' starts, median [min-max]: " + "; ".join(
        f"{condition} {statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"
        for condition, values in loads.items() if values))
    print("target: numbre train slowdown at most 3x beside 2 busy processes on 2 cores")


if __name__ == "__main__":
    main()
