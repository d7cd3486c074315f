r"""`numbre predict` and `numbre read`: digits from image files, folders, globs or standard input.

Each input is handled on its own: one that cannot be read gets an error line
(on standard error, and as an object with "error" in --json mode) and the rest
are still processed; the exit status is 1 when any input failed.

File names are shown so that one result stays one line: in the tab-separated
output a backslash, tab, newline, carriage return or other control character
in a name is written as a backslash escape (\\, \t, \n, \r, \x1b), and in
both outputs a byte of the name that is not UTF-8 is written as \xHH (the
name's bytes, as Python's "backslashreplace" shows them), so --json is valid
UTF-8 JSON whatever the file system holds.
"""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from numbre.errors import NumbreError
from numbre.reading.limits import IMAGE_SUFFIXES
from numbre.text import escape_text, utf8_text

inputs_argument = click.argument("inputs", nargs=-1, required=True)
model_option = click.option("--model", "-m", type=click.Path(path_type=Path), default=None,
                            help="An ONNX model, model file or run folder (default: the shipped model).")
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")


def _standard_input() -> tuple[bytes | None, str | None]:
    """Standard input's bytes, or an error: no more than the image limit plus one byte is read."""
    from numbre.errors import ImageError
    from numbre.reading.images import read_at_most
    from numbre.reading.limits import MAX_BYTES

    try:
        return read_at_most(sys.stdin.buffer, MAX_BYTES, "standard input"), None
    except ImageError as error:
        return None, str(error)


def expand_inputs(inputs: tuple[str, ...]) -> Iterator[tuple[str, bytes | Path | None, str | None]]:
    """(name, source, error) for every image the arguments name, in order; '-' is standard input."""
    for argument in inputs:
        if argument == "-":
            yield "-", *_standard_input()
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
                click.echo(json.dumps({"file": utf8_text(name), "error": utf8_text(error)}))
            named = error if name in error else f"{name}: {error}"  # image errors name their file
            click.echo(f"numbre: error: {escape_text(named)}", err=True)
            continue
        if as_json:  # allow_nan=False: a non-finite number is a bug to report, never bare NaN
            click.echo(json.dumps({"file": utf8_text(name), **result}, allow_nan=False))
        else:
            click.echo(show(escape_text(name), result))
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
        # The class's name: "7" for a digit model, "Sandal" for one trained on Fashion-MNIST.
        label = escape_text(recognizer.class_names[result["digit"]])
        return f"{name}\t{label}\t{result['confidence']:.1%}"

    run_each(inputs, as_json, handle, show)


line_model_option = click.option(
    "--line-model", "line_model", default=None, metavar="PATH|shipped|none",
    help="The line model that reads a whole number in one pass: an ONNX file of numbre export-lines, "
         "'shipped', or 'none' (cut into digits only). Default: the shipped one with the shipped "
         "digit model, none with a --model of your own.")


def line_choice(line_model: str | None) -> Path | bool | None:
    """--line-model as `Recognizer.load`'s `lines`: a file, True (shipped), False (none) or None."""
    if line_model is None:
        return None
    return {"shipped": True, "none": False}.get(line_model.lower(), Path(line_model))


@click.command()
@inputs_argument
@model_option
@json_option
@line_model_option
def read(inputs: tuple[str, ...], model: Path | None, as_json: bool, line_model: str | None) -> None:
    """Read each image in INPUTS as a written number: one line of digits, any count."""
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load(model, lines=line_choice(line_model))

    def handle(name: str, source: bytes | Path) -> dict:
        return recognizer.read(source).to_dict()

    def show(name: str, result: dict) -> str:
        confidences = " ".join(f"{d['digit'] if d['digit'] is not None else '?'}:{d['confidence']:.0%}"
                               for d in result["digits"])
        number = result["number"] if result["number"] is not None else f"- ({result.get('reason')})"
        return f"{name}\t{number}\t{confidences}"

    run_each(inputs, as_json, handle, show)

