"""`numbre models`: the model zoo as a table."""

from __future__ import annotations

import click

from numbre.cli.options import require_torch


@click.command()
def models() -> None:
    """List the models: name, origin, parameters, multiply-accumulates, default recipe."""
    require_torch()
    from numbre.model.zoo import count_macs, count_parameters, create_model, get_entry, list_models

    rows = []
    for name in list_models():
        entry = get_entry(name)
        model = create_model(name, entry.mnist_outputs)
        rows.append((name, entry.origin, f"{count_parameters(model):,}", f"{count_macs(model):,}",
                     entry.recipe.describe()))
    header = ("name", "origin", "parameters", "MACs/image", "default recipe")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        click.echo("  ".join(cell.rjust(w) if 2 <= i <= 3 else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))
