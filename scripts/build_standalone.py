"""Build `numbre` as one self-contained executable file: `numbre serve`, `numbre draw` and the rest.

    pip install -e '.[standalone]'
    python scripts/build_standalone.py            # -> dist/numbre (Linux/macOS) or dist/numbre.exe

Someone who only wants the drawing window or the local server should not have to install Python,
ONNX Runtime and SDL. PyInstaller's one-file mode packs the interpreter, numbre from this checkout's
`src/` (not whatever copy is installed), its native libraries, the shipped model and the page's files
into one executable; on each start it unpacks into a temporary folder, which costs start-up time but
keeps "copy one file" true.

The build runs in the current environment, which may hold torch (a development install does): torch,
matplotlib and the test tools are excluded by name, so the file stays the size of a reading install.
`numbre train`, `numbre export` and `numbre evaluate` of a model file are in it but say that they need the
Python package (sys.frozen tells numbre.cli.options.require_torch it runs as this one file).
The options live here rather than in a .spec file so that each one sits next to its reason, and so the
smoke test (tests/project/test_standalone.py) builds with exactly what the README tells people to run.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
NAME = "numbre"

# The package data that pyproject.toml ships in the wheel; the executable needs the same files at the same
# places inside its unpacked folder, because numbre finds them next to its modules (Path(__file__).parent).
PACKAGE_DATA = {"pretrained": ("*.safetensors", "*.json", "*.onnx"), "web/static": ("*",),
                "web/contest_set": ("*",)}

# Importable here but not needed to read digits, serve or draw. Left in, they would add gigabytes (torch)
# or tens of megabytes: matplotlib; the test tools; sympy and mpmath, which only onnxruntime's quantisation
# and transformer tools use (`numbre export --int8` needs torch anyway); werkzeug and cryptography, which
# only an optional debug path of another package reaches; trio, an anyio backend uvicorn never selects.
EXCLUDED = ("torch", "torchvision", "matplotlib", "mpl_toolkits", "tkinter", "IPython", "pytest", "_pytest",
            "hypothesis", "playwright", "locust", "gevent", "sympy", "mpmath", "onnxruntime.quantization",
            "onnxruntime.transformers", "onnxruntime.tools", "werkzeug", "cryptography", "trio",
            "pygame.tests", "pygame.examples", "numpy.tests", "scipy.tests")

# uvicorn picks its event loop, HTTP parser, websocket protocol and logging config by module name at run
# time ("auto" looks for uvloop and httptools), so static analysis alone misses them.
COLLECTED_SUBMODULES = ("uvicorn",)

# The entry point. freeze_support() lets `numbre serve --workers N` work: uvicorn starts its workers with
# multiprocessing's spawn, which re-runs this executable and must be routed to the worker, not the CLI.
ENTRY = '''\
import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from numbre.cli import main

    main()
'''


def data_arguments() -> list[str]:
    """--add-data for each shipped data file, mirroring pyproject's package-data globs."""
    files = [(path, folder) for folder, patterns in PACKAGE_DATA.items()
             for path in sorted((SOURCE / NAME / folder).iterdir())
             if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)]
    if not any(path.suffix == ".onnx" for path, _ in files):  # without it the file would build, then fail
        sys.exit(f"build_standalone: no shipped model in {SOURCE / NAME / 'pretrained'}")
    return [part for path, folder in files for part in ("--add-data", f"{path}{os.pathsep}{NAME}/{folder}")]


def build(dist: Path, work: Path) -> Path:
    """Run PyInstaller; returns the path of the executable it wrote."""
    if importlib.util.find_spec("PyInstaller") is None:
        sys.exit("build_standalone: PyInstaller is missing: pip install -e '.[standalone]'")
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        entry = Path(scratch) / "numbre_standalone.py"  # not numbre.py: that would shadow the package
        entry.write_text(ENTRY)
        command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--onefile", "--name", NAME,
                   "--distpath", str(dist), "--workpath", str(work / "pyinstaller"), "--specpath", scratch,
                   "--paths", str(SOURCE), "--log-level", "WARN", *data_arguments()]
        for module in COLLECTED_SUBMODULES:
            command += ["--collect-submodules", module]
        command += ["--collect-data", "fastapi_offline"]  # Swagger UI's files: /docs is served offline
        for module in EXCLUDED:
            command += ["--exclude-module", module]
        quiet = {**os.environ, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}  # pygame greets on each import otherwise
        subprocess.run([*command, str(entry)], check=True, cwd=ROOT, env=quiet)
    executable = dist / (NAME + (".exe" if sys.platform == "win32" else ""))
    if not executable.is_file():
        sys.exit(f"build_standalone: PyInstaller finished but {executable} is not there")
    return executable


def main() -> None:
    parser = argparse.ArgumentParser(description="Build dist/numbre: one executable, numbre serve and draw.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="folder for the executable")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "standalone",
                        help="PyInstaller's working folder, kept to make rebuilds faster")
    options = parser.parse_args()
    started = time.monotonic()
    executable = build(options.dist.resolve(), options.work.resolve())
    size, seconds = executable.stat().st_size, time.monotonic() - started
    print(f"{executable}: {size / 2**20:.1f} MiB ({size:,} bytes), built in {seconds:.0f} s")


if __name__ == "__main__":
    main()
