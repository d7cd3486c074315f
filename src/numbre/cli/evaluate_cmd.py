"""`numbre evaluate`: accuracy, loss, per-class figures and the confusion matrix of a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from numbre.cli.options import PNG_FILE, data_option, other_data_option, require_torch

HEATMAP = "confusion.png"  # the heat map's name in a run folder


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@data_option
@other_data_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--png", **PNG_FILE, default=None,
              help=f"Write the confusion matrix heat map to this file (default: {HEATMAP} in the run "
                   "folder when MODEL is one, else none).")
@click.option("--no-png", is_flag=True, help="Write no heat map, not even into a run folder.")
def evaluate(model: Path | None, data: str | None, other_data: bool, as_json: bool, png: Path | None,
             no_png: bool) -> None:
    """Evaluate MODEL (a model file, run folder or .onnx export; default: the shipped model) on the
    test set of the data it was trained on, found from what its model file records unless --data
    names it. An .onnx file runs in ONNX Runtime, as the inference install reads images."""
    from numbre.insight.evaluate import dataset_for_model, evaluate_network, evaluate_onnx, format_report

    if model is not None and model.suffix == ".onnx":
        from numbre.model.onnx_model import OnnxModel

        onnx_model = OnnxModel.load(model)
        path, architecture = onnx_model.path, onnx_model.meta["architecture"]
        dataset = dataset_for_model(onnx_model.meta, path, data, quiet=as_json, other_data=other_data)
        metrics = evaluate_onnx(onnx_model, dataset)
    else:
        require_torch()
        from numbre.model.network import load_torch_model

        network, model_file = load_torch_model(model)
        path, architecture = model_file.path, model_file.architecture
        dataset = dataset_for_model(model_file.meta, path, data, quiet=as_json, other_data=other_data)
        metrics = evaluate_network(network, model_file, dataset)
    if png is None and model is not None and model.is_dir():
        png = model / HEATMAP  # a run folder keeps what is made from it; the working folder is left alone
    if png is not None and not no_png:
        from numbre.insight.plots import confusion_heatmap

        confusion_heatmap(metrics.confusion, list(metrics.class_names), png,
                          title=f"{architecture} on {dataset.name} test ({metrics.accuracy:.2%})")
    if as_json:
        click.echo(json.dumps({"model": str(path), "architecture": architecture,
                               "dataset": dataset.name, "data_checksum": dataset.checksum,
                               **metrics.to_dict()}))
        return
    from numbre.text import clip_text, escape_text

    # The architecture is the model file's text: shown cut short, its control characters escaped.
    click.echo(f"model {path} ({clip_text(escape_text(architecture))}) on {dataset.name} test set")
    click.echo(format_report(metrics))
    if png is not None and not no_png:
        click.echo(f"\nwrote {png}")
