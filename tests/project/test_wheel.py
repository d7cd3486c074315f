"""`pip install numbre[serve,desktop]` from a built wheel gives a working `numbre serve` and `numbre draw`.

The editable install the other tests use reads the model and the page's files straight from `src/`, so a
file left out of the package data, or a module that imports torch at the top, would pass them all and
break every real install. This test builds the wheel from a copy of the sources (a stale build/ folder
in the checkout could otherwise slip old files in), installs it into a fresh virtual environment the way
a user would, with pip resolving the dependencies, and runs the installed console script from a folder
outside the checkout. It takes a minute or two, mostly pip installing ONNX Runtime, SciPy and FastAPI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from apphelpers import SEVEN, STATIC_FILES, check_draw, check_server, clean_environment, running_server
from webhelpers import strokes_png

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ["numbre/pretrained/numbre-default.onnx", "numbre/pretrained/numbre-default.safetensors",
            "numbre/web/static/index.html", *(f"numbre/web/static/{name}" for name in STATIC_FILES),
            "numbre/web/contest_set/contest.png", "numbre/web/contest_set/contest.json"]
NOT_INSTALLED = ("torch", "matplotlib")  # training only: the `train` extra


def run(command: list, timeout: float, **options) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                            **options)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built with pip from a copy of pyproject.toml, README.md and src/."""
    source = tmp_path_factory.mktemp("wheel-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", out, source],
        timeout=600, env=clean_environment())
    wheels = list(out.glob("numbre-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its `serve` and `desktop` extras."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", venv], timeout=120, env=clean_environment())
    run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check",
         f"numbre[serve,desktop] @ {wheel.as_uri()}"], timeout=900, cwd=venv, env=clean_environment())
    return venv


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working folder outside the checkout, so `src/` is never on the path."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    return tmp_path


def test_the_wheel_holds_the_model_the_page_and_the_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [name for name in PACKAGED if name not in names]
        assert not missing, f"not in the wheel: {missing}"
        assert all(archive.getinfo(name).file_size > 0 for name in PACKAGED)
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "numbre = numbre.cli:main" in entry_points
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "scripts/"))]
    for requirement in metadata.get_all("Requires-Dist"):
        if requirement.split(";")[0].strip().lower().startswith(NOT_INSTALLED):
            assert 'extra == "train"' in requirement, f"not behind the train extra: {requirement}"


def test_the_installed_package_has_no_torch(venv: Path, outside: Path) -> None:
    python = venv / "bin" / "python"
    listed = json.loads(run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            timeout=120, cwd=outside, env=clean_environment()).stdout)
    names = {package["name"].lower() for package in listed}
    assert "numbre" in names and not names & set(NOT_INSTALLED), sorted(names)
    run([python, "-m", "pip", "check", "--disable-pip-version-check"], timeout=120, cwd=outside,
        env=clean_environment())
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, timeout=60,
                           cwd=outside, env=clean_environment())
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr, probe.stderr
    where = run([python, "-c", "import numbre; print(numbre.__file__)"], timeout=60, cwd=outside,
                env=clean_environment()).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), f"numbre imported from {where}"


def test_the_installed_numbre_serves_the_page_and_reads_digits(venv: Path, wheel: Path,
                                                               outside: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        static = {name: archive.read(f"numbre/web/static/{name}") for name in STATIC_FILES}
    with running_server([str(venv / "bin" / "numbre")], outside) as url:
        check_server(url, static)


def test_the_installed_numbre_reads_a_file_and_opens_the_window(venv: Path, outside: Path) -> None:
    numbre = venv / "bin" / "numbre"
    (outside / "seven.png").write_bytes(strokes_png(SEVEN))
    answer = json.loads(run([numbre, "predict", "seven.png", "--json"], timeout=120, cwd=outside,
                            env=clean_environment()).stdout)
    assert answer["digit"] == 7, answer
    assert "Usage: numbre draw" in run([numbre, "draw", "--help"], timeout=60, cwd=outside,
                                       env=clean_environment()).stdout
    check_draw([str(numbre)], outside)
