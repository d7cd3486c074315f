"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

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


def _png_name(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value} does not end in .png, and numbre writes a PNG image there; "
                                 "give a name that ends in .png", param=param)
    return value


PNG_FILE = {"type": click.Path(dir_okay=False, path_type=Path), "callback": _png_name}
"""Settings for an option that names a PNG file to write: its name must say it is one."""
