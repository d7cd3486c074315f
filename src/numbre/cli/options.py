"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

data_option = click.option(
    "--data", type=click.Path(path_type=str), default=None, envvar="NUMBRE_DATA",
    help="An MNIST-format folder of four IDX files (gzipped or not) or an .npz with "
         "x_train/y_train/x_test/y_test. Default: MNIST from the cache, fetched if missing.",
)

other_data_option = click.option(
    "--other-data", is_flag=True,
    help="Use --data although it is not the data the model file records it was trained on "
         "(the class names must still be the model's).",
)


def require_torch() -> None:
    """Fail with an install hint when the training extra is missing.

    The one-file program (scripts/build_standalone.py, PyInstaller sets sys.frozen) leaves torch out
    and has no pip to install it into: its users are told to use the Python package instead.
    """
    import sys

    from numbre.errors import NumbreError

    try:
        import torch  # noqa: F401
    except ImportError:
        if getattr(sys, "frozen", False):
            raise NumbreError("this command needs PyTorch, which the one-file numbre program leaves out: "
                              "run it from the Python package, installed into a Python environment "
                              "with pip install 'numbre[train]'") from None
        raise NumbreError("this command needs PyTorch: pip install 'numbre[train]'") from None


def _png_name(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value} does not end in .png, and numbre writes a PNG image there; "
                                 "give a name that ends in .png", param=param)
    return value


PNG_FILE = {"type": click.Path(dir_okay=False, path_type=Path), "callback": _png_name}
"""Settings for an option that names a PNG file to write: its name must say it is one."""
