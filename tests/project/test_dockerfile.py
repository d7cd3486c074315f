"""The Dockerfile against the project's real files and options. No container tool runs on the test
machines, so the image is not built here; these checks catch the drift that would break it: a file the
build copies that has gone, the lock file not used or not hash-checked, a port or probe path that is
not the server's, an option `numbre serve` no longer has, a root user, a build context missing a file."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import click

from numbre.cli.serve_cmd import serve

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def serve_option(name: str) -> click.Option:
    return next(param for param in serve.params if isinstance(param, click.Option) and name in param.opts)


def test_every_file_the_build_copies_exists_and_is_in_the_build_context() -> None:
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = []
    for name, arguments in instructions():
        if name == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            copied += sources
    assert {"pyproject.toml", "README.md", "LICENSE", "src", "requirements/serve.lock"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) or source.startswith(pattern.rstrip("/") + "/")
                       for pattern in ignored), (source, ignored)
    assert {".venv", ".git", "runs", "tests"} <= set(ignored)  # kept out of the context: large or not served


def test_dependencies_come_from_the_lock_with_hashes_and_the_package_without_its_own() -> None:
    runs = [arguments for name, arguments in instructions() if name == "RUN"]
    assert any("pip install --require-hashes -r /tmp/serve.lock" in run for run in runs), runs
    assert any(re.search(r"pip install --no-deps /tmp/wheels/\*\.whl", run) for run in runs), runs
    assert any("pip wheel" in run and "--no-deps" in run for run in runs), runs
    assert "numbre data fetch --web-runtime --quiet" in runs  # the page's runtime, in the image
    lock = (ROOT / "requirements" / "serve.lock").read_text()
    assert "CPython 3.11" in lock.splitlines()[0]
    bases = [arguments.split()[0] for name, arguments in instructions() if name == "FROM"]
    assert bases and all(base.startswith("python:3.11-") for base in bases), bases  # the lock's Python
    assert "torch==" not in lock and "\ntorch" not in lock  # the server image is torch-free
    assert re.search(r"^prometheus-client==\S+ \\$", lock, re.MULTILINE)  # /metrics needs it


def test_port_probes_and_command_match_numbre_serve() -> None:
    steps = instructions()
    port = serve_option("--port").default
    assert [arguments for name, arguments in steps if name == "EXPOSE"] == [str(port)]
    health = next(arguments for name, arguments in steps if name == "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/api/health" in health
    command = json.loads(next(arguments for name, arguments in steps if name == "CMD"))
    assert command[:2] == ["numbre", "serve"]
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable from outside the container
    for word in command[2:]:
        if word.startswith("--"):
            serve_option(word)  # an option numbre serve has (StopIteration if not)
    assert "--listen-first" in command and "--workers" not in command  # one process, probed while loading
    assert serve_option("--listen-first").is_flag


def test_the_server_does_not_run_as_root() -> None:
    users = [arguments for name, arguments in instructions() if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    creates = next(arguments for name, arguments in instructions()
                   if name == "RUN" and "useradd" in arguments)
    assert shlex.split(creates)[-1] == users[-1]
