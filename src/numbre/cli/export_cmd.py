"""`numbre export`: write a model file as ONNX for the torch-free inference path."""

from __future__ import annotations

from pathlib import Path

import click

from numbre.cli.options import require_torch


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="ONNX file to write (default: MODEL with the suffix .onnx; model.onnx in a run folder).")
def export(model: Path | None, out: Path | None) -> None:
    """Export MODEL (a model file or run folder; default: the shipped model) as ONNX."""
    require_torch()
    from numbre.errors import NumbreError
    from numbre.export import export_onnx

    if out is None:
        if model is None:
            raise NumbreError("exporting the shipped model needs --out FILE.onnx")
        out = model / "model.onnx" if model.is_dir() else model.with_suffix(".onnx")
    path = export_onnx(model, out)
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes); ONNX Runtime matches torch")
