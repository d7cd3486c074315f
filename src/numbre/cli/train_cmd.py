"""`numbre train`: train a registered model with its recipe, options overriding single fields."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from numbre.cli.options import data_option, require_torch

RECIPE_DEFAULT = "default: the model's recipe, see `numbre models`"
# The options that set a training setting, in the order the start of a run names those given.
SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "val_split", "augment", "patience", "seed",
            "device", "threads", "max_train")


def chosen_settings(ctx: click.Context, config) -> str:
    """The settings given on the command line or in the environment, as options: what the person
    chose, in a line (config.json holds all of them)."""
    parts = []
    for name in SETTINGS:
        if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
            continue
        value = getattr(config, name)
        if name == "augment":
            parts.append("--augment" if value else "--no-augment")
        else:
            parts.append(f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float)
                         else f"--{name.replace('_', '-')} {value}")
    return " ".join(parts)


@click.command()
@click.option("--model", "-m", default="numbre", show_default=True,
              help="Model to train (see `numbre models`).")
@click.option("--epochs", type=int, help=f"Training epochs ({RECIPE_DEFAULT}).")
@click.option("--batch-size", type=int, help=f"Images per step ({RECIPE_DEFAULT}).")
@click.option("--lr", type=float, help=f"Peak learning rate ({RECIPE_DEFAULT}).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]),
              help=f"Optimizer ({RECIPE_DEFAULT}).")
@click.option("--val-split", type=float,
              help=f"Share of the training data held out for validation, taken from its end "
                   f"as Keras does ({RECIPE_DEFAULT}).")
@click.option("--augment/--no-augment", default=None,
              help=f"Random shifts or affine warps of each batch, as the recipe says ({RECIPE_DEFAULT}).")
@click.option("--patience", type=int, default=None,
              help="Stop after this many epochs without a better validation loss (default: never).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; same seed, same weights.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Run folder for checkpoints, history and the model file "
                   "(default: runs/<model>-<date>-<time>).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its own settings.")
@click.option("--overwrite", is_flag=True, help="Start afresh in --out even if it holds a run.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1 or mps.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads (default: the cores this process may use, after CPU affinity and any "
                   "container CPU limit).")
@click.option("--max-train", type=click.IntRange(min=1), default=None,
              help="Train on the first N training images only (default: all).")
@data_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines.")
@click.pass_context
def train(ctx: click.Context, model: str, out: Path | None, resume: bool, overwrite: bool,
          data: str | None, quiet: bool, **overrides) -> None:
    """Train a model, validate each epoch, evaluate on the test set and write a model file."""
    from numbre.training.threads import prefer_passive_waiting

    prefer_passive_waiting()  # before torch loads: its threads then sleep, not spin, while they wait
    require_torch()
    from numbre.atomic import prepare_folder
    from numbre.data import load_dataset
    from numbre.errors import TrainingError
    from numbre.model.rejection import META_KEY
    from numbre.model.zoo import get_entry
    from numbre.training.checkpoint import checkpoint_config, read_checkpoint
    from numbre.training.config import TrainConfig
    from numbre.training.loop import (
        LAST,
        MODEL,
        RUN_FILES,
        Trainer,
        check_resumable,
        finished_epochs,
        pick_device,
    )

    if resume:
        if out is None:
            raise TrainingError("--resume needs --out, the folder of the run to continue")
        if overwrite:
            raise TrainingError("--resume and --overwrite contradict each other; choose one")
        if not (out / LAST).is_file():
            raise TrainingError(f"--resume: no checkpoint {out / LAST}; start without --resume")
        # The run's own settings, changed only by options given on this command line (or in the
        # environment), which the trainer then refuses if they differ from the checkpoint's.
        given = {name: value for name, value in {**overrides, "model": model}.items()
                 if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
        checkpoint = read_checkpoint(out / LAST)  # read once here, before the data loads
        config = TrainConfig.from_dict({**checkpoint_config(checkpoint), **given})
        check_resumable(checkpoint, config)
        if (epochs := finished_epochs(checkpoint, out)) is not None:
            stopped = "stopped early after " if epochs < config.epochs else ""
            click.echo(f"{out} is already complete ({stopped}{epochs} of {config.epochs} epochs); "
                       "nothing to resume")
            _print_next_steps(out, data)
            return
    else:
        recipe = dataclasses.asdict(get_entry(model).recipe)
        recipe.update({key: value for key, value in overrides.items() if value is not None})
        config = TrainConfig(**recipe, model=model)
    config.validate()
    pick_device(config.device)  # a device that is not there is refused before anything is made
    if out is None:
        out = Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not resume and ((out / LAST).exists() or (out / MODEL).exists()):
        if not overwrite:
            raise TrainingError(f"{out} already holds a run; continue it with --resume, "
                                "start it afresh with --overwrite, or choose another --out")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    prepare_folder(out, "--out")  # before the data loads: a folder that cannot be made is known at once
    started = time.perf_counter()
    dataset = load_dataset(data, quiet=quiet)
    if data is not None:  # recorded in the model file: evaluate and report find the data there
        dataset = dataclasses.replace(dataset, source=str(Path(data).expanduser().resolve()))
    if not quiet:
        click.echo(f"data: {dataset.name} ({len(dataset.x_train):,} train / {len(dataset.x_test):,} "
                   f"test) from {dataset.source}", err=True)
        entry = get_entry(config.model)
        if resume:
            click.echo(f"resuming {out} with its own settings: {config.model} ({entry.origin}), "
                       f"every setting in {out / 'config.json'}", err=True)
        else:
            chosen = chosen_settings(ctx, config)
            click.echo(f"model: {config.model} ({entry.origin}), recipe: {entry.recipe.describe()}", err=True)
            click.echo(f"your settings: {chosen or 'none, the recipe as it is'} "
                       f"(every setting: {out / 'config.json'})", err=True)
    command = shlex.join(["numbre", *sys.argv[1:]])
    trainer = Trainer(config, dataset, out, command=command, progress=not quiet)
    if not quiet:
        click.echo(f"device: {trainer.device}, {len(trainer.x):,} training / "
                   f"{len(trainer.x_val):,} validation images", err=True)
    result = trainer.run(resume=resume)
    total = time.perf_counter() - started
    stopped = " (stopped early)" if result.stopped_early else ""
    click.echo(f"test accuracy {result.test.accuracy:.2%}  loss {result.test.loss:.4f}  "
               f"({result.test.errors} errors in {result.test.count:,}){stopped}")
    click.echo(f"training {result.train_seconds:.1f} s, whole command {total:.1f} s")
    if META_KEY in result.extra:  # the trainer fitted a rejection and recorded it in the model file
        click.echo(f"not a digit: fitted on {len(trainer.x_val):,} validation images; `numbre predict` "
                   "says it for images the model does not recognise as one of its classes")
    else:
        click.echo("not a digit: never answered by this model: the run had no validation split to fit "
                   "the rejection on; train with --val-split 0.1 for a model that says it")
    _print_next_steps(out, data)


def _print_next_steps(out: Path, data: str | None) -> None:
    """Where the model is and the commands that use it, with the run's own --data."""
    from numbre.training.loop import MODEL

    with_data = f" --data {shlex.quote(data)}" if data is not None else ""
    click.echo(f"model file: {out / MODEL}")
    click.echo(f"evaluate it: numbre evaluate {shlex.quote(str(out))}{with_data}")
    click.echo(f"use it:      numbre predict IMAGE --model {shlex.quote(str(out / MODEL))}   "
               f"(or Recognizer.load({str(out / MODEL)!r}) in Python)")
