"""The `numbre` command line: a thin caller of the library, one module per command group.

Errors a user can cause arrive as `NumbreError` and are printed as one line
with exit status 2; there is no traceback for bad input. Every option can
also be set by an environment variable, NUMBRE_<COMMAND>_<OPTION>
(for example NUMBRE_TRAIN_EPOCHS=3).

A front end: commands may import any stage of the library, which never imports them.
"""

from __future__ import annotations

import sys

import click

from numbre import __version__
from numbre.errors import NumbreError


class NumbreGroup(click.Group):
    """A group that turns NumbreError into a clean one-line message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NumbreError as error:
            click.echo(f"numbre: error: {error}", err=True)
            sys.exit(2)


@click.group(cls=NumbreGroup, context_settings={"auto_envvar_prefix": "NUMBRE",
                                                  "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="numbre")
def cli() -> None:
    """numbre reads handwritten digits: fetch MNIST, train and compare models, evaluate them, read images."""


def _register() -> None:
    from numbre.cli import (
        batch_cmd,
        compare_cmd,
        data_cmd,
        draw_cmd,
        evaluate_cmd,
        explain_cmd,
        export_cmd,
        lines_cmd,
        models_cmd,
        predict_cmd,
        report_cmd,
        serve_cmd,
        train_cmd,
    )

    cli.add_command(data_cmd.data)
    cli.add_command(models_cmd.models)
    cli.add_command(train_cmd.train)
    cli.add_command(evaluate_cmd.evaluate)
    cli.add_command(compare_cmd.compare)
    cli.add_command(explain_cmd.explain)
    cli.add_command(export_cmd.export)
    cli.add_command(predict_cmd.predict)
    cli.add_command(predict_cmd.read)
    cli.add_command(report_cmd.report)
    cli.add_command(report_cmd.summary)
    cli.add_command(serve_cmd.serve)
    cli.add_command(draw_cmd.draw)
    cli.add_command(batch_cmd.batch)
    cli.add_command(lines_cmd.train_lines)
    cli.add_command(lines_cmd.export_lines)


_register()


def main() -> None:
    cli(prog_name="numbre")
