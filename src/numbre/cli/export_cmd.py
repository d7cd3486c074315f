"""`numbre export`: write a model file as ONNX for the torch-free inference path."""

from __future__ import annotations

from pathlib import Path

import click

from numbre.cli.options import data_option, other_data_option, require_torch

CALIBRATION_IMAGES = 2000


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="ONNX file to write (default: MODEL with the suffix .onnx; model.onnx in a run folder).")
@click.option("--int8", is_flag=True,
              help=f"Quantise to int8, calibrated on the last {CALIBRATION_IMAGES:,} training images of the "
                   "data the model was trained on (or --data): about twice as fast on CPUs with int8 "
                   "instructions.")
@data_option
@other_data_option
def export(model: Path | None, out: Path | None, int8: bool, data: str | None, other_data: bool) -> None:
    """Export MODEL (a model file or run folder; default: the shipped model) as ONNX."""
    require_torch()
    from numbre.errors import NumbreError
    from numbre.model.export import export_onnx

    if out is None:
        if model is None:
            raise NumbreError("exporting the shipped model needs --out FILE.onnx")
        out = model / "model.onnx" if model.is_dir() else model.with_suffix(".onnx")
    calibration = None
    if int8:
        from numbre.insight.evaluate import dataset_for_model
        from numbre.model.file import load_model_file

        # The model's own data, as evaluate finds it: ranges calibrated on other images fit it badly.
        model_file = load_model_file(model)
        dataset = dataset_for_model(model_file.meta, model_file.path, data, quiet=True, other_data=other_data)
        calibration = dataset.x_train[-CALIBRATION_IMAGES:].astype("float32") / 255
    path = export_onnx(model, out, calibration=calibration)
    checked = "int8 answers agree with torch" if int8 else "ONNX Runtime matches torch"
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes); {checked}")
