"""numbre reads handwritten digits.

    from numbre import Recognizer
    Recognizer.load().predict("digit.png")

The package is split by stage, each stage a folder whose imports run one way, down this list:
front ends (`numbre.cli`, `numbre.web`, `numbre.desktop`) -> `numbre.insight` (evaluation,
explanations, reports, the leaderboard) -> `numbre.training` (the training loop) and
`numbre.reading` (images, the one preprocessing pipeline, segmentation, the Recognizer) ->
`numbre.model` (the zoo, model files, ONNX, rejection, metrics) -> `numbre.data` (sources, cache,
checksums) -> the core (`numbre.errors`, `numbre.atomic`, `numbre.text`). Training needs the `train` extra
(PyTorch); reading digits does not.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Prediction", "Reading", "Recognizer", "__version__"]

if TYPE_CHECKING:
    from numbre.reading.recognize import Prediction, Reading, Recognizer


def __getattr__(name: str):
    """`Recognizer` and its results import ONNX Runtime only when first used."""
    if name in ("Prediction", "Reading", "Recognizer"):
        from numbre.reading import recognize

        return getattr(recognize, name)
    raise AttributeError(f"module 'numbre' has no attribute {name!r}")
