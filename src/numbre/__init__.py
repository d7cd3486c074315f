"""numbre reads handwritten digits.

    from numbre import Recognizer
    Recognizer.load().predict("digit.png")

The package is split by stage: `numbre.data` (sources, cache, checksums),
`numbre.models` (architecture registry), `numbre.train` (training loop),
`numbre.evaluate` (metrics), `numbre.modelfile` (safe weights + metadata),
`numbre.export` and `numbre.onnx_model` (the ONNX form), `numbre.images`,
`numbre.preprocess` and `numbre.segment` (the one image pipeline),
`numbre.reject` (when not to trust the model), `numbre.recognize` (the
Recognizer) and `numbre.cli` (the command line). Training needs the `train`
extra (PyTorch); reading digits does not.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Prediction", "Reading", "Recognizer", "__version__"]

if TYPE_CHECKING:
    from numbre.recognize import Prediction, Reading, Recognizer


def __getattr__(name: str):
    """`Recognizer` and its results import ONNX Runtime only when first used."""
    if name in ("Prediction", "Reading", "Recognizer"):
        from numbre import recognize

        return getattr(recognize, name)
    raise AttributeError(f"module 'numbre' has no attribute {name!r}")
