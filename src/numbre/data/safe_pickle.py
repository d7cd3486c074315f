"""Loading the MNIST arrays out of a pickle without letting the pickle run code.

A pickle can name any importable callable and have it called while loading.
`ArraysOnlyUnpickler` admits exactly the globals a pickled NumPy array needs
(`ndarray`, `dtype` and `_reconstruct`, plus `_codecs.encode` of latin-1 text,
which Python 3 writes for bytes at protocols 0-2) and refuses every other name,
so a tampered file fails with an error instead of executing anything.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from numbre.errors import DataError

# The array constructor pickles call, found the same way on NumPy 1.x and 2.x.
_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]


def _latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """Rebuild bytes as Python 3 pickles of protocol 0-2 do: `_codecs.encode(text, "latin1")`."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("refusing to load _codecs.encode with other arguments")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Pickles written by NumPy 1.x name numpy.core; NumPy 2 moved it to numpy._core.
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    # Python 3 writes bytes this way at protocol 2 (the classic mnist.pkl's protocol).
    ("_codecs", "encode"): _latin1_bytes,
}
_ALLOWED_DTYPES = {"float32", "float64", "int64", "int32", "uint8"}


class ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build NumPy arrays of numbers and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only NumPy arrays are allowed"
            ) from None


def load_array_pairs(data: bytes, source: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Unpickle a tuple of (images, labels) array pairs from `data`.

    The classic `mnist.pkl.gz` was written by Python 2, hence latin-1 for its
    byte strings. Anything but a sequence of pairs of numeric arrays is refused.
    """
    try:
        loaded = ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as error:  # a hostile pickle can raise anything while loading
        raise DataError(f"{source} is not a pickle of NumPy arrays: {error}") from None
    if not isinstance(loaded, tuple | list) or not loaded:
        raise DataError(f"{source} does not hold a tuple of (images, labels) pairs")
    pairs = []
    for index, pair in enumerate(loaded):
        if not (
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and all(isinstance(part, np.ndarray) for part in pair)
        ):
            raise DataError(f"{source}: part {index} is not an (images, labels) pair of arrays")
        images, labels = pair
        for array in (images, labels):
            if array.dtype.name not in _ALLOWED_DTYPES:
                raise DataError(f"{source}: part {index} has unexpected dtype {array.dtype}")
            if array.ndim == 0:
                raise DataError(f"{source}: part {index} holds a single number, not an array")
        if len(images) != len(labels):
            raise DataError(
                f"{source}: part {index} has {len(images)} images but {len(labels)} labels"
            )
        pairs.append((images, labels))
    return pairs
