"""Which Host the server answers to, and the headers every answer carries.

A server on loopback is still reachable from any web page the user opens: through DNS rebinding,
a name the attacker controls first resolves to their own server, then to 127.0.0.1, and the page
can then read this server's answers as its own origin's. The only thing that tells such a request
apart is its Host header, which names the attacker's domain. So `HostCheck` answers only the hosts
the server is meant to be reached by (for a loopback bind: the bound address, localhost,
127.0.0.1 and [::1]; `numbre serve --allowed-host` for more), and refuses others with a JSON 421.

It also adds `X-Content-Type-Options: nosniff` to every answer (so no browser reads a JSON
answer as a script or a page), and to the Swagger UI pages under /docs a Content-Security-Policy
that lets only this server's files and the page's own inline script run, and no other site frame
them. The inline script's hash is taken from the page as it is sent, so the policy follows
FastAPI's page when it changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DOCS_POLICY = ("default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def allowed_hosts(host: str, given: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The hosts a server bound to `host` answers: the bound address and the loopback names, and the
    names `given` (--allowed-host). With none given on every interface (0.0.0.0, ::), any ("*"), as
    the names it is reached by cannot be known."""
    bare = host.strip("[]").lower()
    if "*" in given or (not given and bare in ("0.0.0.0", "::", "")):
        return ("*",)
    own = [] if bare in ("0.0.0.0", "::", "") else [bare]
    return tuple(dict.fromkeys([*own, *LOOPBACK_NAMES, *(name.strip("[]").lower() for name in given)]))


def host_name(header: str) -> str:
    """'example.org' from 'Example.org:8000', '::1' from '[::1]:8000'; '' when it cannot be one."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else ""
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return ""
    return name.rstrip(".")


class HostCheck:
    """ASGI middleware: refuse requests for hosts not in `allowed` (421 JSON); add nosniff to every
    answer and a Content-Security-Policy to /docs."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ("*",)) -> None:
        self.app = app
        self.allowed = frozenset(name.strip().strip("[]").lower().rstrip(".") for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "*" not in self.allowed:
            given = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
            if host_name(given) not in self.allowed:
                await _refuse_host(send, given, sorted(self.allowed))
                return
        docs = scope["path"].startswith("/docs") and not scope["path"].startswith("/docs-assets")
        start: Message | None = None
        body = bytearray()

        async def with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name.lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
                if docs:  # held until the body is known: the policy names its inline scripts' hashes
                    start = message
                    return
            elif docs and message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(code).digest()).decode()}'"
                                  for code in INLINE_SCRIPT.findall(bytes(body)))
                policy = DOCS_POLICY.format(hashes=hashes).encode()
                headers = [(name, value) for name, value in start["headers"]
                           if name.lower() != b"content-length"]
                headers += [(b"content-length", str(len(body)).encode()),
                            (b"content-security-policy", policy)]
                await send({**start, "headers": headers})
                message = {"type": "http.response.body", "body": bytes(body)}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _refuse_host(send: Send, given: str, allowed: list[str]) -> None:
    shown = given[:100] or "(none)"
    body = json.dumps({"error": f"this server does not answer to the host {shown!r} (it answers to "
                                f"{', '.join(allowed)}); use one of those, or start it with --allowed-host "
                                f"{host_name(given)[:100] or 'NAME'}"}).encode()
    await send({"type": "http.response.start", "status": 421, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
