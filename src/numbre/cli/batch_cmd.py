"""`numbre batch`: read an archive of images on Ray (a local one, or a cluster) into Parquet or JSON lines.

Each image gets the record `numbre predict --json` (or, with --mode number, `numbre read --json`)
prints, keyed by its absolute path; an image that cannot be read gets a row with its error. Run
it again with the same OUT to go on where a stopped run ended: only images not yet in OUT are read.
The exit status is 0 when the run ends, unreadable images included (they are rows of OUT), and 2
for bad options, no inputs, an OUT that cannot be written, or Ray missing.
"""

from __future__ import annotations

from pathlib import Path

import click

from numbre.cli.predict_cmd import line_choice, line_model_option, model_option


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", "out", type=click.Path(path_type=Path), required=True,
              help="Output folder: part files plus a manifest; the same folder again resumes.")
@click.option("--mode", type=click.Choice(["digit", "number"]), default="digit", show_default=True,
              help="digit: each image is one digit (as numbre predict); "
                   "number: a line of digits (as numbre read).")
@model_option
@line_model_option
@click.option("--address", default=None,
              help="Join this Ray cluster: auto (the cluster this machine belongs to) or ray://HOST:10001. "
                   "Default: start a Ray on this machine.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Recognising processes (default: one per CPU, locally or of the cluster).")
@click.option("--format", "format_", type=click.Choice(["parquet", "jsonl"]), default="parquet",
              show_default=True, help="Part files as Parquet, or JSON lines in numbre predict --json's form.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar with images per second.")
def batch(inputs: tuple[str, ...], out: Path, mode: str, model: Path | None, line_model: str | None,
          address: str | None, workers: int | None, format_: str, progress: bool) -> None:
    """Read every image in INPUTS (folders, at any depth; quoted globs; text files listing paths) into OUT."""
    from numbre.batch.inputs import expand
    from numbre.batch.run import run_batch

    found = expand(inputs)
    summary = run_batch(found, out, mode=mode, model=model, lines=line_choice(line_model), address=address,
                        workers=workers,
                        format=format_, progress=progress)
    steady = summary.steady_rate
    rate = "" if not summary.seconds else (
        f" in {summary.seconds:.1f} s ({summary.startup:.1f} s starting workers, then "
        f"{steady:.0f} images/s)" if steady else f" in {summary.seconds:.1f} s")
    click.echo(f"read {summary.read} images{rate}: {summary.rejected} rejected, {summary.unreadable} "
               f"unreadable; {summary.skipped} already in {out} were skipped", err=True)
