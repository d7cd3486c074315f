"""The single-file executable from scripts/build_standalone.py runs `numbre serve` and `numbre draw`.

A PyInstaller build can succeed and still produce a file that fails at start: a module imported by name
at run time (uvicorn's loop and protocol choice), a native library or a data file (the model, the page)
left behind. Only running it finds those, so this test builds the executable once for the module, with
the same script the README gives, into a temporary folder (about 1.5 minutes here; 2 the first time,
when PyInstaller's cache of processed libraries is empty), then runs it from a folder outside the
checkout.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apphelpers import ONE, STATIC_FILES, check_draw, check_server, clean_environment, running_server
from numbre import __version__
from webhelpers import strokes_png

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build_standalone.py"
LARGEST = 200 * 2**20  # about 105 MiB now; torch slipping in would make it well over a gigabyte
ARTIFACTS = ROOT / "test-artifacts" / "standalone"


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/numbre built by the README's script in a temporary folder; size and build time go to ARTIFACTS."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.fail("the standalone test builds with PyInstaller: pip install -e '.[standalone]'",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("standalone")
    started = time.monotonic()
    command = [sys.executable, BUILD_SCRIPT, "--dist", folder / "dist", "--work", folder / "work"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert result.returncode == 0, f"the build failed:\n{result.stdout}\n{result.stderr}"
    built = folder / "dist" / ("numbre.exe" if sys.platform == "win32" else "numbre")
    assert built.is_file(), result.stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "build.txt").write_text(f"{built.stat().st_size:,} bytes, built in "
                                         f"{time.monotonic() - started:.0f} s\n{result.stdout}")
    return built


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    return tmp_path


def test_it_is_one_file_without_torch(executable: Path) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    assert executable.stat().st_size < LARGEST, f"{executable.stat().st_size:,} bytes"
    archive = CArchiveReader(str(executable))
    assert "numbre/pretrained/numbre-default.onnx" in archive.toc
    assert "numbre/web/static/index.html" in archive.toc
    assert not [name for name in archive.toc if name.startswith(("torch/", "matplotlib/"))]
    modules = archive.open_embedded_archive("PYZ.pyz").toc
    assert "numbre.cli.serve_cmd" in modules and "numbre.desktop.window" in modules
    assert not [name for name in modules if name.split(".")[0] in ("torch", "matplotlib")]


def test_it_tells_its_version_and_reads_a_file(executable: Path, outside: Path) -> None:
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=120,
                             cwd=outside, env=clean_environment())
    assert version.returncode == 0 and version.stdout.strip() == f"numbre, version {__version__}", version
    (outside / "one.png").write_bytes(strokes_png(ONE))
    answer = subprocess.run([executable, "predict", "one.png", "--json"], capture_output=True, text=True,
                            timeout=120, cwd=outside, env=clean_environment())
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["digit"] == 1
    # Training needs torch, which the file leaves out, and it has no pip of its own to install it with.
    train = subprocess.run([executable, "train"], capture_output=True, text=True, timeout=120, cwd=outside,
                           env=clean_environment())
    assert train.returncode == 2 and train.stderr == (
        "numbre: error: this command needs PyTorch, which the one-file numbre program leaves out: run it "
        "from the Python package, installed into a Python environment with pip install 'numbre[train]'\n")


def test_it_serves_the_page_and_reads_digits(executable: Path, outside: Path) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(executable))
    static = {name: archive.extract(f"numbre/web/static/{name}") for name in STATIC_FILES}
    with running_server([str(executable)], outside) as url:
        check_server(url, static)


def test_it_opens_the_drawing_window(executable: Path, outside: Path) -> None:
    check_draw([str(executable)], outside)
