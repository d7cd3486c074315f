"""Datasets: MNIST and any MNIST-format IDX folder, fetched, cached and checksummed, and digits drawn
from fonts in many pen styles (`drawn`) for tests and benchmarks of real-world reading.

May import only the core (`numbre.errors`, `numbre.atomic`).
"""

from numbre.data.dataset import Dataset, cache_root, load_dataset
from numbre.data.known import FASHION_MNIST, MNIST, DatasetSpec

__all__ = ["FASHION_MNIST", "MNIST", "Dataset", "DatasetSpec", "cache_root", "load_dataset"]
