"""Options shared by several commands."""

from __future__ import annotations

import click

data_option = click.option(
    "--data", type=click.Path(path_type=str), default=None, envvar="NUMBRE_DATA",
    help="An MNIST-format folder of four IDX files (gzipped or not) or an .npz with "
         "x_train/y_train/x_test/y_test. Default: MNIST from the cache, fetched if missing.",
)


def require_torch() -> None:
    """Fail with an install hint when the training extra is missing."""
    from numbre.errors import NumbreError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise NumbreError("this command needs PyTorch: pip install 'numbre[train]'") from None
