"""Datasets: MNIST and any MNIST-format IDX folder, cached and checksummed."""

from numbre.data.dataset import Dataset, cache_root, load_dataset
from numbre.data.known import FASHION_MNIST, MNIST, DatasetSpec

__all__ = ["FASHION_MNIST", "MNIST", "Dataset", "DatasetSpec", "cache_root", "load_dataset"]
