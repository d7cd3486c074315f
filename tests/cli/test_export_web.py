"""`numbre export --web DIR`: the drawing page as a static site that reads digits in the browser.

What it writes (the page marked as serverless, with relative paths; the model; its rejection policy;
the in-browser runtime), that it replaces an earlier export but never merges into other files, that a
failure leaves the folder as it was, and that the package ships every file the site is made from.
(That the written site reads drawings as the server does is tests/web/test_offline_page.py.)
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

from click.testing import CliRunner

from numbre.cli import cli
from numbre.model.line_model import DEFAULT_LINE_ONNX
from numbre.model.onnx_model import DEFAULT_ONNX
from numbre.reading.recognize import Recognizer
from numbre.web.app import STATIC

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "LICENSE",
           "README.md")


def export_web(folder: Path, *extra: str):
    return CliRunner().invoke(cli, ["export", "--web", str(folder), *extra])


def test_export_web_writes_the_page_the_model_its_policy_and_the_runtime(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = export_web(site)
    assert result.exit_code == 0, result.output
    assert f"wrote {site.absolute()}" in result.output and "http.server" in result.output
    assert sorted(path.name for path in site.iterdir()) == ["index.html", "line-model.onnx", "model.json",
                                                            "model.onnx", "static"]
    page = (site / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en" data-answerer="browser">' in page  # offline.js answers from the start
    assert '"/static/' not in page and '<script src="static/offline.js" defer></script>' in page
    assert 'href="/api/model"' not in page and 'href="model.json"' in page
    assert (site / "model.onnx").read_bytes() == DEFAULT_ONNX.read_bytes()
    # The line model the server pairs with the shipped model: the page reads whole numbers with it.
    assert (site / "line-model.onnx").read_bytes() == DEFAULT_LINE_ONNX.read_bytes()
    assert "line-model.onnx (reads whole numbers)" in result.output
    meta = json.loads((site / "model.json").read_text(encoding="utf-8"))
    assert meta["rejection"] == Recognizer.load().rejector.to_dict()
    assert meta["class_names"][:10] == [str(digit) for digit in range(10)]
    for name in ("app.js", "offline.js", "style.css"):
        assert (site / "static" / name).read_bytes() == (STATIC / name).read_bytes()
    for name in RUNTIME:
        assert (site / "static/vendor/onnxruntime-web" / name).is_file(), name
    assert not (site / "static" / "index.html").exists()
    assert (site.stat().st_mode & 0o755) == 0o755  # readable by a web server's user, not mkdtemp's 0700


def test_export_web_replaces_an_earlier_export_and_refuses_other_folders(tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert export_web(site).exit_code == 0
    (site / "model.json").write_text("{}", encoding="utf-8")
    assert export_web(site).exit_code == 0
    assert json.loads((site / "model.json").read_text(encoding="utf-8"))["rejection"]
    assert [path.name for path in tmp_path.iterdir()] == ["site"]  # nothing left beside it

    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine", encoding="utf-8")
    result = export_web(other)
    assert result.exit_code == 2
    assert "that folder holds other files; give a new or empty folder" in result.output
    assert [path.name for path in other.iterdir()] == ["todo.txt"]

    result = export_web(tmp_path / "x", "--int8")
    assert result.exit_code == 2 and "leave out --out and --int8" in result.output
    assert not (tmp_path / "x").exists()


def test_a_failed_export_leaves_the_earlier_site_as_it_was(tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    assert export_web(site).exit_code == 0
    before = sorted(str(path.relative_to(site)) for path in site.rglob("*"))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", full_disk)
    result = export_web(site)
    assert result.exit_code == 2
    assert "could not write the site (No space left on device); the folder is as it was" in result.output
    assert sorted(str(path.relative_to(site)) for path in site.rglob("*")) == before
    assert [path.name for path in tmp_path.iterdir()] == ["site"]  # the half-built copy is gone


def test_the_package_ships_every_file_of_the_page_and_its_runtime() -> None:
    """setuptools' package-data globs (relative to src/numbre) match every file under web/static."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["numbre"]
    package = ROOT / "src" / "numbre"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    missing = [str(path.relative_to(package)) for path in STATIC.rglob("*")
               if path.is_file() and "__pycache__" not in path.parts and path not in shipped]
    assert not missing, missing


def test_export_web_writes_no_line_model_for_another_model_and_replaces_older_sites(tmp_path: Path) -> None:
    """The server pairs the line model with the shipped model only, so does the site; a site written
    before there was a line model is an earlier export all the same, and is replaced."""
    other = tmp_path / "other.onnx"
    other.write_bytes(DEFAULT_ONNX.read_bytes())
    site = tmp_path / "site"
    result = export_web(site, str(other))
    assert result.exit_code == 0, result.output
    assert not (site / "line-model.onnx").exists() and "line-model.onnx" not in result.output
    assert export_web(site).exit_code == 0
    assert (site / "line-model.onnx").read_bytes() == DEFAULT_LINE_ONNX.read_bytes()
