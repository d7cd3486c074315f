"""numbre reads handwritten digits.

The package is split by stage: `numbre.data` (sources, cache, checksums),
`numbre.models` (architecture registry), `numbre.train` (training loop),
`numbre.evaluate` (metrics), `numbre.modelfile` (safe weights + metadata) and
`numbre.cli` (the command line). Training needs the `train` extra (PyTorch);
everything else imports without it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
