"""`numbre compare`: train or load several models and print a leaderboard with the hardware it ran on."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from numbre.cli.options import PNG_FILE, data_option, require_torch


@click.command()
@click.argument("models", nargs=-1)
@data_option
@click.option("--runs", type=click.Path(path_type=Path), default=Path("runs/compare"), show_default=True,
              help="Folder of runs: DIR/<model>/model.safetensors is loaded when it exists, "
                   "else the model is trained with its recipe and saved there.")
@click.option("--epochs", type=int, default=None,
              help="Train with this many epochs instead of each recipe's (default: the recipe's).")
@click.option("--max-train", type=int, default=None,
              help="Train on the first N training images only (default: all).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the leaderboard as one JSON object instead of the table.")
@click.option("--png", **PNG_FILE, default=None,
              help="Also write a chart of accuracy against latency and parameters (default: no chart).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-model lines.")
def compare(models: tuple[str, ...], data: str | None, runs: Path, epochs: int | None,
            max_train: int | None, as_json: bool, png: Path | None, quiet: bool) -> None:
    """Compare MODELS (registered names or model files; default: the four classic models, numbre-fast
    and numbre): test accuracy, parameters, MACs, training time, single-image latency, file size.
    The leaderboard is also written to DIR/leaderboard.json."""
    require_torch()
    from numbre.atomic import check_folder_path
    from numbre.data import load_dataset
    from numbre.insight import compare as leaderboard

    check_folder_path(runs, "--runs")  # before any model trains
    if png is not None:
        check_folder_path(png.parent, "--png")
    dataset = load_dataset(data, quiet=quiet or as_json)
    log = None if quiet else (lambda message: click.echo(message, err=True))
    entries = leaderboard.compare(models or leaderboard.DEFAULT_MODELS, dataset, runs, epochs=epochs,
                                  max_train=max_train, progress=not quiet, log=log,
                                  command=shlex.join(["numbre", *sys.argv[1:]]))
    info = leaderboard.hardware()
    record = leaderboard.save_leaderboard(entries, dataset, info, runs)
    if png is not None:
        title = f"{dataset.name} test set; {leaderboard.hardware_line(info)}"
        leaderboard.save_chart(entries, png, title=title)
    if as_json:
        click.echo(json.dumps(record))
        return
    click.echo(f"{dataset.name} test set ({len(dataset.y_test):,} images); latency: median of "
               f"{leaderboard.LATENCY_RUNS} single-image calls, ONNX Runtime, one thread")
    click.echo(leaderboard.format_leaderboard(entries))
    click.echo(leaderboard.hardware_line(info))
    click.echo(f"wrote {runs / 'leaderboard.json'}" + (f" and {png}" if png is not None else ""))
