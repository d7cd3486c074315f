"""Whether a server process should be sent work: its model loaded and read known digits right.

A load balancer or an orchestrator asks two questions of a replica. Liveness (`/api/health`): does
the process answer at all (if not, restart it). Readiness (`/api/ready`): should it get requests
now. A replica is ready only once its model has loaded and passed a self-test, reading the ten
plain digits of numbre's stroke font, drawn large and black on white as the drawing page sends them:
a model file that loads but reads wrongly (the wrong file, an untrained or damaged one, a broken
preprocessing) stays out of rotation, and a rolling update with it stalls instead of serving wrong
answers. The shipped model reads all ten at 0.99 or more. The same reads warm the model up, so the
first client's request is not the slow one.

`Starting` lets a process answer before its model is loaded (`numbre serve --listen-first`): health
says it lives, readiness says 503 until the app is built and its self-test passed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numbre import __version__
from numbre.data.drawn import glyph
from numbre.errors import NumbreError
from numbre.web.limits import RETRY_AFTER, refuse

if TYPE_CHECKING:
    from numbre.reading.recognize import Recognizer

log = logging.getLogger("numbre.web")
CANVAS = 280  # the drawing page's pad, in pixels


@dataclass(frozen=True)
class SelfTest:
    """How the model did on the built-in digits."""

    passed: bool
    seconds: float  # the time the reads took, the first of which pays the model's warm-up
    problem: str = ""  # why it did not pass: a one-line message for /api/ready and the log


def built_in_digits() -> tuple[np.ndarray, list[int]]:
    """The ten plain digits of numbre's stroke font (`numbre.data.drawn.glyph`) as (10, 280, 280) uint8
    canvases, black ink on white, and their labels 0-9."""
    canvases = [255 - np.asarray(Image.fromarray(glyph(digit)).resize((CANVAS, CANVAS), Image.BILINEAR))
                for digit in range(10)]
    return np.stack(canvases), list(range(10))


def self_test(recognizer: Recognizer) -> SelfTest:
    """Read the built-in digits with `recognizer`; it passes when each is read as its label.

    A model whose classes are not the digits 0-9 (its file's `class_names`) is only run, not judged.
    """
    images, labels = built_in_digits()
    started = time.perf_counter()
    try:
        predictions = recognizer.predict_batch(list(images))
    except NumbreError as error:
        return SelfTest(False, time.perf_counter() - started, f"the model failed its self-test: {error}")
    seconds = time.perf_counter() - started
    names = [str(name) for name in recognizer.meta.get("class_names", [str(digit) for digit in range(10)])]
    if names[:10] != [str(digit) for digit in range(10)]:
        return SelfTest(True, seconds)
    wrong = [f"{label} as {'no digit (' + str(p.reason) + ')' if p.digit is None else p.digit}"
             for label, p in zip(labels, predictions, strict=True) if p.digit != label]
    if wrong:
        return SelfTest(False, seconds, f"the model failed its self-test: it read the built-in digit "
                                        f"{', '.join(wrong)}; serve a model that reads digits (--model), "
                                        "then restart")
    return SelfTest(True, seconds)


class Starting:
    """An ASGI app that answers while `build` makes the real app on a thread, then passes everything on.

    Until then: `GET /api/health` is 200 (the process lives; model "loading"), every other request
    503 JSON with Retry-After, `/api/ready` included. If `build` fails, its one-line error is what
    those 503s say from then on, and `failed` (when given, or set later) is told it, to stop the server.
    """

    def __init__(self, build: Callable[[], ASGIApp], failed: Callable[[str], None] | None = None) -> None:
        self.app: ASGIApp | None = None
        self.problem = ""
        self._build = build
        self.failed = failed
        self.thread = threading.Thread(target=self._run, name="numbre-load", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.app = self._build()
            return
        except NumbreError as error:
            self.problem = str(error)
        except Exception:
            log.exception("the app failed to start")
            self.problem = "the server failed to start; its log has the details"
        if self.failed is not None:
            self.failed(self.problem)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":  # the app built later has no start-up or shut-down work
            await _lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"] == "/api/health" and scope["method"] == "GET":
            body = json.dumps({"status": "ok", "version": __version__, "model": "loading"}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif self.problem:
            await refuse(send, 503, f"the server could not start: {self.problem}")
        else:
            await refuse(send, 503, f"the server is starting: its model is loading; retry in {RETRY_AFTER} s",
                         {"Retry-After": RETRY_AFTER})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
