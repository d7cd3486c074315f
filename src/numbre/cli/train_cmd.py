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
EXTRA_SHARE = 0.1  # of each batch, with --extra: 12 of 128 images, enough for a few corrections to be learnt
# The options that set a training setting, in the order the start of a run names those given.
SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "val_split", "augment", "synthetic",
            "synthetic_variation", "patience",
            "seed", "device", "threads", "max_train")


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


def _rank_args(ctx: click.Context, out: Path) -> list[str]:
    """The options of this command line for each process `--nproc` starts: those given (except
    --nproc), with the run folder chosen here, so that every process names the same one."""
    args = ["--out", str(out)]
    for param in ctx.command.params:
        if param.name in ("nproc", "out") or not isinstance(param, click.Option) \
                or ctx.get_parameter_source(param.name) in (None, ParameterSource.DEFAULT):
            continue
        value = ctx.params[param.name]
        if param.is_flag and param.secondary_opts:
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag:
            args += [param.opts[0]] if value else []
        elif param.multiple:
            for item in value:
                args += [param.opts[0], str(item)]
        else:
            args += [param.opts[0], str(value)]
    return args


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
@click.option("--synthetic", type=click.FloatRange(0.0, 1.0), default=None,
              help="Share of each batch replaced by digits of synthesised writers (the training part "
                   f"of `numbre data show --synthetic`; {RECIPE_DEFAULT}).")
@click.option("--synthetic-variation", type=click.FloatRange(0.0, 3.0), default=None,
              help="How far the synthesised digits' letter forms move from the synthesiser's listed "
                   "ones: 0 draws the listed forms only, 1 (the default) bends and moves each a little.")
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
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Train in N processes on this machine with DistributedDataParallel, each on its share "
                   "of every batch, with the cores split between them (default: 1; on several machines "
                   "start `torchrun ... -m numbre train` instead, see docs/scale-out.md).")
@click.option("--max-train", type=click.IntRange(min=1), default=None,
              help="Train on the first N training images only (default: all).")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Fine-tune: start from this model file's or run folder's weights (`shipped`: numbre's "
                   "own model), with its architecture and recorded recipe, for 1 epoch at a tenth of its "
                   "learning rate (its own rate if it was fine-tuned itself) unless --epochs or --lr say "
                   "otherwise (default: random weights).")
@click.option("--extra", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="A corrections folder (`numbre serve --corrections`, `numbre draw --corrections`) to "
                   "train on besides --data; repeat for several (default: none).")
@click.option("--extra-share", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=None,
              help=f"Share of each batch taken by --extra images, drawn again and again so that a few "
                   f"corrections count (default: {EXTRA_SHARE:g} with --extra).")
