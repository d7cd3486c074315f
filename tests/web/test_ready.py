"""GET /api/ready: 503 until the model has loaded and read the built-in digits right, then 200;
/api/health stays a liveness check that answers throughout."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from modelhelpers import untrained_model_file
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from numbre.web.ready import Starting, built_in_digits, self_test
from webhelpers import ONE, PNG, live_server, strokes_png


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    """A real model file that loads and runs but was never trained: it misreads digits."""
    from numbre.model.export import export_onnx

    folder = tmp_path_factory.mktemp("untrained")
    onnx = export_onnx(untrained_model_file("numbre-fast", folder), folder / "untrained.onnx")
    return Recognizer.load(onnx)


def test_the_shipped_model_passes_its_self_test_and_the_server_is_ready(recognizer: Recognizer) -> None:
    images, labels = built_in_digits()
    assert images.shape == (10, 280, 280) and labels == list(range(10))
    assert [prediction.digit for prediction in recognizer.predict_batch(list(images))] == labels
    result = self_test(recognizer)
    assert result.passed and result.problem == "" and result.seconds > 0
    with live_server(create_app(recognizer)) as url:
        ready = httpx.get(f"{url}/api/ready", timeout=30)
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text


def test_a_model_that_misreads_is_never_ready_but_lives(untrained: Recognizer) -> None:
    result = self_test(untrained)
    assert not result.passed
    assert result.problem.startswith("the model failed its self-test: it read the built-in digit "), result
    assert "serve a model that reads digits (--model)" in result.problem
    with live_server(create_app(untrained)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):  # it does not become ready by being asked again
            ready = client.get("/api/ready")
            assert ready.status_code == 503 and ready.json() == {"error": result.problem}
            assert "retry-after" not in ready.headers  # waiting does not fix a wrong model
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json()["model"] == "numbre-fast"
        assert "numbre_ready 0.0" in client.get("/metrics").text.splitlines()
        assert client.post("/api/predict", content=strokes_png(ONE), headers=PNG).status_code == 200


def test_ready_is_503_while_the_model_loads_and_200_after(recognizer: Recognizer) -> None:
    loading = threading.Event()
    built = []

    def build():
        loading.wait(60)  # the model "loads" until the test lets it
        app = create_app(Recognizer.load())
        built.append(app)
        return app

    starting = Starting(build)
    with live_server(starting) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            not_yet = client.get("/api/ready")
            assert not_yet.status_code == 503 and not_yet.headers["retry-after"] == "1"
            assert not_yet.json() == {"error": "the server is starting: its model is loading; retry in 1 s"}
            health = client.get("/api/health")
            assert health.status_code == 200 and health.json()["model"] == "loading"
            refused = client.post("/api/predict", content=strokes_png(ONE), headers=PNG)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        loading.set()
        starting.thread.join(60)
        assert built and starting.app is built[0]
        ready = client.get("/api/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        assert client.get("/api/health").json()["model"] == "numbre-robust"
        assert client.post("/api/predict", content=strokes_png(ONE), headers=PNG).json()["digit"] == 1


def test_a_model_that_fails_to_load_says_why_and_stops_the_server(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    told = []
    starting = Starting(lambda: create_app(model=broken), failed=told.append)
    starting.thread.join(60)
    assert starting.app is None and told == [starting.problem]
    assert str(broken) in starting.problem and "not an ONNX file" in starting.problem
    with live_server(starting) as url:
        ready = httpx.get(f"{url}/api/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["error"] == f"the server could not start: {told[0]}"


def test_serve_listen_first_is_for_one_process() -> None:
    from numbre.cli import NumbreGroup
    from numbre.cli.serve_cmd import serve

    group = NumbreGroup(commands={"serve": serve})  # as in `numbre serve`: NumbreError -> one line, exit 2
    result = CliRunner().invoke(group, ["serve", "--listen-first", "--workers", "2", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "--listen-first serves one process" in result.output


def test_serve_listen_first_with_a_model_that_fails_to_load_stops_with_its_error(tmp_path: Path) -> None:
    """The port opened first, so the error comes after uvicorn's start-up lines: still one line of ours and
    status 2, as without --listen-first."""
    import subprocess
    import sys

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    finished = subprocess.run([sys.executable, "-m", "numbre", "serve", "--port", "0", "--listen-first",
                               "--model", str(broken)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2, finished.stderr
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith(f"numbre: error: {broken} is not an ONNX file"), finished.stderr
    assert "Traceback" not in finished.stderr
