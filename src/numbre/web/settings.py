"""The limits of a `numbre serve` process, as plain settings.

Kept apart from `numbre.web.limits` (which enforces them with starlette and anyio) so that the
command line can read and check them without the `serve` extra installed: every `numbre`
command imports the CLI's option tables, and `pip install 'numbre[train]'` has no web server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from numbre.errors import NumbreError
from numbre.reading.limits import MAX_PIXELS

ENVIRONMENT_PREFIX = "NUMBRE_SERVE_"


@dataclass(frozen=True)
class ServeLimits:
    """The limits of one server process; the defaults suit a laptop or a small VM."""

    max_bytes: int = 8_000_000  # a phone photo is 2-8 MB; the pad's PNG is a few kB
    max_pixels: int = MAX_PIXELS  # 40 MP: the largest common camera; decoded, 120 MB of RGB
    threads: int = 0  # recognitions at once; 0: one per core
    max_pending: int = 256  # POST requests in the process at once; 256 x ~2 ms is half a second of queue
    max_queue: int = 64  # recognitions waiting for a thread; more get 503 with Retry-After at once, so
    # none waits longer than about 64 recognitions' time over the threads (~0.1 s on 2 cores)
    timeout: float = 10.0  # seconds for a POST request, from its first byte to its answer
    header_timeout: float = 5.0  # seconds from a request's first byte to the end of its headers (slowloris)
    idle_timeout: float = 5.0  # seconds a connection may stay open sending nothing (new, or between requests)
    max_connections: int = 1000  # open connections; past it the longest-idle one is closed to make room
    max_header_bytes: int = 32_768  # request line and headers together; more gets 431 (nginx: 4 x 8 kB)
    max_headers: int = 100  # header lines a request may have; more gets 431 (Python's http.client: 100)
    client_pending: int = 16  # POST requests one client address may have in hand; more gets 429
    client_body_bytes: int = 32_000_000  # upload bytes one client address may have in hand; more gets 429
    body_memory: int = 256_000_000  # upload bytes all clients together may have in hand; more gets 503

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_pending", "max_queue", "max_connections",
                     "max_header_bytes", "max_headers", "client_pending", "client_body_bytes", "body_memory"):
            if getattr(self, name) < 1:
                raise NumbreError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.threads < 0:
            raise NumbreError(f"threads must be 0 (one per core) or more, not {self.threads}")
        for name in ("timeout", "header_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise NumbreError(f"{name} must be more than 0 seconds, not {getattr(self, name)}")

    @property
    def recognition_threads(self) -> int:
        """Threads that run recognitions: `threads`, or the number of cores (`numbre serve --workers`
        counts processes, each with this many threads)."""
        return self.threads or os.cpu_count() or 1

    def environment(self) -> dict[str, str]:
        """These limits as NUMBRE_SERVE_* variables, the way `numbre serve` hands them to its workers."""
        return {ENVIRONMENT_PREFIX + item.name.upper(): str(getattr(self, item.name))
                for item in fields(self)}

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> ServeLimits:
        """The limits named by NUMBRE_SERVE_* variables; the defaults for those not set."""
        environment = os.environ if environment is None else environment
        values: dict[str, Any] = {}
        for item in fields(cls):
            name = ENVIRONMENT_PREFIX + item.name.upper()
            text = environment.get(name, "").strip()
            if not text:
                continue
            kind = float if item.name.endswith("timeout") else int
            try:
                values[item.name] = kind(text)
            except ValueError:
                raise NumbreError(f"{name}={text!r} is not a{'' if kind is float else 'n integer'} "
                                  f"number; unset it or give a number") from None
        return cls(**values)

    def describe(self) -> str:
        """One line for the server's start-up message."""
        return (f"limits: {self.max_bytes:,} bytes and {self.max_pixels / 1e6:g} megapixels an image, "
                f"{self.recognition_threads} recognition thread(s), {self.max_pending} requests at once, "
                f"{self.max_queue} recognitions queued, "
                f"{self.timeout:g} s a request from its first byte "
                f"({self.header_timeout:g} s for its headers), "
                f"{self.max_connections} connections, idle ones closed after {self.idle_timeout:g} s")
