"""What one server process will take on: body size, pixels, work at once, time per request.

A server that reads whatever it is sent must say no early and cheaply, or one client (or a burst)
can make it hold gigabytes, queue without end or answer nobody in time. Each limit here refuses
with the JSON `{"error": ...}` every other refusal uses, and a status a client can act on:

- a body over `max_bytes`: 413, from the declared Content-Length or while the bytes arrive;
- an image over `max_pixels`: 422 from the image decoder, before the pixels are decoded;
- more than `max_pending` POST requests in the process at once (being read, queued or worked
  on): 503 with `Retry-After`, at once, instead of an ever longer queue;
- a POST request not answered within `timeout` seconds: 408 when the client had not finished
  sending it, 504 when the server had not finished its work on it.

Recognitions run on a fixed pool of `threads` threads (`WorkPool`), so however many requests
time out, no more than `threads` recognitions ever run at once in a process; one that has not
started when its request gives up is dropped.

Every limit is a `numbre serve` option with a NUMBRE_SERVE_* environment variable (see its --help);
`ServeLimits.environment` hands them to the worker processes of `numbre serve --workers N`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numbre.web.settings import ENVIRONMENT_PREFIX, ServeLimits  # noqa: F401  (re-exported)
from numbre.web.uploads import MULTIPART_OVERHEAD, too_large

T = TypeVar("T")
RETRY_AFTER = "1"  # seconds; a full queue (256 x ~2 ms) drains in about half a second


class WorkPool:
    """Runs CPU-bound calls on a fixed set of threads and awaits them from the event loop.

    A thread pool of its own rather than anyio's: when a request is cancelled (its time is up),
    anyio lets the thread run on but frees its slot, so timed-out work could pile up beyond the
    limit. Here a call that is still queued is dropped, and one that runs keeps its thread.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="numbre-recognize")

    async def run(self, function: Callable[..., T], *arguments: Any) -> T:
        return await asyncio.wrap_future(self.executor.submit(function, *arguments))


class Admission:
    """How many POST requests the process has in hand, against `limits.max_pending`.

    Shared by the middleware, which counts, and the readiness endpoint, which reports.
    """

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.pending = 0

    @property
    def full(self) -> bool:
        return self.pending >= self.limits.max_pending

    def busy_message(self) -> str:
        return (f"the server is busy: {self.pending} requests are in hand, the most it takes at once; "
                f"retry in {RETRY_AFTER} s")


class RequestLimits:
    """ASGI middleware: admission, body size and time limits for POST requests, as JSON refusals.

    GET requests (the page, its files, health, readiness, docs) are cheap and pass untouched, so a
    busy server still answers its health checks. A plain ASGI class, not Starlette's
    BaseHTTPMiddleware, which would cost a task and a copy of the body per request.
    """

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission
        self.max_body = admission.limits.max_bytes + MULTIPART_OVERHEAD  # the largest body any endpoint takes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        admission, limits = self.admission, self.admission.limits
        if admission.full:
            await refuse(send, 503, admission.busy_message(), {"Retry-After": RETRY_AFTER})
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            error = too_large(declared, limits.max_bytes)
            await refuse(send, error.status, error.message)
            return
        admission.pending += 1
        received, body_done, answered, cut_off = 0, False, False, False

        async def counted_receive() -> Message:
            nonlocal received, body_done, answered, cut_off
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body:  # a chunked body, or one longer than it said
                    if not answered:
                        error = too_large(received, limits.max_bytes)
                        await refuse(send, error.status, error.message)
                    answered = cut_off = True
                    return {"type": "http.disconnect"}  # the app stops reading; its own answer is dropped
            return message

        async def noted_send(message: Message) -> None:
            nonlocal answered
            if cut_off:
                return
            answered = True
            await send(message)

        try:
            with anyio.fail_after(limits.timeout):
                await self.app(scope, counted_receive, noted_send)
        except TimeoutError:
            if answered:  # the answer was on its way: nothing better can be said now
                return
            if body_done:
                await refuse(send, 504, f"the request took longer than the {limits.timeout:g} s limit; "
                                        "send a smaller image, or retry when the server is less busy")
            else:
                await refuse(send, 408, f"the request body did not arrive within the {limits.timeout:g} s "
                                        "limit; send the whole image at once")
        finally:
            admission.pending -= 1


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer `{"error": message}` with `status`, straight on the ASGI connection."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
