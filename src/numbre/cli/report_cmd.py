"""`numbre report`: an HTML report on a trained model; `numbre summary`: its layer table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from numbre.cli.options import data_option, other_data_option, require_torch


@click.command()
@click.argument("run_or_model", required=False, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder for report.html and its PNGs (default: RUN/report, or report-<name> in the "
                   "working folder for a model file).")
@click.option("--compare", multiple=True, type=click.Path(path_type=Path),
              help="Another run folder or model file to draw in the robustness curves; repeatable "
                   "(default: none).")
@click.option("--robustness-images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test images (the first N) the robustness curves are measured on.")
@data_option
@other_data_option
@click.option("--quiet", "-q", is_flag=True, help="No data-loading messages.")
def report(run_or_model: Path | None, out: Path | None, compare: tuple[Path, ...], robustness_images: int,
           data: str | None, other_data: bool, quiet: bool) -> None:
    """Write one self-contained HTML report (and its PNGs) on RUN_OR_MODEL, a run folder from
    `numbre train --out DIR` or a model file (default: the shipped model): sample images, training
    curves, confusion matrix, per-class figures, mistakes, calibration, robustness curves and the layer
    table, on the test set of the data the model was trained on unless --data names it."""
    require_torch()
    from numbre.insight.evaluate import dataset_for_model
    from numbre.insight.report import ReportOptions, build_report
    from numbre.insight.report.figures import require_matplotlib
    from numbre.insight.report.run import load_run

    require_matplotlib()
    started = time.perf_counter()
    source = load_run(run_or_model)  # before the data: a wrong path fails at once
    others = tuple(load_run(path) for path in compare)
    if out is not None:
        from numbre.atomic import prepare_folder

        prepare_folder(out, "--out")
    model_file = source.model_file
    dataset = dataset_for_model(model_file.meta, model_file.path, data, quiet=quiet, other_data=other_data)
    built = build_report(source, dataset, out, compare=others,
                         options=ReportOptions(robustness_images=robustness_images))
    click.echo(f"wrote {built.html_path} and {len(built.png_paths)} PNGs beside it "
               f"in {time.perf_counter() - started:.1f} s")


@click.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON object.")
def summary(model: str | None, as_json: bool) -> None:
    """Print MODEL's layers, output shapes and parameters as Keras' summary() does. MODEL is a model
    file, a run folder or a registered model name (see `numbre models`); default: the shipped model."""
    require_torch()
    from numbre.model.summary import format_summary, load_for_summary, summarize

    network, title = load_for_summary(model)
    table = summarize(network, title)
    click.echo(json.dumps(table.to_dict()) if as_json else format_summary(table))
