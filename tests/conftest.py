"""Shared fixtures: a tiny synthetic dataset that a model learns in a second.

Class k is a bright 7x7 square at grid cell (k % 5, k // 5), jittered by up
to two pixels, on a noisy background. It is MNIST-shaped (28x28 uint8, ten
classes) so every stage runs on it, and easy enough that a short training
run must reach a high accuracy: a test that trains and gets chance-level
accuracy has found a bug.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from numbre.data import idx
from numbre.data.dataset import Dataset
from numbre.data.fetch import sha256
from numbre.data.known import DIGITS, IDX_FILES


def synthetic_arrays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        row = 3 + (label // 5) * 12 + rng.integers(-2, 3)
        column = 1 + (label % 5) * 5 + rng.integers(-1, 2)
        image[row:row + 7, max(column, 0):column + 7] = 255
    return images, labels


def make_dataset(train: int = 600, test: int = 200, seed: int = 0) -> Dataset:
    x_train, y_train = synthetic_arrays(train, seed)
    x_test, y_test = synthetic_arrays(test, seed + 1)
    arrays = dict(zip(IDX_FILES, (x_train, y_train, x_test, y_test), strict=True))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, DIGITS, "synthetic",
                   {name: sha256(idx.encode(array)) for name, array in arrays.items()})


def write_idx_folder(dataset: Dataset, folder: Path, gzipped: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    for name, array in zip(IDX_FILES, arrays, strict=True):
        data = idx.encode(array)
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    return make_dataset()


@pytest.fixture
def tiny_folder(tiny: Dataset, tmp_path: Path) -> Path:
    return write_idx_folder(tiny, tmp_path / "tiny-data")


@pytest.fixture(scope="session")
def _web_runtime() -> Path:
    """The page's in-browser runtime (onnxruntime-web), fetched into the user's real cache on first use."""
    import os
    from unittest import mock

    from numbre.web.runtime import ensure_runtime

    with mock.patch.dict(os.environ, {"NUMBRE_CACHE": real_cache()}):
        return ensure_runtime(quiet=True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch, _web_runtime: Path) -> None:
    """No test reads or writes the user's real cache or picks up NUMBRE_* settings.

    The private cache holds the page's runtime, as a link to the real cache's copy: the page's tests
    need it and only tests/web/test_runtime.py fetches it again.
    """
    import os

    for key in list(os.environ):
        if key.startswith("NUMBRE_"):
            monkeypatch.delenv(key)
    cache = tmp_path_factory.mktemp("cache")
    (cache / _web_runtime.name).symlink_to(_web_runtime, target_is_directory=True)
    monkeypatch.setenv("NUMBRE_CACHE", str(cache))


def real_cache() -> str:
    """The user's own numbre cache, where the real MNIST is kept between test runs."""
    import os

    import platformdirs

    return os.environ.get("NUMBRE_REAL_CACHE") or platformdirs.user_cache_dir("numbre")


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The real MNIST, from the user's cache (fetched into it on first use)."""
    import os
    from unittest import mock

    from numbre.data import load_dataset

    with mock.patch.dict(os.environ, {"NUMBRE_CACHE": real_cache()}):
        return load_dataset(quiet=True)


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium per test module, for the browser tests of the web page."""
    from webhelpers import CHROMIUM, headless_chromium

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium")
    with headless_chromium() as browser:
        yield browser
