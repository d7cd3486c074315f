"""Overload: past `max_queue` recognitions waiting for a thread, a request gets 503 with Retry-After at
once instead of a place at the end of an ever longer queue; when the load drops, requests are served
again. The recognition thread is held by a gate the test opens, so the queue's state is known exactly
without timing anything."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from numbre.web.limits import ServeLimits
from numbre.web.settings import ServeLimits as Settings
from webhelpers import ONE, PNG, live_server, strokes_png


class GatedRecognizer:
    """The shipped Recognizer, whose `predict` waits for `gate` first: a recognition that holds its
    thread as long as the test wants. `predict_batch` (the self-test at start) is not held."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def __getattr__(self, name: str):  # meta, predict_batch (the self-test at start), the contest's needs
        return getattr(self.recognizer, name)

    def predict(self, image: np.ndarray):
        self.started.release()
        assert self.gate.wait(60), "the test did not open the gate"
        return self.recognizer.predict(image)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def metric(client: httpx.Client, name: str) -> float:
    line = next(line for line in client.get("/metrics").text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_past_the_queue_limit_requests_get_503_with_retry_after_at_once_and_recover(recognizer) -> None:
    gated = GatedRecognizer(recognizer)
    app = create_app(gated, limits=ServeLimits(threads=1, max_queue=2))
    png = strokes_png(ONE)
    with (live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client,
          ThreadPoolExecutor(3) as senders):
        def post() -> httpx.Response:
            with httpx.Client(base_url=url, timeout=60) as own:
                return own.post("/api/predict", content=png, headers=PNG)

        running = senders.submit(post)
        assert gated.started.acquire(timeout=30)  # the one thread is taken
        queued = [senders.submit(post), senders.submit(post)]
        for _ in range(500):
            if metric(client, "numbre_recognition_queue_depth") == 2:
                break
            threading.Event().wait(0.02)
        assert metric(client, "numbre_recognition_queue_depth") == 2
        assert metric(client, "numbre_recognition_queue_limit") == 2

        for _ in range(3):  # answered while the queue is still full: nothing waited for a thread
            refused = client.post("/api/predict", content=png, headers=PNG)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.json() == {"error": "the server is busy: 2 recognitions wait for a thread, the "
                                               "most it queues; retry in 1 s"}
        assert not running.done() and not any(future.done() for future in queued)
        assert client.get("/api/health").status_code == 200  # liveness is not load

        gated.gate.set()
        for future in [running, *queued]:
            answer = future.result(timeout=60)
            assert answer.status_code == 200 and answer.json()["digit"] == 1
        for _ in range(3):  # the load has gone: served again at once
            assert client.post("/api/predict", content=png, headers=PNG).json()["digit"] == 1
        assert metric(client, "numbre_recognition_queue_depth") == 0
        text = client.get("/metrics").text
        assert 'numbre_http_requests_total{method="POST",route="/api/predict",status="503"} 3.0' in text
        assert 'numbre_http_requests_total{method="POST",route="/api/predict",status="200"} 6.0' in text


def test_the_queue_limit_is_a_setting_an_environment_variable_and_a_serve_option() -> None:
    from click.testing import CliRunner

    from numbre.cli.serve_cmd import serve

    assert Settings().max_queue == 64
    assert Settings.from_environment({"NUMBRE_SERVE_MAX_QUEUE": "5"}).max_queue == 5
    assert Settings(max_queue=5).environment()["NUMBRE_SERVE_MAX_QUEUE"] == "5"  # handed to --workers N
    assert "5 recognitions queued" in Settings(max_queue=5).describe()
    with pytest.raises(Exception, match="max_queue must be at least 1, not 0"):
        Settings(max_queue=0)
    help_text = CliRunner().invoke(serve, ["--help"], terminal_width=200).output
    assert "--max-queue" in help_text and "Recognitions that may wait for a thread" in help_text


def test_a_server_gives_its_recognition_threads_short_turns_at_the_interpreter(recognizer) -> None:
    """The event loop refusing requests must not starve the recognition threads of the GIL: the app
    shortens the interpreter's switch interval from Python's 5 ms (see GIL_SWITCH_SECONDS)."""
    import sys

    from numbre.web.limits import GIL_SWITCH_SECONDS

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        create_app(recognizer)
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_SECONDS)
        assert GIL_SWITCH_SECONDS <= 0.001
    finally:
        sys.setswitchinterval(before)
