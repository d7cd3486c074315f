"""What one server process will take on: body size, pixels, work at once, time per request.

A server that reads whatever it is sent must say no early and cheaply, or one client (or a burst)
can make it hold gigabytes, queue without end or answer nobody in time. Each limit here refuses
with the JSON `{"error": ...}` every other refusal uses, and a status a client can act on:

- a body over `max_bytes`: 413, from the declared Content-Length or while the bytes arrive;
- an image over `max_pixels`: 422 from the image decoder, before the pixels are decoded;
- more than `max_pending` POST requests in the process at once (being read, queued or worked
  on), or more than `body_memory` bytes of uploads held by all of them: 503 with `Retry-After`,
  at once, instead of an ever longer queue;
- a recognition that would wait behind `max_queue` others for a thread: 503 with `Retry-After`
  at once (`QueueFull`), so that the wait of those taken is bounded and an overloaded process
  sheds the excess cheaply instead of answering everything late;
- more than `client_pending` requests or `client_body_bytes` bytes of uploads in hand from one
  client address: 429 with `Retry-After`, so one client cannot take the whole budget;
- a POST request not answered within `timeout` seconds of its first byte (the time
  `numbre.web.connections` notes; after its headers when served without it): 408 when the client
  had not finished sending it, 504 when the server had not finished its work on it.

Recognitions run on a fixed pool of `threads` threads (`WorkPool`), so however many requests
time out, no more than `threads` recognitions ever run at once in a process; one that has not
started when its request gives up is dropped. One that had started cannot be stopped from outside
its thread, so it keeps that thread until it ends: the pool counts such abandoned work, and while
it holds every thread the process is not ready (/api/ready 503) and new POST requests get 503 at
once instead of queueing behind it into their own timeouts.

When the uploads in hand go back to none after holding many megabytes, the C heap is trimmed
(`malloc_trim`), so glibc gives the freed memory back to the system instead of keeping it.

Every limit is a `numbre serve` option with a NUMBRE_SERVE_* environment variable (see its --help);
`ServeLimits.environment` hands them to the worker processes of `numbre serve --workers N`.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numbre.web.settings import ENVIRONMENT_PREFIX, ServeLimits  # noqa: F401  (re-exported)
from numbre.web.uploads import MULTIPART_OVERHEAD, too_large

T = TypeVar("T")
FIRST_BYTE = "numbre.first_byte"  # scope["extensions"] key: event-loop time of the request's first byte
PEER = "numbre.peer"  # scope["extensions"] key: the TCP peer's address, whatever proxy headers say
RETRY_AFTER = "1"  # seconds; a full queue (256 x ~2 ms) drains in about half a second


# How often the interpreter makes a thread holding the GIL hand it over, in seconds (Python's default is
# 0.005). The event loop parses requests, and under overload refuses them, while the recognition
# threads give the GIL up around every call into numpy, Pillow and ONNX Runtime and then wait to take
# it back; with 5 ms slices each wait can last a whole slice. Measured with benchmarks/web_load.py
# (one process, --max-queue 8, 32 clients that do not wait for Retry-After, 2026-12-06, 2-core Xeon):
# answered 59-68 requests/s with 5 ms, 141-146 with 0.5 ms, 204-218 with 0.2 ms; the longest wait for
# a thread up to 0.5 s, 0.1-0.25 s and 0.1 s; unloaded and at 8 clients no different within the noise.
GIL_SWITCH_SECONDS = 0.0005


def share_the_interpreter() -> None:
    """Shorter GIL slices for this process, so recognition threads are not starved by the event loop."""
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


class QueueFull(Exception):
    """`max_queue` recognitions already wait for a thread: the request gets 503 with Retry-After."""


class WorkPool:
    """Runs CPU-bound calls on a fixed set of threads and awaits them from the event loop.

    A thread pool of its own rather than anyio's: when a request is cancelled (its time is up),
    anyio lets the thread run on but frees its slot, so timed-out work could pile up beyond the
    limit. Here a call that is still queued is dropped, and one that runs keeps its thread and is
    counted in `abandoned` until it ends, so that readiness and admission can see it.
    """

    def __init__(self, threads: int, max_queue: int | None = None) -> None:
        self.threads = threads
        self.max_queue = max_queue  # calls that may wait for a thread; None: no bound
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="numbre-recognize")
        self.abandoned = 0  # calls still running whose requests gave up (time limit, client gone)
        self.queued = 0  # calls submitted that no thread has started yet
        self.waited: Callable[[float], None] | None = None  # told each call's seconds in the queue (metrics)
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """Every thread is held by work nobody waits for: new work would only queue into its timeout."""
        return self.abandoned >= self.threads

    async def run(self, function: Callable[..., T], *arguments: Any) -> T:
        """`function(*arguments)` on a pool thread; QueueFull at once when `max_queue` calls wait already."""
        with self._lock:
            if self.max_queue is not None and self.queued >= self.max_queue:
                raise QueueFull(f"the server is busy: {self.queued} recognitions wait for a thread, the most "
                                f"it queues; retry in {RETRY_AFTER} s")
            self.queued += 1
        submitted = time.perf_counter()

        def started() -> T:
            with self._lock:
                self.queued -= 1
            if self.waited is not None:
                self.waited(time.perf_counter() - submitted)
            return function(*arguments)

        future = self.executor.submit(started)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancel():  # dropped: it had not started
                with self._lock:
                    self.queued -= 1
            if not future.done():
                with self._lock:
                    self.abandoned += 1
                future.add_done_callback(self._released)
            raise

    def _released(self, future: Future) -> None:
        with self._lock:
            self.abandoned -= 1


class Admission:
    """What the process has in hand: POST requests and upload bytes, in all and per client address,
    against the limits; and whether its recognition threads are all held by abandoned work.

    Shared by the middleware, which counts, and the readiness endpoint, which reports.
    """

    def __init__(self, limits: ServeLimits, pool: WorkPool | None = None) -> None:
        self.limits = limits
        self.pool = pool
        self.pending = 0
        self.body_bytes = 0  # upload bytes reserved by the requests in hand
        self.client_pending: Counter[str] = Counter()
        self.client_bytes: Counter[str] = Counter()
        self.peak_bytes = 0  # the most held since the heap was last trimmed

    @property
    def full(self) -> bool:
        return self.pending >= self.limits.max_pending or self.held

    @property
    def held(self) -> bool:
        return self.pool is not None and self.pool.held

    def retry_after(self) -> str:
        """Seconds to wait: abandoned work ends within about the time limit; a full queue drains at once."""
        return str(max(1, round(self.limits.timeout))) if self.held else RETRY_AFTER

    def busy_message(self) -> str:
        if self.held:
            return (f"the server is busy: all {self.pool.threads} recognition thread(s) are still working on "
                    f"requests that ran past the {self.limits.timeout:g} s limit; retry in "
                    f"{self.retry_after()} s")
        return (f"the server is busy: {self.pending} requests are in hand, the most it takes at once; "
                f"retry in {RETRY_AFTER} s")

    def reserve(self, client: str, size: int) -> tuple[int, str] | None:
        """Hold `size` more upload bytes for `client`; or (status, message) when that is over a limit."""
        limits = self.limits
        if self.client_bytes[client] + size > limits.client_body_bytes:
            return 429, (f"this client has {self.client_bytes[client] + size:,} bytes of uploads in hand, "
                         f"over the {limits.client_body_bytes:,} byte limit for one client; wait for the "
                         f"answers first, retry in {RETRY_AFTER} s")
        if self.body_bytes + size > limits.body_memory:
            return 503, (f"the server is busy: {self.body_bytes + size:,} bytes of uploads would be in hand, "
                         f"over its {limits.body_memory:,} byte limit; retry in {RETRY_AFTER} s")
        self.client_bytes[client] += size
        self.body_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.body_bytes)
        return None

    def release(self, client: str, size: int) -> None:
        self.client_bytes[client] -= size
        if self.client_bytes[client] <= 0:
            del self.client_bytes[client]
        self.body_bytes -= size
        if self.body_bytes == 0 and self.pending == 0 and self.peak_bytes >= TRIM_AFTER:
            self.peak_bytes = 0
            trim_heap()


TRIM_AFTER = 16_000_000  # bytes of uploads held at once after which the heap is trimmed when they are gone


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on other C libraries (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def trim_heap() -> None:
    """Give freed heap memory back to the system. An upload refused by the decoder can stay reachable
    from its exception's traceback cycle until the cyclic collector runs, which an idle server may not
    do for a long time; and glibc keeps freed blocks of every arena (one per thread that allocated)
    for reuse. After 250 uploads of 8 MB that was over 500 MB; so collect, then trim."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


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
        started = scope.get("extensions", {}).get(FIRST_BYTE)
        left = limits.timeout
        if started is not None:  # counted from the request's first byte, not the end of its headers
            left -= asyncio.get_running_loop().time() - started
        if left <= 0:  # its time ran out while its headers arrived: nothing is started for it
            await refuse(send, 408, f"the request did not arrive within the {limits.timeout:g} s limit, "
                                    "counted from its first byte; send it all at once")
            return
        if admission.full:
            await refuse(send, 503, admission.busy_message(), {"Retry-After": admission.retry_after()})
            return
        client = _client(scope)
        if admission.client_pending[client] >= limits.client_pending:
            await refuse(send, 429, f"this client has {admission.client_pending[client]} requests in hand, "
                                    "the most one client may have; wait for their answers, retry in "
                                    f"{RETRY_AFTER} s", {"Retry-After": RETRY_AFTER})
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            error = too_large(declared, limits.max_bytes)
            await refuse(send, error.status, error.message)
            return
        reserved = declared or 0
        if (refusal := admission.reserve(client, reserved)) is not None:
            await refuse(send, *refusal, {"Retry-After": RETRY_AFTER})
            return
        admission.pending += 1
        admission.client_pending[client] += 1
        received, body_done, answered, cut_off = 0, False, False, False

        async def counted_receive() -> Message:
            nonlocal received, body_done, answered, cut_off, reserved
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                refusal = None
                if received > self.max_body:  # a chunked body, or one longer than it said
                    error = too_large(received, limits.max_bytes)
                    refusal = error.status, error.message, None
                elif received > reserved:  # a chunked body: held bytes are reserved as they come
                    if (over := admission.reserve(client, received - reserved)) is None:
                        reserved = received
                    else:
                        refusal = *over, {"Retry-After": RETRY_AFTER}
                if refusal is not None:
                    if not answered:
                        await refuse(send, *refusal)
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
            with anyio.fail_after(left):
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
            admission.client_pending[client] -= 1
            if admission.client_pending[client] <= 0:
                del admission.client_pending[client]
            admission.release(client, reserved)


def _client(scope: Scope) -> str:
    """The TCP peer's address (not one a proxy header names, which a client can make up)."""
    peer = scope.get("extensions", {}).get(PEER)
    if peer:
        return peer
    client = scope.get("client")
    return client[0] if client else ""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer `{"error": message}` with `status`, straight on the ASGI connection."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(b"x-content-type-options", b"nosniff")]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
