"""Run a shipped `numbre` (a wheel's console script, the standalone executable) as a user would.

The wheel and standalone tests check the same promises, that `numbre serve` answers with the shipped model
and the page's files and that `numbre draw` opens a window, so the checks live here once. Everything runs
as a separate process from a folder outside the checkout, with PYTHONPATH cleared, so nothing can be
imported from `src/` by accident: a file missing from the package shows up as a failure here.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image

from webhelpers import ONE, strokes_png

SEVEN = [[(70, 50), (210, 50), (120, 240)]]
STATIC_FILES = ("app.js", "style.css")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python back at the checkout or this venv."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    environment.update(PYTHONDONTWRITEBYTECODE="1", PYGAME_HIDE_SUPPORT_PROMPT="1", **extra)
    return environment


def start_serve(numbre: list[str], folder: Path, timeout: float = 90) -> tuple[subprocess.Popen, str]:
    """`numbre serve --port 0` started from `folder` and answering: the process and its base URL. The
    caller stops it; its output is in folder/serve.log.

    Port 0 lets the kernel choose a free port while binding, so there is no race with other tests; the
    port is read from uvicorn's "running on" line. Output goes to a file, never a pipe that could fill up.
    """
    log_path = folder / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([*numbre, "serve", "--port", "0", "--no-access-log"], cwd=folder,
                                  env=clean_environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while (match := re.search(r"Uvicorn running on (http://\S+) ", log := log_path.read_text())) is None:
            assert server.poll() is None, f"numbre serve exited with {server.returncode}:\n{log}"
            assert time.monotonic() < deadline, f"numbre serve did not start in {timeout} s:\n{log}"
            time.sleep(0.1)
        url = match[1]
        while True:  # the line comes as the socket opens; the first request proves it is answered
            try:
                response = httpx.get(f"{url}/api/health", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"no answer from {url}:\n{log_path.read_text()}"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    except BaseException:
        server.kill()
        server.wait(timeout=10)
        raise
    return server, url


@contextmanager
def running_server(numbre: list[str], folder: Path, timeout: float = 90) -> Iterator[str]:
    """`start_serve`, yielding the base URL; the server is stopped afterwards."""
    server, url = start_serve(numbre, folder, timeout)
    try:
        yield url
    finally:
        stop_process(server)


def stop_process(server: subprocess.Popen) -> None:
    """SIGTERM, as a service manager stops the server; SIGKILL if it has not gone within 20 s."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def check_server(url: str, static: dict[str, bytes] | None = None) -> None:
    """The API reads drawn digits with the shipped model, and the page and its files are served.

    `static`, when given, maps file names to the bytes that should be served (the packaged copies).
    """
    with httpx.Client(base_url=url, timeout=30) as client:
        for strokes, digit in ((ONE, 1), (SEVEN, 7)):
            response = client.post("/api/predict", content=strokes_png(strokes),
                                   headers={"Content-Type": "image/png"})
            assert response.status_code == 200, response.text
            assert response.json()["digit"] == digit, response.json()
        response = client.post("/api/predict", files={"file": ("one.png", strokes_png(ONE), "image/png")})
        assert response.status_code == 200 and response.json()["digit"] == 1, response.text
        model = client.get("/api/model")
        assert model.status_code == 200 and model.json(), model.text
        assert client.get("/api/ready").json()["status"] == "ready"
        docs = client.get("/docs")
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', docs.text)  # Swagger UI's files, served offline
        assert docs.status_code == 200 and len(assets) >= 2, docs.text
        for asset in assets:
            assert client.get(asset).status_code == 200, f"{asset}, which /docs loads, is not served"
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text
        for name in STATIC_FILES:
            assert f"/static/{name}" in page.text, f"the page no longer loads /static/{name}"
            served = client.get(f"/static/{name}")
            assert served.status_code == 200, f"/static/{name}: {served.status_code}"
            assert served.content.strip(), f"/static/{name} is empty"
            if static is not None:
                assert served.content == static[name], f"/static/{name} is not the packaged file"


def check_draw(numbre: list[str], folder: Path, timeout: float = 90) -> None:
    """`numbre draw` opens its window on SDL's dummy driver, draws three frames and saves the last."""
    shot = folder / "draw.png"
    command = [*numbre, "draw", "--quit-after", "3", "--size", "300", "--screenshot", str(shot)]
    result = subprocess.run(command, cwd=folder, env=clean_environment(SDL_VIDEODRIVER="dummy"),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"first frame shown \d+\.\d+ s after start", result.stderr), result.stderr
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width > image.height > 0
