"""`numbre train-lines` and `numbre export-lines`: the whole-number line reader's model.

train-lines makes synthetic lines as `numbre read` sees them
(numbre.reading.training_lines), trains
the CTC line network (numbre.training.lines) and writes the run folder:
line-model.pt (weights), line-model.onnx (what reading uses) and
history.json (settings and figures per epoch).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from numbre.cli.options import data_option, require_torch


def _stage_widths(text: str | None) -> tuple[int, int, int, int] | None:
    """--widths "24,48,72,96" -> (24, 48, 72, 96), or a usage error that says what is wrong."""
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(1 <= value <= 512 for value in values):
        raise click.BadParameter(f"{text!r} is not four channel counts from 1 to 512 such as 24,48,72,96",
                                 param_hint="--widths")
    return values  # type: ignore[return-value]


@click.command("train-lines")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True,
              help="Run folder to write (line-model.pt, line-model.onnx, history.json).")
@click.option("--lines", type=click.IntRange(1), default=8000, show_default=True,
              help="Synthetic training lines of 1-12 digits.")
@click.option("--check", type=click.IntRange(0), default=400, show_default=True,
              help="Other synthetic lines read after each epoch (exact match).")
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=32, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--widths", type=str, default=None, metavar="A,B,C,D",
              help="Channels of the four convolution stages (default: 16,32,48,64).")
@click.option("--features", type=click.IntRange(8, 1024), default=None,
              help="Channels of each 4-column frame (default: 96).")
@click.option("--bf16/--no-bf16", default=None,
              help="bfloat16 autocast for the network (default: where the CPU computes it natively).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads (default: the cores free to the process, changed while training "
                   "when other programs take them; see the README's busy-machine section).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Processes making the lines.")
@click.option("--synthetic-variation", type=click.FloatRange(0.0, 3.0), default=0.0, show_default=True,
              help="How far the synthesised writers' letter forms move from the synthesiser's listed "
                   "ones (as `numbre train --synthetic-variation`; 0 draws the listed forms only).")
@data_option
def train_lines(out: Path, lines: int, check: int, epochs: int, batch: int, learning_rate: float, seed: int,
                widths: str | None, features: int | None, bf16: bool | None, threads: int | None,
                workers: int, synthetic_variation: float, data: str | None) -> None:
    """Train the whole-number line reader (CTC) on synthetic lines and export it as ONNX."""
    require_torch()
    stages = _stage_widths(widths)
    from numbre.atomic import atomic_write, prepare_folder
    from numbre.training.threads import prefer_passive_waiting

    prefer_passive_waiting()
    from numbre.model.line_net import FEATURES, WIDTHS, export_line_onnx, save_checkpoint
    from numbre.reading.training_lines import CHECK_SEED_OFFSET, prepared_lines
    from numbre.training.lines import LineTrainConfig
    from numbre.training.lines import train_lines as train

    prepare_folder(out, "--out")
    started = time.perf_counter()
    images, labels = prepared_lines(lines, seed, workers, data, variation=synthetic_variation)
    checks = (prepared_lines(check, seed + CHECK_SEED_OFFSET, workers, data, variation=synthetic_variation)
              if check else None)
    made = time.perf_counter() - started
    click.echo(f"made {len(images):,} training lines and {len(checks[0]) if checks else 0:,} check lines "
               f"in {made:.0f} s")
    config = LineTrainConfig(epochs=epochs, batch=batch, learning_rate=learning_rate, seed=seed,
                             threads=threads, widths=stages or WIDTHS, features=features or FEATURES,
                             bf16=bf16)
    model, history = train(images, labels, config, checks, report=click.echo)
    meta = {"lines": len(images), "check_lines": len(checks[0]) if checks else 0, "epochs": epochs,
            "batch": batch, "learning_rate": learning_rate, "seed": seed, "widths": list(config.widths),
            "features": config.features, "bf16": history.bf16, "synthetic_variation": synthetic_variation,
            "data": f"numbre.data.lines: training digits of {data or 'MNIST'} and numbre.data.synthetic "
                    "split=train",
            "check_exact": history.exact[-1] if checks else None, "final_loss": history.loss[-1]}
    save_checkpoint(model, out / "line-model.pt", meta)
    export_line_onnx(model, out / "line-model.onnx", meta)
    record = {**meta, "loss": history.loss, "exact": history.exact, "seconds": history.seconds,
              "threads": history.threads,
              "making_lines_seconds": made}
    atomic_write(out / "history.json", (json.dumps(record, indent=2) + "\n").encode())
    click.echo(f"wrote {out / 'line-model.onnx'} ({time.perf_counter() - started:.0f} s in all)")


@click.command("export-lines")
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="ONNX file to write.")
def export_lines(checkpoint: Path, out: Path) -> None:
    """Export a line-model.pt of `numbre train-lines` as ONNX (for `Recognizer` number reading)."""
    require_torch()
    from numbre.errors import ModelFileError
    from numbre.model.line_net import export_line_onnx, load_checkpoint

    try:
        model, meta = load_checkpoint(checkpoint)
    except Exception as error:  # torch.load and load_state_dict raise assorted errors for other files
        raise ModelFileError(f"{checkpoint} is not a line-model.pt of numbre train-lines: "
                             f"{str(error).splitlines()[0][:200] if str(error) else error!r}") from None
    export_line_onnx(model, out, meta)
    click.echo(f"wrote {out}")
