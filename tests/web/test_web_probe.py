"""The outside probe's cases against `numbre serve`, as a process, over raw sockets where HTTP clients
would be too polite: connections that send nothing, headers sent a byte at a time or without end,
one client with many large uploads in hand, a request whose time runs out before its headers end,
recognition that outlives its request, foreign Host headers. Each server gets its limits from the
NUMBRE_SERVE_* environment, as `numbre serve` reads them. Then the supply chain: dependency floors,
the lock file CI installs and the licence in the wheel.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from packaging.requirements import Requirement
from packaging.version import Version
from pytest import MonkeyPatch

from apphelpers import start_serve, stop_process
from webhelpers import ONE, PNG, strokes_png

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def numbre_serve(monkeypatch: MonkeyPatch, folder: Path, **settings: object) -> Iterator[tuple[str, int]]:
    """`numbre serve` with NUMBRE_SERVE_<NAME> = value for each setting; yields (base URL, pid)."""
    with monkeypatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(f"NUMBRE_SERVE_{name.upper()}", str(value))
        server, url = start_serve([sys.executable, "-m", "numbre"], folder, timeout=60)
    try:
        yield url, server.pid
    finally:
        stop_process(server)


def connect(url: str, timeout: float = 20) -> socket.socket:
    address = urlsplit(url)
    return socket.create_connection((address.hostname, address.port), timeout=timeout)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one answer; the body by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` (after any answer) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def get(url: str, path: str, **options) -> httpx.Response:
    return httpx.get(f"{url}{path}", timeout=20, **options)


# --- idle connections and slowloris --------------------------------------------------------------

def test_idle_connections_cannot_lock_out_health_or_work(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    """300 connections that send nothing, against a limit of 100: health, readiness and a recognition
    are still answered (the longest-idle connections make room), and an idle connection is closed by
    the server after the idle timeout. Before: everything got uvicorn's plain-text 503."""
    with numbre_serve(monkeypatch, tmp_path, max_connections=100, idle_timeout=4) as (url, _), \
            ExitStack() as stack:
        silent = [stack.enter_context(connect(url)) for _ in range(300)]
        time.sleep(1.5)  # all accepted, and silent for longer than the 1 s after which they make room
        health = get(url, "/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert get(url, "/api/ready").status_code == 200
        answer = httpx.post(f"{url}/api/predict", content=strokes_png(ONE), headers=PNG, timeout=20)
        assert answer.status_code == 200 and answer.json()["digit"] == 1, answer.text
        assert closed_by_server(silent[-1], within=15), "an idle connection was left open"


def test_slowloris_headers_are_answered_408_and_closed(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    """50 connections each sending a header a byte every 0.2 s: each gets a JSON 408 once the header
    timeout (1 s) has passed since its first byte, and is closed; health answers meanwhile. Before:
    never dropped."""
    with numbre_serve(monkeypatch, tmp_path, header_timeout=1) as (url, _), ExitStack() as stack:
        slow = [stack.enter_context(connect(url)) for _ in range(50)]
        for sock in slow:
            sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\nX-Slow: ".encode())
        started = time.monotonic()
        answered: dict[int, tuple[int, dict[str, str], bytes]] = {}
        while len(answered) < len(slow) and time.monotonic() - started < 20:
            for index, sock in enumerate(slow):
                if index in answered:
                    continue
                with contextlib.suppress(OSError):  # closed by the server: its answer waits to be read
                    sock.sendall(b"a")
                sock.settimeout(0.001)
                try:
                    peek = sock.recv(1, socket.MSG_PEEK)
                except (TimeoutError, BlockingIOError):
                    continue
                except ConnectionResetError:
                    peek = b""
                sock.settimeout(5)
                answered[index] = read_answer(sock) if peek else (0, {}, b"")
            assert get(url, "/api/health").status_code == 200
            time.sleep(0.2)
        assert len(answered) == 50, f"{50 - len(answered)} slow connections were still open after 20 s"
        for status, headers, body in answered.values():
            assert status == 408 and headers["content-type"] == "application/json", (status, headers, body)
            assert "headers did not arrive within 1 s" in json.loads(body)["error"]
        assert all(closed_by_server(sock, within=5) for sock in slow)


# --- header floods ---------------------------------------------------------------------------------

def test_header_floods_are_431_before_they_are_buffered(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    """A header streamed without end (up to 64 MB), and 1,000 small headers: both 431 JSON, the first
    after at most the 32 kB limit has been read. Four floods at once leave the server's memory where
    it was and health answering. Before: both answered 200, and the floods cost hundreds of MB."""
    with numbre_serve(monkeypatch, tmp_path) as (url, pid):
        server = psutil.Process(pid)
        before = server.memory_info().rss
        host = urlsplit(url).netloc

        def flood() -> tuple[int, dict[str, str], bytes, int]:
            with connect(url) as sock:
                sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nX-Flood: ".encode())
                sent, chunk = 0, b"a" * 65536
                with contextlib.suppress(OSError):  # until the answer comes (or the server closes)
                    while sent < 64 * 2**20 and not select.select([sock], [], [], 0)[0]:
                        sock.sendall(chunk)
                        sent += len(chunk)
                return (*read_answer(sock), sent)

        results: list = []
        floods = [threading.Thread(target=lambda: results.append(flood())) for _ in range(4)]
        for thread in floods:
            thread.start()
        health = get(url, "/api/health")
        for thread in floods:
            thread.join(timeout=60)
        assert health.status_code == 200
        assert len(results) == 4
        for status, headers, body, sent in results:
            assert status == 431 and headers["content-type"] == "application/json", (status, body)
            assert "over the 32,768 byte limit" in json.loads(body)["error"]
            assert sent < 64 * 2**20, "the whole flood was sent before an answer came"
        grown = (server.memory_info().rss - before) / 2**20
        assert grown < 50, f"the server grew by {grown:.0f} MB during four header floods"

        with connect(url) as sock:
            many = "".join(f"X-Header-{index}: {index}\r\n" for index in range(1000))
            sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n{many}\r\n".encode())
            status, headers, body = read_answer(sock)
        assert status == 431 and "over 100 header lines" in json.loads(body)["error"], body


# --- memory per client -------------------------------------------------------------------------------

def test_one_client_cannot_hold_more_than_its_share_of_uploads(monkeypatch: MonkeyPatch, tmp_path: Path,
                                                                ) -> None:
    """40 uploads of 7.9 MB from one address, each stopped after 1 MB: no more than the client's byte
    limit (32 MB, 4 uploads) are taken; the rest get 429 JSON with Retry-After at once, and the
    server holds a few MB more, not 40 bodies' worth. Before: all 40 were taken in, and 250 such
    requests held 2.4 GB."""
    size = 7_900_000
    with numbre_serve(monkeypatch, tmp_path) as (url, pid), ExitStack() as stack:
        server = psutil.Process(pid)
        before = server.memory_info().rss
        host = urlsplit(url).netloc
        uploads = []
        for _ in range(40):
            sock = stack.enter_context(connect(url, timeout=10))
            sock.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
                         f"Content-Length: {size}\r\n\r\n".encode() + b"\x89PNG\r\n\x1a\n" + bytes(2**20))
            uploads.append(sock)
        refused = []
        for sock in uploads[4:]:
            status, headers, body = read_answer(sock)
            refused.append(status)
            assert status == 429 and headers["retry-after"] == "1", (status, body)
            assert "byte limit for one client" in json.loads(body)["error"]
        assert len(refused) == 36
        ready = get(url, "/api/ready").json()
        assert ready["pending"] == 4, ready
        grown = (server.memory_info().rss - before) / 2**20
        assert grown < 100, f"the server grew by {grown:.0f} MB holding four uploads"


# --- the time limit from the first byte ----------------------------------------------------------------

def test_the_time_limit_counts_from_the_first_byte(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    """A POST whose headers take 2.5 s against a 1 s limit (and a 30 s header timeout): 408 at once
    when its headers end. Before: the timer started after the headers, so it was answered 200."""
    with numbre_serve(monkeypatch, tmp_path, timeout=1, header_timeout=30) as (url, _):
        png = strokes_png(ONE)
        with connect(url) as sock:
            head = (f"POST /api/predict HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
                    f"Content-Type: image/png\r\nContent-Length: {len(png)}\r\n").encode()
            for start in range(0, len(head), len(head) // 5 + 1):
                sock.sendall(head[start:start + len(head) // 5 + 1])
                time.sleep(0.5)
            sock.sendall(b"\r\n" + png)
            status, headers, body = read_answer(sock)
        assert status == 408 and headers["content-type"] == "application/json", (status, body)
        assert "within the 1 s limit" in json.loads(body)["error"]
        answer = httpx.post(f"{url}/api/predict", content=png, headers=PNG, timeout=20)
        assert answer.status_code == 200 and answer.json()["digit"] == 1


# --- recognition that outlives its request ---------------------------------------------------------------

def test_abandoned_recognition_counts_against_readiness(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    """One recognition thread; a 36 MP drawing (about 0.4 s of work) against a 0.15 s limit is 504, and
    while the abandoned work still holds the thread, /api/ready is 503 JSON with Retry-After and a new
    POST gets 503 at once instead of queueing into its own 504. Then both recover. Before: ready
    said ready throughout."""
    from test_web_hardening import big_one

    big = big_one()
    with numbre_serve(monkeypatch, tmp_path, threads=1, timeout=0.15) as (url, _), \
            httpx.Client(base_url=url, timeout=20) as client:
        for _ in range(5):  # a busy machine may turn a try into a 408 (upload not in time), or end the
            seen: list[tuple[str, int, dict]] = []  # abandoned work before the first looks
            answer = client.post("/api/predict", content=big, headers=PNG)
            deadline = time.monotonic() + 20
            while answer.status_code == 504 and time.monotonic() < deadline:
                ready = client.get("/api/ready")
                seen.append(("ready", ready.status_code, dict(ready.headers) | ready.json()))
                if ready.status_code == 200:
                    break
                work = client.post("/api/predict", content=strokes_png(ONE), headers=PNG)
                seen.append(("post", work.status_code, dict(work.headers) | work.json()))
            if {("ready", 503), ("post", 503)} <= {(kind, status) for kind, status, _ in seen}:
                break
        assert answer.status_code == 504, answer.text
        busy = [entry for kind, status, entry in seen if kind == "ready" and status == 503]
        assert busy, f"/api/ready never said 'not ready' while the thread was held: {seen}"
        assert "recognition thread" in busy[0]["error"] and busy[0]["retry-after"] == "1"
        posts = [(status, entry) for kind, status, entry in seen if kind == "post"]
        assert any(status == 503 for status, _ in posts), posts
        for status, entry in posts:  # 200 when the abandoned work ended between the two requests
            assert status == 200 or (status == 503 and "recognition thread" in entry["error"]), entry
        assert seen[-1][:2] == ("ready", 200) and seen[-1][2]["abandoned"] == 0, seen[-1]
        again = client.post("/api/predict", content=strokes_png(ONE), headers=PNG)
        assert again.status_code == 200 and again.json()["digit"] == 1


# --- Host header and response headers -------------------------------------------------------------------

def test_foreign_hosts_are_refused_and_answers_carry_safe_headers(monkeypatch: MonkeyPatch, tmp_path: Path,
                                                                  ) -> None:
    """DNS rebinding: a request naming another host is 421 JSON; localhost, 127.0.0.1 and [::1] with
    any port are answered, and so is a name given with --allowed-host (its variable). No `server`
    banner; nosniff on JSON; /docs has a Content-Security-Policy that allows only its own inline
    script and no framing. Before: every host was answered, with `server: uvicorn`."""
    with numbre_serve(monkeypatch, tmp_path) as (url, _):
        port = urlsplit(url).port
        for host in ("rebound.example", f"rebound.example:{port}", "10.0.0.1"):
            answer = get(url, "/api/health", headers={"Host": host})
            assert answer.status_code == 421, (host, answer.status_code)
            assert answer.headers["content-type"] == "application/json"
            assert "does not answer to the host" in answer.json()["error"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert get(url, "/api/health", headers={"Host": host}).status_code == 200, host
        health = get(url, "/api/health")
        assert "server" not in health.headers
        assert health.headers["x-content-type-options"] == "nosniff"
        refused = httpx.post(f"{url}/api/predict", content=b"not an image", headers=PNG, timeout=20)
        assert refused.status_code == 415 and refused.headers["x-content-type-options"] == "nosniff"
        docs = get(url, "/docs")
        policy = docs.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "'unsafe-eval'" not in policy
        script = re.search(r"script-src ([^;]*)", policy)[1]
        assert "'unsafe-inline'" not in script and len(re.findall(r"'sha256-", script)) == 1, policy
    with numbre_serve(monkeypatch, tmp_path, allowed_host="digits.example") as (url, _):
        assert get(url, "/api/health", headers={"Host": "digits.example"}).status_code == 200
        assert get(url, "/api/health", headers={"Host": "rebound.example"}).status_code == 421


# --- supply chain -----------------------------------------------------------------------------------------

ADVISORY_FLOORS = {  # the first release after the last published advisory of each parser numbre relies on
    "pillow": "12.2",  # CVE-2026-42309
    "python-multipart": "0.0.31",  # GHSA-v9pg-7xvm-68hf
    "onnx": "1.21",  # CVE-2026-27489, CVE-2026-34445
    "uvicorn": "0.11.7",  # CVE-2020-7694, CVE-2020-7695
}


def test_dependency_floors_exclude_advisories_and_the_lock_pins_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in
                    [*project["dependencies"], *project["optional-dependencies"]["serve"]]]
    floors = {requirement.name.lower(): min((Version(spec.version) for spec in requirement.specifier
                                             if spec.operator == ">="), default=None)
              for requirement in requirements}
    for name, first_safe in ADVISORY_FLOORS.items():
        assert floors[name] is not None and floors[name] >= Version(first_safe), (name, floors[name])
    lock = (ROOT / "requirements" / "serve.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+) \\$", lock, re.MULTILINE))
    for requirement in requirements:
        name = requirement.name.lower()
        assert name in pins, f"{name} is not pinned in requirements/serve.lock"
        assert requirement.specifier.contains(pins[name]), (name, pins[name], str(requirement.specifier))
    for name in ("fastapi", "starlette", "httptools", "pyinstaller", "pygame-ce"):
        assert name in pins, name
    blocks = re.findall(r"^[a-z0-9_.-]+==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", lock,
                        re.MULTILINE)
    assert len(blocks) == len(pins), "every pinned package has its hashes"
    command = (ROOT / "README.md").read_text().split("<!-- test-command -->\n", 1)[1].splitlines()[0]
    assert "pip install --require-hashes -r requirements/serve.lock" in command, command


def test_the_wheel_holds_the_licence(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = next(tmp_path.glob("numbre-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        licences = [name for name in names if re.search(r"\.dist-info/licenses/LICENSE$", name)]
        assert licences, [name for name in names if "dist-info" in name]
        assert b"MIT License" in archive.read(licences[0])
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA")))
        assert b"License-File: LICENSE" in metadata
