"""What one server process has done and has in hand, for Prometheus to scrape at `GET /metrics`.

A fleet of `numbre serve` replicas behind a load balancer is watched from outside: request rates
and errors by route, latency, how many images were read and how many got no digit (and why),
and whether a replica is near its limits (requests in flight, recognitions queued, readiness).

Each app has its own `CollectorRegistry`, not prometheus-client's global one: several apps in one
process (tests, or an app rebuilt) would otherwise clash on the metric names, and each app's
figures are its own. With `numbre serve --workers N` every worker process counts for itself and
a scrape is answered by whichever worker takes it; to see a whole host, run one process per
replica (the container does) and let Prometheus sum the replicas.

Routes are labelled by their path template (`/api/predict`, `/static`), never by the raw path, and
paths no route matches share the label `other`, so a scanner cannot grow the label set without end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numbre import __version__
from numbre.web.limits import WorkPool

# Seconds. A recognition takes about 2 ms; the tail reaches the 10 s default time limit.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "other"


class ServerMetrics:
    """The metrics of one app, in a registry of their own; `exposition()` is what Prometheus reads."""

    def __init__(self, pool: WorkPool, *, ready: Callable[[], bool], model: str) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("numbre_http_requests", "HTTP requests answered, by route template, method "
                                "and status code.", ["route", "method", "status"], registry=registry)
        self.latency = Histogram("numbre_http_request_duration_seconds", "Time from a request reaching the "
                                 "app to the end of its answer, by route template.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("numbre_http_requests_in_flight", "HTTP requests being handled now.",
                               registry=registry)
        self.images = Counter("numbre_images_recognised", "Images the model answered (one per upload to "
                              "/api/predict or /api/read), by route.", ["route"], registry=registry)
        self.rejections = Counter("numbre_rejections", "Answers that name no digit (predict) or no number "
                                  "(read), by route and reason: empty, several digits, not a digit.",
                                  ["route", "reason"], registry=registry)
        self.queue_wait = Histogram("numbre_recognition_queue_wait_seconds", "Time a recognition waited "
                                    "for a thread.", buckets=WAIT_BUCKETS, registry=registry)
        queue = Gauge("numbre_recognition_queue_depth", "Recognitions waiting for a thread now.",
                      registry=registry)
        queue.set_function(lambda: pool.queued)
        bound = Gauge("numbre_recognition_queue_limit", "The most recognitions that may wait; past it "
                      "requests get 503 with Retry-After (--max-queue).", registry=registry)
        bound.set(pool.max_queue if pool.max_queue is not None else float("inf"))
        threads = Gauge("numbre_recognition_threads", "Threads that run recognitions.", registry=registry)
        threads.set(pool.threads)
        up = Gauge("numbre_ready", "1 while /api/ready answers 200: the model passed its self-test and the "
                   "process is not at its limits; else 0.", registry=registry)
        up.set_function(lambda: float(ready()))
        info = Gauge("numbre_build_info", "Always 1; the labels name numbre's version and the served model.",
                     ["version", "model"], registry=registry)
        info.labels(__version__, model).set(1)
        pool.waited = self.queue_wait.observe

    def answered(self, route: str, answer: dict[str, Any]) -> None:
        """Count one image answered on `route`, and its reason when it named no digit (or number)."""
        self.images.labels(route).inc()
        if answer.get("reason") is not None:
            self.rejections.labels(route, answer["reason"]).inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics and their content type, in the format the scraper's Accept header asks for:
        OpenMetrics when it offers it (Prometheus does), else the plain text format 0.0.4."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by route and status, times it, and keeps the number
    in flight. Outermost but for nothing, so refusals by the other middleware are counted too."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics, route = self.metrics, route_template(self.router, scope)
        status = 500  # what the client gets if the app raises before answering

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, noted_send)
        finally:
            metrics.in_flight.dec()
            metrics.latency.labels(route).observe(time.perf_counter() - started)
            metrics.requests.labels(route, scope["method"], str(status)).inc()


def route_template(router: Router, scope: Scope) -> str:
    """The path template of the route `scope` goes to (also for a wrong method), or `other`."""
    partial = None
    for route in router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", UNMATCHED)
        if match == Match.PARTIAL and partial is None:
            partial = getattr(route, "path", UNMATCHED)
    return partial or UNMATCHED
