"""`numbre evaluate`: accuracy, loss, per-class figures and the confusion matrix of a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from numbre.cli.options import data_option, require_torch


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--png", type=click.Path(path_type=Path), default=Path("confusion.png"), show_default=True,
              help="Where to write the confusion matrix heat map.")
@click.option("--no-png", is_flag=True, help="Do not write the heat map.")
def evaluate(model: Path | None, data: str | None, as_json: bool, png: Path, no_png: bool) -> None:
    """Evaluate MODEL (a model file or run folder; default: the shipped model) on the test set."""
    require_torch()
    from numbre.checkpoint import load_torch_model
    from numbre.data import load_dataset
    from numbre.errors import NumbreError
    from numbre.evaluate import compute_metrics, format_report
    from numbre.reject import NOT_A_DIGIT
    from numbre.train import predict_logits, to_tensors

    network, model_file = load_torch_model(model)
    dataset = load_dataset(data, quiet=as_json)
    names = model_file.class_names
    # A model trained with negatives has one class more than its data: "not a digit", which
    # counts as an error whenever it is the answer for a test image.
    data_classes = names[:-1] if names[-1:] == [NOT_A_DIGIT] else names
    if len(data_classes) != dataset.num_classes:
        raise NumbreError(f"{model_file.path} knows {len(names)} classes but "
                          f"{dataset.name} has {dataset.num_classes}; evaluate it on its own data")
    x_test, _ = to_tensors(dataset.x_test, dataset.y_test, next(network.parameters()).device)
    logits = predict_logits(network, x_test).numpy()
    metrics = compute_metrics(logits, dataset.y_test, names)
    if not no_png:
        from numbre.plots import confusion_heatmap

        confusion_heatmap(metrics.confusion, names, png,
                          title=f"{model_file.architecture} on {dataset.name} test "
                                f"({metrics.accuracy:.2%})")
    if as_json:
        click.echo(json.dumps({"model": str(model_file.path), "architecture": model_file.architecture,
                               "dataset": dataset.name, "data_checksum": dataset.checksum,
                               **metrics.to_dict()}))
        return
    click.echo(f"model {model_file.path} ({model_file.architecture}) on {dataset.name} test set")
    click.echo(format_report(metrics))
    if not no_png:
        click.echo(f"\nwrote {png}")
