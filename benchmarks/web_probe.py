"""The outside probe's cases against a real `numbre serve`, with figures: prints the table quoted in
docs/reliability.md ("Outside probe: the server").

    python benchmarks/web_probe.py                 # every case, about two minutes
    python benchmarks/web_probe.py idle flood      # some of them

Each case starts its own server (`python -m numbre serve --port 0`, limits from NUMBRE_SERVE_*
variables) and talks to it over raw sockets with asyncio, so a thousand connections cost the
client little. Memory is the server process's RSS (psutil), read every 50 ms while a case runs.
Extra loopback addresses (127.0.0.2, ...) stand for separate clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
from PIL import Image, ImageDraw

MB = 2**20


class Server:
    """`numbre serve` with the given NUMBRE_SERVE_* settings, and its RSS sampled every 50 ms."""

    def __init__(self, **settings: object) -> None:
        self.folder = tempfile.mkdtemp(prefix="numbre-probe-")
        environment = {**os.environ, **{f"NUMBRE_SERVE_{name.upper()}": str(value)
                                        for name, value in settings.items()}}
        self.log = Path(self.folder) / "serve.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "numbre", "serve", "--port", "0",
                                             "--no-access-log"], cwd=self.folder, env=environment,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while (match := re.search(r"Uvicorn running on http://([\d.]+):(\d+)", self.log.read_text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.1)
        self.host, self.port = match[1], int(match[2])
        self.psutil = psutil.Process(self.process.pid)
        self.samples: list[int] = []
        self.sampling = True
        threading.Thread(target=self._sample, daemon=True).start()
        time.sleep(1)

    def _sample(self) -> None:
        while self.sampling:
            try:
                self.samples.append(self.psutil.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def rss(self) -> float:
        return self.psutil.memory_info().rss / MB

    def peak(self) -> float:
        return max(self.samples) / MB

    def stop(self) -> None:
        self.sampling = False
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def connect(server: Server, source: str | None = None):
    return await asyncio.open_connection(server.host, server.port,
                                         local_addr=(source, 0) if source else None, limit=2**20)


async def answer(reader: asyncio.StreamReader, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one answer; (0, {}, b'') when the server closed without one."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return int(lines[0].split()[1]), headers, body


async def request(server: Server, raw: bytes, source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(server, source)
    writer.write(raw)
    result = await answer(reader)
    writer.close()
    return result


def get(path: str, host: str = "127.0.0.1") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def post(body: bytes, path: str = "/api/predict") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def timed(coroutine) -> tuple[float, tuple[int, dict[str, str], bytes]]:
    started = time.monotonic()
    result = await coroutine
    return time.monotonic() - started, result


def drawn_one(side: int = 280) -> bytes:
    image = Image.new("L", (side, side), 255)
    stroke = [(side * 0.5, side * 0.15), (side * 0.48, side * 0.85)]
    ImageDraw.Draw(image).line(stroke, fill=0, width=side // 15)
    buffer = io.BytesIO()
    (image if side <= 280 else image.convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


ROWS: list[tuple[str, str]] = []


def row(case: str, result: str) -> None:
    ROWS.append((case, result))
    print(f"| {case} | {result} |", flush=True)


# --- the cases -------------------------------------------------------------------------------------

async def idle() -> None:
    server = Server()
    try:
        held = [await connect(server) for _ in range(1000)]
        await asyncio.sleep(1.5)  # silent for over a second: connections that make room when needed
        seconds, (status, _, _) = await timed(request(server, get("/api/health")))
        ready, _, _ = await request(server, get("/api/ready"))
        work, _, body = await request(server, post(drawn_one()))
        row("1,000 silent connections (limit 1,000), then health, ready, a drawn 1",
            f"health {status} in {seconds * 1000:.0f} ms, ready {ready}, predict {work} "
            f"(\"{json.loads(body).get('digit')}\")")
        started = time.monotonic()
        closed = await asyncio.gather(*(asyncio.wait_for(reader.read(), 30) for reader, _ in held),
                                      return_exceptions=True)
        row("the same 1,000 connections, left silent",
            f"{sum(item == b'' for item in closed)} closed by the server, the last "
            f"{time.monotonic() - started + 1.5:.1f} s after opening (idle timeout 5 s)")
    finally:
        server.stop()


async def slowloris() -> None:
    server = Server()
    try:
        async def slow() -> tuple[float, int]:
            reader, writer = await connect(server)
            started = time.monotonic()
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            read = asyncio.ensure_future(answer(reader, timeout=40))
            while not read.done() and time.monotonic() - started < 30:
                try:
                    writer.write(b"a")
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(1)
            status = (await read)[0] if read.done() or time.monotonic() - started < 30 else 0
            writer.close()
            return time.monotonic() - started, status

        clients = asyncio.gather(*(slow() for _ in range(50)))
        await asyncio.sleep(2)
        seconds, (health, _, _) = await timed(request(server, get("/api/health")))
        results = await clients
        statuses = Counter(status for _, status in results)
        row("50 slowloris connections, a header byte a second for up to 30 s",
            f"{dict(statuses)}; dropped after {statistics.median(s for s, _ in results):.1f} s "
            f"(median; header timeout 5 s); health meanwhile {health} in {seconds * 1000:.0f} ms")
    finally:
        server.stop()


async def flood() -> None:
    server = Server()
    try:
        async def one_flood() -> tuple[int, int]:
            """A header streamed until the server answers (or 64 MB): (status, bytes sent by then)."""
            reader, writer = await connect(server)
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Flood: ")
            reply = asyncio.ensure_future(answer(reader))
            sent, chunk = 0, b"a" * 65536
            with contextlib.suppress(ConnectionError):
                while sent < 64 * MB and not reply.done():
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
            status = (await reply)[0]
            writer.close()
            return status, sent

        base = server.rss()
        status, sent = await one_flood()
        row("one 64 MB header, streamed", f"{status} once {sent / MB:.1f} MB had been sent (limit 32 kB)")
        floods = asyncio.gather(*(one_flood() for _ in range(4)))
        await asyncio.sleep(0.05)
        seconds, (health, _, _) = await timed(request(server, get("/api/health")))
        results = await floods
        row("four 64 MB headers at once",
            f"{[status for status, _ in results]}; health meanwhile {health} in {seconds * 1000:.0f} ms; "
            f"RSS {base:.0f} MB before, peak {server.peak():.0f} MB")
        many = "".join(f"X-{index}: {index}\r\n" for index in range(100_000))
        status, _, body = await request(server, f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n"
                                        .encode())
        row("100,000 headers", f"{status} ({json.loads(body)['error'][:40]}...)" if body else str(status))
    finally:
        server.stop()


async def held_uploads(sources: list[str], per_source: int) -> tuple[Counter, float, float, float, float]:
    """Uploads of 7.9 MB, each held one byte short of its end; then all finished. (statuses of the
    refused, RSS before, peak while held, RSS after all answers, ...)"""
    server = Server()
    try:
        base = server.rss()
        body = b"\x89PNG\r\n\x1a\n" + bytes(7_900_000 - 8)
        head = (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        connections = []
        for source in sources:
            for _ in range(per_source):
                reader, writer = await connect(server, source)
                writer.write(head + body[:MB])  # the rest once the refusals are counted
                connections.append((reader, writer))
        await asyncio.sleep(3)
        held_peak = server.peak()
        statuses: Counter = Counter()
        waiting = []
        for reader, writer in connections:
            if reader.at_eof() or reader._buffer:  # answered already: refused
                statuses[(await answer(reader))[0]] += 1
            else:
                waiting.append((reader, writer))
        for _, writer in waiting:
            with contextlib.suppress(ConnectionError):
                writer.write(body[MB:])
        for reader, _ in waiting:
            statuses[(await answer(reader))[0]] += 1
        await asyncio.sleep(2)
        return statuses, base, max(held_peak, server.peak()), server.rss(), len(waiting)
    finally:
        server.stop()


async def memory() -> None:
    statuses, base, peak, after, taken = await held_uploads(["127.0.0.1"], 250)
    row("one client, 250 uploads of 7.9 MB, each stopped after 1 MB, then finished",
        f"{taken} taken, others {dict(statuses)}; RSS {base:.0f} MB before, peak {peak:.0f} MB, "
        f"{after:.0f} MB after")
    sources = [f"127.0.0.{index}" for index in range(1, 64)]
    statuses, base, peak, after, taken = await held_uploads(sources, 4)
    row("63 clients, 4 uploads of 7.9 MB each (252), stopped after 1 MB, then finished",
        f"{taken} taken (256 MB budget), answers {dict(statuses)}; RSS {base:.0f} MB before, "
        f"peak {peak:.0f} MB, {after:.0f} MB after")


async def overload() -> None:
    server = Server()
    try:
        png = drawn_one()
        sources = [f"127.0.{index // 250}.{index % 250 + 1}" for index in range(1500)]

        async def client(source: str) -> tuple[float, int]:
            started = time.monotonic()
            try:
                status = (await request(server, post(png), source))[0]
            except OSError:
                status = -1
            return time.monotonic() - started, status

        clients = asyncio.gather(*(client(source) for source in sources))
        await asyncio.sleep(1)
        seconds, (health, _, _) = await timed(request(server, get("/api/health")))
        results = await clients
        times = sorted(seconds for seconds, _ in results)
        row("1,500 clients POST a drawn 1 at once (timeout 10 s)",
            f"{dict(Counter(status for _, status in results))}; slowest answer {times[-1]:.1f} s, median "
            f"{statistics.median(times):.1f} s; health meanwhile {health} in {seconds:.1f} s")
    finally:
        server.stop()


async def abandoned() -> None:
    server = Server(threads=1, timeout=0.15)
    try:
        big = drawn_one(6000)
        status, _, _ = await request(server, post(big))
        ready, headers, _ = await request(server, get("/api/ready"))
        work, _, _ = await request(server, post(drawn_one()))
        await asyncio.sleep(3)
        later, _, _ = await request(server, get("/api/ready"))
        row("work past the time limit holds the only recognition thread (36 MP, limit 0.15 s)",
            f"{status}; then ready {ready} (Retry-After {headers.get('retry-after')}), a new POST {work}; "
            f"3 s later ready {later}")
    finally:
        server.stop()


async def hosts() -> None:
    server = Server()
    try:
        foreign, _, _ = await request(server, get("/api/health", "rebound.example"))
        local, headers, _ = await request(server, get("/api/health", f"localhost:{server.port}"))
        _, docs_headers, _ = await request(server, get("/docs"))
        policy = docs_headers.get("content-security-policy", "")
        row("Host: rebound.example / localhost; response headers",
            f"{foreign} / {local}; server header {headers.get('server', 'absent')}, "
            f"nosniff {headers.get('x-content-type-options')}, /docs CSP "
            f"{'with' if 'frame-ancestors' in policy else 'without'} "
            "frame-ancestors")
    finally:
        server.stop()


CASES: dict[str, Callable] = {"idle": idle, "slowloris": slowloris, "flood": flood, "memory": memory,
                              "overload": overload, "abandoned": abandoned, "hosts": hosts}


def main() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    chosen = sys.argv[1:] or list(CASES)
    print("| case | what happened |\n|---|---|")
    for name in chosen:
        asyncio.run(CASES[name]())


if __name__ == "__main__":
    main()
