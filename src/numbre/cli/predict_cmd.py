"""`numbre predict` and `numbre read`: digits from image files, folders, globs or standard input.

Each input is handled on its own: one that cannot be read gets an error line
(on standard error, and as an object with "error" in --json mode) and the rest
are still processed; the exit status is 1 when any input failed.
"""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from numbre.errors import NumbreError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}

inputs_argument = click.argument("inputs", nargs=-1, required=True)
model_option = click.option("--model", "-m", type=click.Path(path_type=Path), default=None,
                            help="An ONNX model, model file or run folder (default: the shipped model).")
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


def expand_inputs(inputs: tuple[str, ...]) -> Iterator[tuple[str, bytes | Path | None, str | None]]:
    """(name, source, error) for every image the arguments name, in order; '-' is standard input."""
    for argument in inputs:
        if argument == "-":
            yield "-", sys.stdin.buffer.read(), None
            continue
        path = Path(argument)
        if path.is_dir():
            files = sorted(item for item in path.iterdir()
                           if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                yield argument, None, f"folder {argument} holds no image files"
            for item in files:
                yield str(item), item, None
        elif path.exists():
            yield argument, path, None
        elif glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                yield argument, None, f"no file matches {argument}"
            for match in matches:
                yield match, Path(match), None
        else:
            yield argument, None, f"no such file: {argument}"


def run_each(inputs: tuple[str, ...], as_json: bool, handle: Callable[[str, bytes | Path], dict],
             show: Callable[[str, dict], str]) -> None:
    """Call `handle` on every input, print its result or an error line, exit 1 if any failed."""
    failed = 0
    for name, source, error in expand_inputs(inputs):
        if source is not None:
            try:
                result = handle(name, source)
            except NumbreError as problem:
                error = str(problem)
        if error is not None:
            failed += 1
            if as_json:
                click.echo(json.dumps({"file": name, "error": error}))
            named = error if name in error else f"{name}: {error}"  # image errors name their file
            click.echo(f"numbre: error: {named}", err=True)
            continue
        click.echo(json.dumps({"file": name, **result}) if as_json else show(name, result))
    if failed:
        sys.exit(1)


def _explain_path(explain: Path, name: str, many: bool) -> Path:
    if not many and explain.suffix.lower() == ".png":
        return explain
    stem = "stdin" if name == "-" else Path(name).stem
    return explain / f"{stem}.explain.png"


@click.command()
@inputs_argument
@model_option
@json_option
@click.option("--explain", type=click.Path(path_type=Path), default=None,
              help="Write a PNG of every preprocessing stage: a .png file for one input, "
                   "else a folder that gets <name>.explain.png per input.")
def predict(inputs: tuple[str, ...], model: Path | None, as_json: bool, explain: Path | None) -> None:
    """Read each image in INPUTS (files, folders, globs, - for standard input) as one digit."""
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load(model)
    many = len(inputs) > 1 or any(Path(item).is_dir() or glob.has_magic(item) for item in inputs)

    def handle(name: str, source: bytes | Path) -> dict:
        if explain is not None:
            from numbre.insight.plots import save_stages_png
            from numbre.reading.preprocess import to_mnist

            target = _explain_path(explain, name, many)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_stages_png(to_mnist(source, explain=True), target)
        return recognizer.predict(source).to_dict()

    def show(name: str, result: dict) -> str:
        if result["digit"] is None:
            return f"{name}\t-\t{result['reason']}"
        return f"{name}\t{result['digit']}\t{result['confidence']:.1%}"

    run_each(inputs, as_json, handle, show)


@click.command()
@inputs_argument
@model_option
@json_option
def read(inputs: tuple[str, ...], model: Path | None, as_json: bool) -> None:
    """Read each image in INPUTS as a written number: one line of digits, any count."""
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load(model)

    def handle(name: str, source: bytes | Path) -> dict:
        return recognizer.read(source).to_dict()

    def show(name: str, result: dict) -> str:
        confidences = " ".join(f"{d['digit'] if d['digit'] is not None else '?'}:{d['confidence']:.0%}"
                               for d in result["digits"])
        number = result["number"] if result["number"] is not None else f"- ({result.get('reason')})"
        return f"{name}\t{number}\t{confidences}"

    run_each(inputs, as_json, handle, show)