@data_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines.")
@click.pass_context
def train(ctx: click.Context, model: str, out: Path | None, resume: bool, overwrite: bool,
          data: str | None, quiet: bool, **overrides) -> None:
    """Train a model, validate each epoch, evaluate on the test set and write a model file."""
    from numbre.training.threads import prefer_passive_waiting

    prefer_passive_waiting()  # before torch loads: its threads then sleep, not spin, while they wait
    nproc = overrides.pop("nproc")  # how the run is spread over processes, not a training setting
    overrides["extra"] = tuple(str(folder.resolve()) for folder in overrides["extra"])
    if overrides["extra"] and overrides["extra_share"] is None:
        overrides["extra_share"] = EXTRA_SHARE
    if overrides["init"] is not None:
        overrides["init"] = _init_path(overrides["init"])
    require_torch()
    from numbre.atomic import prepare_folder
    from numbre.data import load_dataset
    from numbre.errors import TrainingError
    from numbre.model.rejection import META_KEY
    from numbre.model.zoo import get_entry
    from numbre.training import distributed
    from numbre.training.checkpoint import checkpoint_config, read_checkpoint
    from numbre.training.config import TrainConfig
    from numbre.training.device import pick_device
    from numbre.training.loop import (
        LAST,
        MODEL,
        RUN_FILES,
        Trainer,
        check_resumable,
        finished_epochs,
    )

    group = None  # this process's place among several that torchrun or --nproc started
    if distributed.launched():
        if nproc is not None:
            raise TrainingError("--nproc: this process is one of several a launcher (torchrun) started "
                                "already; leave --nproc out and set the count with the launcher")
        group = distributed.join(overrides["device"])
        if group.rank != 0:  # rank 0 settles the run and writes; the others train beside it
            sys.exit(distributed.follow(group, data))
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
            if group is not None:
                group.share({"done": True})
            return
    else:
        if overrides["init"] is not None:
            model, recipe = _fine_tune_recipe(ctx, Path(overrides["init"]), model)
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
    if nproc is not None and nproc > 1:  # the ranks do the rest, rank 0 printing as this would
        distributed.launch_local(nproc, config, _rank_args(ctx, out), out)
        return
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
            recipe = config if config.init else entry.recipe  # a fine-tune's recipe is its model file's
            click.echo(f"model: {config.model} ({entry.origin}), recipe: {recipe.describe()}", err=True)
            click.echo(f"your settings: {chosen or 'none, the recipe as it is'} "
                       f"(every setting: {out / 'config.json'})", err=True)
        if config.init:
            click.echo(f"fine-tuning: starting from the weights of {config.init}, {config.epochs} "
                       f"epoch(s) at learning rate {config.lr:g}", err=True)
    command = shlex.join(["numbre", *sys.argv[1:]])
    if group is not None:
        group.share({"config": config.to_dict(), "command": command, "resume": resume})
        trainer = distributed.DistributedTrainer(config, dataset, out, group, command=command,
                                                 progress=not quiet)
    else:
        trainer = Trainer(config, dataset, out, command=command, progress=not quiet)
    if not quiet:
        click.echo(f"device: {trainer.device}, {len(trainer.x):,} training / "
                   f"{len(trainer.x_val):,} validation images", err=True)
        if config.extra:
            click.echo(f"extra: {len(trainer.extra_y):,} corrections from {', '.join(config.extra)}, "
                       f"{config.extra_share:.0%} of every batch", err=True)
    try:
        result = trainer.run(resume=resume)
    except distributed.StoppedElsewhere:  # another rank stopped first; the launcher says which
        sys.exit(1)
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


def _init_path(given: Path) -> str:
    """--init's model file as an absolute path, recorded in config.json; `shipped` is numbre's own model."""
    from numbre.errors import TrainingError
    from numbre.model.file import DEFAULT_MODEL

    if str(given) == "shipped":
        return str(DEFAULT_MODEL)
    if not given.expanduser().exists():
        raise TrainingError(f"--init {given}: no model file there; give a model file or run folder of "
                            "`numbre train`, or `shipped` for numbre's own model")
    return str(given.expanduser().resolve())


def _fine_tune_recipe(ctx: click.Context, init: Path, model: str) -> tuple[str, dict]:
    """The architecture and recipe of a run that starts from the model file `init`
    (`numbre.training.config.fine_tune_recipe`), refusing a --model the file is not."""
    from numbre.errors import TrainingError
    from numbre.model.file import load_model_file
    from numbre.training.config import fine_tune_recipe

    model_file = load_model_file(init)
    architecture = model_file.architecture
    if ctx.get_parameter_source("model") not in (None, ParameterSource.DEFAULT) and model != architecture:
        raise TrainingError(f"--init {init} is a {architecture!r} model, not {model!r}; leave --model out "
                            "to fine-tune it")
    return architecture, fine_tune_recipe(architecture, model_file.meta.get("recipe"))


def _print_next_steps(out: Path, data: str | None) -> None:
    """Where the model is and the commands that use it, with the run's own --data."""
    from numbre.training.loop import MODEL

    with_data = f" --data {shlex.quote(data)}" if data is not None else ""
    click.echo(f"model file: {out / MODEL}")
    click.echo(f"evaluate it: numbre evaluate {shlex.quote(str(out))}{with_data}")
    click.echo(f"use it:      numbre predict IMAGE --model {shlex.quote(str(out / MODEL))}   "
               f"(or Recognizer.load({str(out / MODEL)!r}) in Python)")
