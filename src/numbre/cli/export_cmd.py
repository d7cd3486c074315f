"""`numbre export`: write a model file as ONNX for the torch-free inference path, or (`--web DIR`) the
drawing page as a static site that reads digits in the browser, with no server behind it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from numbre.cli.options import data_option, other_data_option, require_torch

CALIBRATION_IMAGES = 2000


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="ONNX file to write (default: MODEL with the suffix .onnx; model.onnx in a run folder).")
@click.option("--int8", is_flag=True,
              help=f"Quantise to int8, calibrated on the last {CALIBRATION_IMAGES:,} training images of the "
                   "data the model was trained on (or --data): about twice as fast on CPUs with int8 "
                   "instructions.")
@click.option("--web", "web", type=click.Path(path_type=Path), default=None,
              help="Write the drawing page with MODEL's ONNX form (default: the shipped model) into this new "
                   "folder as a static site: it reads digits in the browser, without a server.")
@data_option
@other_data_option
def export(model: Path | None, out: Path | None, int8: bool, data: str | None, other_data: bool,
           web: Path | None) -> None:
    """Export MODEL (a model file or run folder; default: the shipped model) as ONNX."""
    from numbre.errors import NumbreError

    if web is not None:
        if out is not None or int8:
            raise NumbreError("--web writes a static site and takes the model as it is: leave out --out and "
                              "--int8 (export an int8 ONNX file first, then give it as MODEL)")
        export_web(model, web)
        return
    require_torch()
    from numbre.model.export import export_onnx

    if out is None:
        if model is None:
            raise NumbreError("exporting the shipped model needs --out FILE.onnx")
        out = model / "model.onnx" if model.is_dir() else model.with_suffix(".onnx")
    calibration = None
    if int8:
        from numbre.insight.evaluate import dataset_for_model
        from numbre.model.file import load_model_file

        # The model's own data, as evaluate finds it: ranges calibrated on other images fit it badly.
        model_file = load_model_file(model)
        dataset = dataset_for_model(model_file.meta, model_file.path, data, quiet=True, other_data=other_data)
        calibration = dataset.x_train[-CALIBRATION_IMAGES:].astype("float32") / 255
    path = export_onnx(model, out, calibration=calibration)
    checked = "int8 answers agree with torch" if int8 else "ONNX Runtime matches torch"
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes); {checked}")


# What the exported page changes: it says there is no server (offline.js then answers from the start),
# loads its files relative to itself (so the site works in a subfolder too), and links the model's
# metadata file instead of the server's API pages.
PAGE_MARK = ('<html lang="en">', '<html lang="en" data-answerer="browser">')
PAGE_LINKS = (('"/static/', '"static/'), ('<a href="/docs">HTTP API</a> · ', ''),
              ('href="/api/model"', 'href="model.json"'))
LINE_FILE = "line-model.onnx"  # the line model (numbre.model.line_model): offline.js reads numbers with it
SITE_FILES = ("index.html", "model.onnx", "model.json", "static", LINE_FILE)


def export_web(model: Path | None, folder: Path) -> None:
    """Write the drawing page, MODEL's ONNX file, its metadata (the rejection policy the page applies),
    the line model that reads whole numbers and the in-browser runtime into `folder`, all at once.

    The line model is the one the server pairs with MODEL (`Recognizer.load`): the shipped one with the
    shipped model, none with another (the page then reads one digit at a time).

    The site is built in a temporary folder beside `folder` and renamed into place, so `folder` is
    never half written. A folder that holds anything but an earlier export is refused, not merged.
    """
    from numbre.atomic import check_folder_path
    from numbre.errors import NumbreError
    from numbre.model.line_model import DEFAULT_LINE_ONNX, LineModel
    from numbre.model.onnx_model import OnnxModel
    from numbre.reading.recognize import Recognizer, resolve_onnx
    from numbre.web.app import STATIC
    from numbre.web.runtime import FILES, STATIC_FOLDER, ensure_runtime

    check_folder_path(folder, "--web")
    held = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    # An earlier export may lack the line model (written before it, or for another model).
    if held and (not set(held) <= set(SITE_FILES) or "index.html" not in held):
        raise NumbreError(f"--web {folder}: that folder holds other files; give a new or empty folder "
                          "(or one an earlier numbre export --web wrote, which is replaced)")
    onnx = OnnxModel.load(resolve_onnx(model))
    rejector = Recognizer(onnx).rejector  # refuses a model that does not read digits
    # Loading checks the file (digests, operators) before the site serves it to browsers.
    lines = LineModel.load(DEFAULT_LINE_ONNX) if model is None and DEFAULT_LINE_ONNX.is_file() else None
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    if PAGE_MARK[0] not in page:
        raise NumbreError(f"{STATIC / 'index.html'} has no {PAGE_MARK[0]} tag to mark as a static site; "
                          "the numbre installation is damaged: reinstall it")
    page = page.replace(PAGE_MARK[0], PAGE_MARK[1], 1)
    for old, new in PAGE_LINKS:
        page = page.replace(old, new)
    meta = {**onnx.meta, "rejection": rejector.to_dict()}
    runtime = ensure_runtime()  # fetched (checked) into the cache the first time; its errors say what to do
    folder = folder.absolute()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    except OSError as error:
        raise NumbreError(f"--web {folder}: cannot write there ({error.strerror or error}); "
                          "choose another folder") from None
    try:
        shutil.copytree(STATIC, building / "static",
                        ignore=shutil.ignore_patterns("index.html", "__pycache__"))
        for name in FILES:
            shutil.copyfile(runtime / name, building / "static" / STATIC_FOLDER / name)
        (building / "index.html").write_text(page, encoding="utf-8")
        (building / "model.onnx").write_bytes(onnx.data)
        if lines is not None:
            (building / LINE_FILE).write_bytes(lines.path.read_bytes())
        (building / "model.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        os.chmod(building, 0o777 & ~_umask())  # mkdtemp makes 0700; a web server's user must read it
        _swap_into_place(building, folder)
    except OSError as error:
        raise NumbreError(f"--web {folder}: could not write the site ({error.strerror or error}); "
                          "the folder is as it was") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    line_part = f", {LINE_FILE} (reads whole numbers)" if lines is not None else ""
    click.echo(f"wrote {folder}: the drawing page, model.onnx ({len(onnx.data):,} bytes), model.json (its "
               f"rejection policy){line_part} and the in-browser runtime. Serve the folder with any static "
               f"web server, e.g. python -m http.server -d {folder} (a page opened from a file:// path "
               "cannot load WebAssembly)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(building: Path, folder: Path) -> None:
    """Rename the built site to `folder`; an earlier export there is moved aside first and removed after
    (put back if the rename fails)."""
    if not folder.exists() or not any(folder.iterdir()):
        os.replace(building, folder)  # a rename over a missing or empty folder is one atomic step
        return
    aside = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.replace(folder, aside)
    try:
        os.replace(building, folder)
    except OSError:
        os.replace(aside, folder)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(aside)
