"""`numbre evaluate`: accuracy, loss, per-class figures and the confusion matrix of a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from numbre.cli.options import PNG_FILE, data_option, require_torch


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--png", **PNG_FILE, default=Path("confusion.png"), show_default=True,
              help="Where to write the confusion matrix heat map.")
@click.option("--no-png", is_flag=True, help="Do not write the heat map.")
def evaluate(model: Path | None, data: str | None, as_json: bool, png: Path, no_png: bool) -> None:
    """Evaluate MODEL (a model file, run folder or .onnx export; default: the shipped model) on the
    test set. An .onnx file runs in ONNX Runtime, as the inference install reads images."""
    from numbre.data import load_dataset
    from numbre.insight.evaluate import evaluate_network, evaluate_onnx, format_report

    if model is not None and model.suffix == ".onnx":
        from numbre.model.onnx_model import OnnxModel

        onnx_model = OnnxModel.load(model)
        path, architecture = onnx_model.path, onnx_model.meta["architecture"]
        dataset = load_dataset(data, quiet=as_json)
        metrics = evaluate_onnx(onnx_model, dataset)
    else:
        require_torch()
        from numbre.model.network import load_torch_model

        network, model_file = load_torch_model(model)
        path, architecture = model_file.path, model_file.architecture
        dataset = load_dataset(data, quiet=as_json)
        metrics = evaluate_network(network, model_file, dataset)
    if not no_png:
        from numbre.insight.plots import confusion_heatmap

        confusion_heatmap(metrics.confusion, list(metrics.class_names), png,
                          title=f"{architecture} on {dataset.name} test ({metrics.accuracy:.2%})")
    if as_json:
        click.echo(json.dumps({"model": str(path), "architecture": architecture,
                               "dataset": dataset.name, "data_checksum": dataset.checksum,
                               **metrics.to_dict()}))
        return
    click.echo(f"model {path} ({architecture}) on {dataset.name} test set")
    click.echo(format_report(metrics))
    if not no_png:
        click.echo(f"\nwrote {png}")
