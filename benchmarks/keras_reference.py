"""The Keras reference: the four classic models trained by Keras itself, seed by seed, on this machine.

numbre's classic models are judged against one Keras run each (PRODUCT.md). One run is one draw
from a spread: this script measures that spread, so that numbre's mean over seeds can be set beside
Keras' own mean over seeds instead of a single number. Each seed runs in a fresh process (Keras'
global state), one after another; the MNIST IDX files come from numbre's cache.

Needs TensorFlow, which numbre does not depend on: run it in a separate environment, e.g.
    python -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu==2.21.0 numpy
    /tmp/keras/bin/python benchmarks/keras_reference.py --model seed-cnn-b --seeds 5
(--first-seed 5 --seeds 5 continues with seeds 5-9.)

Prints one row per seed (test accuracy, fit seconds) and the mean, standard deviation and range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# model name -> (epochs, batch size, fit options), as the articles ran them
RECIPES = {
    "seed-cnn-a": (5, 32, {"validation_split": 0.25}),
    "numbre-mlp": (20, 128, {"shuffle": True}),
    "mlp-3-hidden": (10, 32, {"validation": "test"}),
    "seed-cnn-b": (10, 200, {"validation": "test"}),
}
PARAMETERS = {"seed-cnn-a": 34_826, "numbre-mlp": 106_391, "mlp-3-hidden": 270_218, "seed-cnn-b": 555_158}


def mnist_folder() -> Path:
    root = os.environ.get("NUMBRE_CACHE")
    if root:
        return Path(root) / "mnist"
    return Path.home() / ".cache" / "numbre" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """An uncompressed IDX file of uint8 values (MNIST's images or labels)."""
    data = path.read_bytes()
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(dimensions))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def build(name: str, keras):
    layers = keras.layers
    if name == "seed-cnn-a":
        stack = [keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                 layers.Dropout(0.25), layers.Dense(10, activation="softmax")]
    elif name == "seed-cnn-b":
        stack = [keras.Input((28, 28, 1)), layers.Conv2D(30, 5, activation="relu"), layers.MaxPooling2D(2),
                 layers.Dropout(0.2), layers.Flatten(), layers.Dense(128, activation="relu"),
                 layers.Dense(10, activation="softmax")]
    else:
        widths = (25, 256, 300) if name == "numbre-mlp" else (128, 256, 512)
        stack = [keras.Input((784,)), *(layers.Dense(width, activation="relu") for width in widths),
                 layers.Dense(10, activation="softmax")]
    return keras.Sequential(stack)


def one_seed(name: str, seed: int) -> dict:
    """Train `name` with Keras once (this process only) and return its figures."""
    import keras  # only in the child process: numbre itself never needs it

    folder = mnist_folder()
    x_train = read_idx(folder / "train-images-idx3-ubyte").astype("float32") / 255
    x_test = read_idx(folder / "t10k-images-idx3-ubyte").astype("float32") / 255
    y_train = keras.utils.to_categorical(read_idx(folder / "train-labels-idx1-ubyte"))
    y_test = keras.utils.to_categorical(read_idx(folder / "t10k-labels-idx1-ubyte"))
    shape = (-1, 28, 28, 1) if "cnn" in name else (-1, 784)
    x_train, x_test = x_train.reshape(shape), x_test.reshape(shape)
    keras.utils.set_random_seed(seed)
    model = build(name, keras)
    if model.count_params() != PARAMETERS[name]:
        raise SystemExit(f"{name}: {model.count_params()} parameters, expected {PARAMETERS[name]}")
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    epochs, batch, options = RECIPES[name]
    options = dict(options)
    if options.pop("validation", None) == "test":
        options["validation_data"] = (x_test, y_test)
    started = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch, verbose=0, **options)
    seconds = time.perf_counter() - started
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    return {"seed": seed, "accuracy": accuracy, "fit_seconds": seconds, "keras": keras.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(RECIPES), default="seed-cnn-b")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default: 0)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_seed(args.model, args.child)))
        return
    rows = []
    print(f"| {args.model} seed | test accuracy | fit s |\n|---|---|---|")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        done = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", str(seed)],
                              capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"| {seed} | {row['accuracy']:.2%} | {row['fit_seconds']:.1f} |", flush=True)
    accuracies = [row["accuracy"] for row in rows]
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"\nKeras {rows[0]['keras']}: mean {statistics.mean(accuracies):.2%}, standard deviation "
          f"{spread:.2%}, range {min(accuracies):.2%}-{max(accuracies):.2%} over {len(rows)} seeds")


if __name__ == "__main__":
    main()
