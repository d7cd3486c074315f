"""What `numbre serve` does with a connection before a request reaches the app.

uvicorn guards little there. Its keep-alive timer only starts after a first answer, so a
connection that never sends a byte, or sends its headers one byte every few seconds (slowloris),
is held for ever. httptools buffers a header of any size and any number of headers. And its
`limit_concurrency` counts those idle connections too, then answers everyone, health checks
included, with a plain-text 503 without Retry-After. ASGI middleware cannot help: it runs only
once the headers are complete. So `GuardedProtocol` subclasses uvicorn's httptools protocol
(the one `uvicorn[standard]` installs) and adds, per connection:

- an idle timeout: a connection that sends nothing for `idle_timeout` seconds, new or between
  requests, is closed (uvicorn's own keep-alive timer, armed from the start too);
- a header timeout: the request line and headers must arrive within `header_timeout` seconds of
  the request's first byte, or the answer is 408;
- a head size and count limit: more than `max_header_bytes` bytes or `max_headers` lines get
  431, counted before the bytes reach the parser, so a 64 MB header is never buffered;
- room at the connection limit: past `max_connections`, the connection idle the longest (or,
  failing that, the one slowest to send its headers) is closed to make room, and only when every
  connection has a request in hand are new requests refused, with a JSON 503 and Retry-After;
  /api/health and /api/ready are answered even then;
- the time of each request's first byte, in the ASGI scope (`FIRST_BYTE`), so the request's
  time limit (`numbre.web.limits`) counts from there, not from the end of its headers.

Every refusal here is the JSON `{"error": ...}` the app uses, and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

try:  # Unix: how many bytes wait unread on a socket
    from fcntl import ioctl
    from termios import FIONREAD
except ImportError:  # Windows: every quiet connection counts as idle
    ioctl = None  # type: ignore[assignment]
    FIONREAD = 0

from numbre.web.limits import FIRST_BYTE, PEER, RETRY_AFTER
from numbre.web.settings import ServeLimits

ALWAYS_ANSWERED = frozenset({"/api/health", "/api/ready"})
IDLE_GRACE = 1.0  # seconds a connection must have been idle before it is closed to make room for another
LINGER_SECONDS = 1.0  # after a refusal, bytes still arriving are read and dropped this long before closing

REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large",
           503: b"Service Unavailable"}


class LingeringClose:
    """The transport as a request's response cycle sees it: closing it while the request's body is
    still arriving (a refusal before the upload was read) lingers instead (`GuardedProtocol._linger`)."""

    def __init__(self, protocol: GuardedProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._protocol.in_body and not self._transport.is_closing():
            self._protocol._linger()
        else:
            self._transport.close()


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request head that breaks a limit."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with idle and header timeouts, head limits and room at the
    connection limit (see the module's text)."""

    limits: ClassVar[ServeLimits | None] = None  # set by `numbre serve`; its workers read the environment

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        cls = type(self)
        if cls.limits is None:
            cls.limits = ServeLimits.from_environment()
        self.guard = cls.limits
        self.timeout_keep_alive = self.guard.idle_timeout
        self.limit_concurrency = None  # uvicorn's plain-text 503 is replaced by `_admit`
        self.inner_app = self.app
        self.app = self._admit
        self.in_head = False  # between a request's first byte and the end of its headers
        self.in_body = False  # between the end of its headers and the end of its body
        self.head_bytes = 0
        self.head_lines = 0
        self.head_started = 0.0
        self.head_timer: asyncio.TimerHandle | None = None
        self.last_active = self.loop.time()
        self.refusing = False

    # --- connections -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The idle timer runs from the start, not only after a first answer as in uvicorn.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                            self.timeout_keep_alive_handler)
        if len(self.connections) > self.guard.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _idle(self) -> bool:
        """No request in hand: nothing sent yet, or between requests."""
        return not self.in_head and not self.in_body and (self.cycle is None or self.cycle.response_complete)

    def _unread(self) -> int:
        """Bytes the kernel holds for this connection that the event loop has not read yet: a busy loop
        can leave a request there for seconds, and its connection then only looks idle."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None or ioctl is None:
            return 0
        try:
            return struct.unpack("i", ioctl(sock.fileno(), FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def _make_room(self) -> None:
        """Close the connection idle the longest, else the one slowest with its headers. One accepted a
        moment ago counts as busy, not idle: its request may be waiting to be read, and it is better
        answered 503 than closed without a word."""
        others = [connection for connection in self.connections
                  if connection is not self and isinstance(connection, GuardedProtocol)
                  and connection.transport is not None and not connection.transport.is_closing()]
        now = self.loop.time()
        idle = [connection for connection in others if connection._idle()
                and now - connection.last_active >= IDLE_GRACE and not connection._unread()]
        excess = len(others) + 1 - self.guard.max_connections
        for connection in sorted(idle, key=lambda connection: connection.last_active)[:excess]:
            connection.transport.close()
        excess -= len(idle)
        if excess <= 0:
            return
        heads = [connection for connection in others
                 if connection.in_head and now - connection.head_started >= IDLE_GRACE]
        for connection in sorted(heads, key=lambda connection: connection.head_started)[:excess]:
            connection._refuse(408, "the request's headers did not arrive in time and the server needs the "
                                    "room; send the whole request at once")

    # --- the request head ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self.last_active = self.loop.time()
        if self.refusing:  # lingering after a refusal: dropped unread (see `_refuse`)
            return
        if self.parser is None:
            return
        while data:
            if self.in_body:
                piece, data = data, b""
            else:  # a head, or the start of one: count its bytes before the parser keeps them
                room = self.guard.max_header_bytes - self.head_bytes
                if room <= 0:
                    self._refuse(431, f"the request's line and headers are over the "
                                      f"{self.guard.max_header_bytes:,} byte limit; send fewer or "
                                      "shorter headers")
                    return
                piece, data = data[:room], data[room:]
            counting = not self.in_body
            try:
                self.parser.feed_data(piece)
            except HeadRefused:
                return
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError as error:
                if isinstance(error.__context__, HeadRefused) or self.refusing:
                    return
                self.logger.warning("Invalid HTTP request received.")
                self._refuse(400, "the request is not valid HTTP/1.1")
                return
            if counting and self.in_head:
                self.head_bytes += len(piece)
            if self.refusing or self.parser is None:
                return

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head, self.in_body = True, False
        self.head_bytes = self.head_lines = 0
        self.head_started = self.loop.time()
        peer = self.client[0] if self.client else ""
        self.scope["extensions"] = {FIRST_BYTE: self.head_started, PEER: peer}
        self._stop_head_timer()
        self.head_timer = self.loop.call_later(self.guard.header_timeout, self._head_too_slow)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_lines += 1
        if self.head_lines > self.guard.max_headers:
            self._refuse(431, f"the request has over {self.guard.max_headers} header lines, the most "
                              "this server takes; send fewer headers")
            raise HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head, self.in_body = False, True
        self._stop_head_timer()
        super().on_headers_complete()
        if self.cycle is not None:  # an answer given before the body is all read closes by lingering too
            self.cycle.transport = LingeringClose(self)

    def on_message_complete(self) -> None:
        self.in_body = False
        super().on_message_complete()

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if self.in_head:
            self._refuse(408, f"the request's headers did not arrive within {self.guard.header_timeout:g} s "
                              "of its first byte; send the whole request at once")

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer `{"error": message}` straight on the transport and close: the head was never whole,
        so no app runs for it.

        Closing a socket with unread bytes makes the kernel send a reset, which makes the client's
        kernel drop the answer before the client reads it (a client still sending its flood never
        sees the 431). So, like nginx's lingering close, the sending side is shut after the answer
        and what still arrives is read and dropped for up to LINGER_SECONDS, then the socket closes.
        """
        self.refusing = True
        self._stop_head_timer()
        if self.transport is None or self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b"Error")),
                 b"content-type: application/json", b"content-length: %d" % len(body),
                 b"x-content-type-options: nosniff", b"connection: close"]
        lines += [b"%s: %s" % (name.lower().encode(), value.encode())
                  for name, value in (headers or {}).items()]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self._linger()

    def _linger(self) -> None:
        """Shut the sending side, drop what still arrives for LINGER_SECONDS, then close."""
        self.refusing = True
        transport = self.transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        with contextlib.suppress(RuntimeError):  # reading may have been paused by flow control
            transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    # --- admission at the connection limit ----------------------------------------------------

    async def _admit(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, unless every connection has a request in hand; health and readiness always."""
        limit = self.guard.max_connections
        crowded = len(self.tasks) > limit or (len(self.connections) > limit and sum(
            1 for connection in self.connections
            if connection.transport is not None and not connection.transport.is_closing()) > limit)
        if crowded and scope.get("type") == "http" and scope.get("path") not in ALWAYS_ANSWERED:
            body = json.dumps({"error": f"the server has {len(self.connections)} connections open, over its "
                                        f"limit of {limit}; retry in {RETRY_AFTER} s"}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", RETRY_AFTER.encode()), (b"x-content-type-options", b"nosniff"),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.inner_app(scope, receive, send)
