"""GET /metrics: Prometheus's text format, counted from real requests over loopback HTTP.

Each check reads the metrics before and after a known set of requests and asserts the exact
change, so the figures are the requests' own and not whatever ran before.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from numbre.web.limits import ServeLimits
from webhelpers import ONE, PNG, live_server, strokes_png

LIMIT = 50_000  # bytes an upload may have in these apps


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as {(name, labels): value}, after checking the answer's format."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4"), answer.headers
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_images_rejections_and_latency_move_by_the_requests_made(recognizer: Recognizer) -> None:
    app = create_app(recognizer, limits=ServeLimits(max_bytes=LIMIT, threads=2, max_queue=9))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        before = scrape(client)
        for _ in range(3):
            assert client.post("/api/predict", content=strokes_png(ONE), headers=PNG).json()["digit"] == 1
        blank = client.post("/api/predict", content=strokes_png([]), headers=PNG).json()
        assert blank["digit"] is None and blank["reason"] == "empty"
        assert client.post("/api/read", content=strokes_png(ONE), headers=PNG).json()["number"] == "1"
        assert client.post("/api/predict", content=b"x" * (LIMIT + 10_000), headers=PNG).status_code == 413
        assert client.post("/api/predict", content=b"not an image", headers=PNG).status_code == 415
        assert client.get("/no/such/page/12345").status_code == 404
        assert client.get("/api/health").status_code == 200
        after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "numbre_http_requests_total"
    assert delta(requests, route="/api/predict", method="POST", status="200") == 4
    assert delta(requests, route="/api/read", method="POST", status="200") == 1
    assert delta(requests, route="/api/predict", method="POST", status="413") == 1  # refused before the app
    assert delta(requests, route="/api/predict", method="POST", status="415") == 1
    assert delta(requests, route="other", method="GET", status="404") == 1  # no label per unknown path
    assert delta(requests, route="/api/health", method="GET", status="200") == 1
    assert delta(requests, route="/metrics", method="GET", status="200") == 1  # the first scrape
    assert not any(("/no/such" in dict(labels).get("route", "")) for _, labels in after)

    # images answered by the model: the four predictions and the reading; refusals are not images read
    assert delta("numbre_images_recognised_total", route="/api/predict") == 4
    assert delta("numbre_images_recognised_total", route="/api/read") == 1
    assert delta("numbre_rejections_total", route="/api/predict", reason="empty") == 1
    assert sum(v for (name, _), v in after.items() if name == "numbre_rejections_total") == 1

    latency = "numbre_http_request_duration_seconds"
    assert delta(f"{latency}_count", route="/api/predict") == 6
    assert delta(f"{latency}_bucket", route="/api/predict", le="+Inf") == 6
    assert 0 < delta(f"{latency}_sum", route="/api/predict") < 60
    assert delta("numbre_recognition_queue_wait_seconds_count") == 5  # the recognitions that ran
    assert value(after, "numbre_recognition_queue_depth") == 0
    assert value(after, "numbre_recognition_queue_limit") == 9
    assert value(after, "numbre_recognition_threads") == 2
    assert value(after, "numbre_http_requests_in_flight") == 1  # the scrape itself
    assert value(after, "numbre_ready") == 1
    assert value(after, "numbre_build_info", version=value_label(after, "numbre_build_info", "version"),
                 model="numbre-robust") == 1


def value_label(samples: dict, name: str, label: str) -> str:
    return next(dict(labels)[label] for metric, labels in samples if metric == name)


def test_two_apps_in_one_process_count_apart(recognizer: Recognizer) -> None:
    """Each app has its own registry: no clash on the names, and one app's requests are not the other's."""
    first, second = create_app(recognizer), create_app(recognizer)
    with (live_server(first) as url_one, live_server(second) as url_two,
          httpx.Client(base_url=url_one, timeout=30) as one,
          httpx.Client(base_url=url_two, timeout=30) as two):
        for _ in range(2):
            assert one.post("/api/predict", content=strokes_png(ONE), headers=PNG).status_code == 200
        assert value(scrape(one), "numbre_images_recognised_total", route="/api/predict") == 2
        assert value(scrape(two), "numbre_images_recognised_total", route="/api/predict") == 0
