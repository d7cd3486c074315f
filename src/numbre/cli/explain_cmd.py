"""`numbre explain`: a PNG of what a model saw in one image, where it looked and what it computed."""

from __future__ import annotations

from pathlib import Path

import click

from numbre.cli.options import PNG_FILE


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--model", "-m", type=click.Path(path_type=Path), default=None,
              help="A model file or run folder (default: the shipped model).")
@click.option("--out", "-o", **PNG_FILE, default=None,
              help="PNG to write (default: <image name>.explain.png in the current folder).")
def explain(image: Path, model: Path | None, out: Path | None) -> None:
    """Explain how a model reads IMAGE as one digit: the preprocessed input, an occlusion saliency
    map, the first-layer filters, every convolution layer's activations and the top three classes."""
    from numbre.insight.explain import explain as explain_image
    from numbre.insight.explain import percent, save_explanation_png

    explanation = explain_image(image, model)
    target = out if out is not None else Path(f"{image.stem}.explain.png")
    save_explanation_png(explanation, target)
    click.echo(f"{image}: {explanation.model} answers {explanation.answer}")
    width = max(len(name) for name, _ in explanation.top)
    for name, probability in explanation.top:
        click.echo(f"  {name:<{width}}  {percent(probability):>8}")
    layers = len(explanation.activations)
    click.echo(f"wrote {target} (input, saliency, {len(explanation.filters)} first-layer filters, "
               f"{layers} convolution layer{'s' if layers != 1 else ''}, top {len(explanation.top)})")
