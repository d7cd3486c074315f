"""The HTTP service under abuse and at its limits, against the real model over loopback HTTP.

Each limit of `numbre.web.limits` is driven past its bound and must refuse with its status and
JSON, then let the server go on answering: requests in hand (raw sockets whose bodies stall keep
requests open for as long as a test needs), time (a stalled body, a 36-megapixel image), body size
on an endpoint that is not an upload, and pixels. Then what the service promises about itself:
CORS off unless configured, no endpoint that takes a name of a file, /docs that works without a
network (in headless Chromium, with every request elsewhere refused), and `numbre serve` that binds
to loopback by default and, on SIGTERM, finishes the requests in flight and exits with status 0.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from apphelpers import start_serve
from numbre.errors import NumbreError
from numbre.reading.recognize import Recognizer
from numbre.web.app import DOCS_ASSETS, app_from_environment, create_app
from numbre.web.limits import ServeLimits
from webhelpers import ONE, PNG, headless_chromium, live_server, strokes_png


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture
def serve(recognizer: Recognizer):
    """Start a live server for an app made with the given limits and CORS origins; yields a client."""
    with contextlib.ExitStack() as stack:

        def start(limits: ServeLimits | None = None, cors_origins: tuple[str, ...] = ()) -> httpx.Client:
            url = stack.enter_context(live_server(create_app(recognizer, limits=limits,
                                                             cors_origins=cors_origins)))
            return stack.enter_context(httpx.Client(base_url=url, timeout=30))

        yield start


def big_one(side: int = 6000) -> bytes:
    """A `side` x `side` drawing of a 1 (36 megapixels by default): a small RGB PNG that takes a few
    hundred milliseconds to decode and read (0.44 s here; a grey one, 0.12 s, is too quick for a
    0.1 s limit on a fast machine)."""
    image = Image.new("L", (side, side), 255)
    stroke = [(side * 0.5, side * 0.15), (side * 0.48, side * 0.85)]
    ImageDraw.Draw(image).line(stroke, fill=0, width=side // 15)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


class StalledUpload:
    """A POST on a raw socket that sends its headers and half its body, then waits to be finished.

    Meanwhile the server holds the request in hand, as it would a slow client's.
    """

    def __init__(self, base_url: str, body: bytes, path: str = "/api/predict") -> None:
        address = urlsplit(base_url)
        self.socket = socket.create_connection((address.hostname, address.port), timeout=30)
        head = (f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: image/png\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        half = len(body) // 2
        self.socket.sendall(head.encode() + body[:half])
        self.rest = body[half:]

    def finish(self) -> tuple[int, dict[str, str], dict]:
        self.socket.sendall(self.rest)
        return self.response()

    def response(self) -> tuple[int, dict[str, str], dict]:
        """(status, headers, JSON body) of the answer; the server closes the connection after it."""
        data = b""
        while chunk := self.socket.recv(65536):
            data += chunk
        self.socket.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        lowered = {name.lower(): value for name, value in headers.items()}
        return int(lines[0].split()[1]), lowered, json.loads(body)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server did not reach the expected state"
        time.sleep(0.02)


# --- requests in hand ----------------------------------------------------------------------------

def test_over_the_pending_limit_is_503_with_retry_after_and_then_served_again(serve) -> None:
    client = serve(ServeLimits(max_pending=2))
    png = strokes_png(ONE)
    stalled = [StalledUpload(str(client.base_url), png) for _ in range(2)]
    wait_for(lambda: client.get("/api/ready").status_code == 503)

    refused = client.post("/api/predict", content=png, headers=PNG)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": "the server is busy: 2 requests are in hand, the most it takes at "
                                       "once; retry in 1 s"}
    not_ready = client.get("/api/ready")
    assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
    assert client.get("/api/health").json()["status"] == "ok"  # alive, though not taking work

    for upload in stalled:  # the requests in hand are answered in full
        status, _, answer = upload.finish()
        assert status == 200 and answer["digit"] == 1
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json()["pending"] == 0 and ready.json()["max_pending"] == 2 and ready.json()["warmup_ms"] > 0
    assert client.post("/api/predict", content=png, headers=PNG).json()["digit"] == 1


# --- time ------------------------------------------------------------------------------------------

def test_a_body_that_stalls_past_the_time_limit_is_408(serve) -> None:
    client = serve(ServeLimits(timeout=0.5))
    started = time.monotonic()
    status, headers, answer = StalledUpload(str(client.base_url), strokes_png(ONE)).response()
    waited = time.monotonic() - started
    assert status == 408 and headers["content-type"] == "application/json"
    assert answer == {"error": "the request body did not arrive within the 0.5 s limit; send the whole image "
                               "at once"}
    assert 0.4 < waited < 25, waited  # not before the limit; the upper bound only catches a hang
    assert client.get("/api/ready").json()["pending"] == 0
    assert client.post("/api/predict", content=strokes_png(ONE), headers=PNG).json()["digit"] == 1


class GatedRecognizer:
    """The real recognizer, except that once `armed` each predict waits at a gate until it is opened:
    work that cannot end before the test says so, however fast or slow the machine is."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer, self.armed = recognizer, False
        self.entered, self.gate = threading.Event(), threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.recognizer, name)  # everything but predict is the real recognizer's

    def predict(self, image):
        if self.armed:
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return self.recognizer.predict(image)


def test_work_past_the_time_limit_is_504_and_the_pool_goes_on(recognizer: Recognizer) -> None:
    """The 504 comes at the limit, while the work is still running (it is held at a gate the test opens
    only after the answer): no clock is read, so a slow or busy machine cannot fail it."""
    gated = GatedRecognizer(recognizer)
    app = create_app(gated, limits=ServeLimits(timeout=0.1, threads=1))  # warms up before arming
    gated.armed = True
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        late = client.post("/api/predict", content=strokes_png(ONE), headers=PNG)
        assert late.status_code == 504, late.text
        assert late.json() == {"error": "the request took longer than the 0.1 s limit; send a smaller image, "
                                        "or retry when the server is less busy"}
        assert gated.entered.wait(30)  # the work did start, and is held at the gate still
        # The one thread is still held by the abandoned work: a request meanwhile is not served (the
        # server says it is busy, or the request times out waiting for the thread).
        assert client.post("/api/predict", content=strokes_png(ONE), headers=PNG).status_code in (503, 504)
        gated.gate.set()  # the abandoned work ends; the pool then serves the next request in full
        statuses = []
        while not statuses or statuses[-1] != 200:
            assert len(statuses) < 40, statuses
            time.sleep(0.25)
            answer = client.post("/api/predict", content=strokes_png(ONE), headers=PNG)
            statuses.append(answer.status_code)
        assert set(statuses) <= {200, 503, 504} and answer.json()["digit"] == 1
        assert client.get("/api/ready").json()["pending"] == 0


# --- size and pixels -------------------------------------------------------------------------------

def test_the_body_limit_holds_on_endpoints_that_are_not_uploads(serve) -> None:
    client = serve(ServeLimits(max_bytes=1000))  # the most any body may hold: 1,000 + 65,536 bytes
    document = json.dumps({"id": 0, "guess": 1, "padding": "x" * 100_000}).encode()
    as_json = {"Content-Type": "application/json"}
    declared = client.post("/api/contest/answer", content=document, headers=as_json)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold as the bytes stream in
        for start in range(0, len(document), 8192):
            yield document[start:start + 8192]

    streamed = client.post("/api/contest/answer", content=chunks(), headers=as_json)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"].startswith("the upload is over the 1,000 byte limit")
    small = client.post("/api/contest/answer", json={"id": 0, "guess": 1})
    assert small.status_code == 200 and small.json()["id"] == 0


def test_the_pixel_limit_is_the_servers_and_refuses_before_decoding(serve) -> None:
    client = serve(ServeLimits(max_pixels=2_000_000))

    def blank(width: int, height: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("L", (width, height), 255).save(buffer, "PNG")
        return buffer.getvalue()

    for endpoint in ("/api/predict", "/api/read"):
        over = client.post(endpoint, content=blank(2000, 1500), headers=PNG)
        assert over.status_code == 422
        assert "2000x1500 = 3 megapixels, over the 2 megapixel limit" in over.json()["error"]
        assert client.post(endpoint, content=blank(1600, 1200), headers=PNG).status_code == 200


def test_limits_come_from_the_environment_and_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = ServeLimits(max_bytes=5000, max_pixels=10**6, threads=1, max_pending=3, timeout=2.5)
    environment = limits.environment()
    assert environment["NUMBRE_SERVE_MAX_PENDING"] == "3" and environment["NUMBRE_SERVE_TIMEOUT"] == "2.5"
    assert ServeLimits.from_environment(environment) == limits
    assert ServeLimits.from_environment({}) == ServeLimits()
    with pytest.raises(NumbreError, match=r"NUMBRE_SERVE_MAX_PENDING='lots' is not an integer"):
        ServeLimits.from_environment({"NUMBRE_SERVE_MAX_PENDING": "lots"})
    with pytest.raises(NumbreError, match="timeout must be more than 0 seconds"):
        ServeLimits(timeout=0)
    for name, value in {**environment, "NUMBRE_SERVE_CORS_ORIGIN": "https://a.example https://b.example"}.items():
        monkeypatch.setenv(name, value)
    app = app_from_environment()  # what each worker process of `numbre serve --workers N` runs
    assert app.state.limits == limits
    cors = [entry for entry in app.user_middleware if entry.cls.__name__ == "CORSMiddleware"]
    assert cors and cors[0].kwargs["allow_origins"] == ["https://a.example", "https://b.example"]


def test_serve_help_shows_each_limit_with_its_default_and_variable() -> None:
    from numbre.cli.serve_cmd import serve

    text = " ".join(CliRunner().invoke(serve, ["--help"], auto_envvar_prefix="NUMBRE_SERVE").output.split())
    for option, variable, default in (("--max-bytes", "NUMBRE_SERVE_MAX_BYTES", "8000000"),
                                      ("--max-pixels", "NUMBRE_SERVE_MAX_PIXELS", "40000000"),
                                      ("--max-pending", "NUMBRE_SERVE_MAX_PENDING", "256"),
                                      ("--timeout", "NUMBRE_SERVE_TIMEOUT", "10.0"),
                                      ("--graceful-timeout", "NUMBRE_SERVE_GRACEFUL_TIMEOUT", "30"),
                                      ("--host", "NUMBRE_SERVE_HOST", "127.0.0.1")):
        assert re.search(rf"{option} .*?\[env var: {variable}; default: {re.escape(default)}", text), option
    refused = CliRunner().invoke(serve, ["--max-pending", "0"])
    assert refused.exit_code == 2 and "--max-pending" in refused.output


def test_a_taken_port_a_foreign_host_and_a_bad_origin_are_one_line_errors_before_any_banner() -> None:
    import socket

    from numbre.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], f"cannot listen on 127.0.0.1:{port}: Address already in use; another "
                                    "program listens there; choose another --port (0 picks a free one)"),
            (["--host", "999.1.1.1"], "--host 999.1.1.1: "),
            (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:8000: Cannot assign requested address; "
                                      "192.0.2.1 is not an address of this machine"),  # TEST-NET-1
            (["--cors-origin", "not a url"], "--cors-origin 'not a url' is not an origin"),
            (["--cors-origin", "https://example.org/page"],
             "--cors-origin 'https://example.org/page' is not an origin"),
        ]
        for args, message in cases:
            result = CliRunner().invoke(cli, ["serve", *args])
            assert result.exit_code == 2, (args, result.output)
            assert result.output.startswith(f"numbre: error: {message}"), (args, result.output)
            assert len(result.output.strip().splitlines()) == 1 and "serving" not in result.output


# --- CORS, file names, docs ------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


def test_cors_is_off_unless_an_origin_is_configured(serve) -> None:
    closed = serve()
    preflight = closed.options("/api/predict", headers=PREFLIGHT)
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
    answer = closed.post("/api/predict", content=strokes_png(ONE), headers={**PNG, "Origin": "https://example.org"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers

    open_to_one = serve(cors_origins=("https://example.org",))
    preflight = open_to_one.options("/api/predict", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://example.org"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refusal = open_to_one.post("/api/predict", content=b"seven",  # refusals are readable by that page too
                               headers={"Content-Type": "text/plain", "Origin": "https://example.org"})
    assert refusal.status_code == 415 and refusal.headers["access-control-allow-origin"] == "https://example.org"
    stranger = open_to_one.options("/api/predict", headers={**PREFLIGHT, "Origin": "https://elsewhere.example"})
    assert stranger.status_code == 400 and "access-control-allow-origin" not in stranger.headers


def test_no_endpoint_takes_a_file_name_or_reaches_outside_its_folders(serve) -> None:
    client = serve()
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        assert "{" not in path, f"{path} takes a path parameter"
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):  # only flags and counts, never text
                assert parameter["schema"].get("type") in ("boolean", "integer"), (method, path, parameter)
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                schema = content["schema"]
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                if media == "application/json":
                    kinds = {field.get("type") for field in schema["properties"].values()}
                    assert kinds == {"integer"}, (path, schema)
                else:  # an upload: the image's bytes, never a name to look up
                    fields = schema.get("properties", {"": schema}).values()
                    assert all(field.get("format") == "binary" for field in fields), (path, media, schema)
    secret = Path(__file__).read_text()
    for probe in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                  "/static/%2e%2e%2f%2e%2e%2fcli%2f__init__.py", f"{DOCS_ASSETS}/..%2f..%2fweb%2fapp.py",
                  "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/api/predict/../../etc/passwd"):
        response = client.get(probe)
        assert response.status_code == 404, (probe, response.status_code)
        assert "root:" not in response.text and secret[:200] not in response.text


def test_docs_refer_only_to_files_this_server_serves(serve) -> None:
    client = serve()
    page = client.get("/docs")
    assert page.status_code == 200
    references = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert references and all(reference.startswith("/") and not reference.startswith("//")
                              for reference in references), references
    for reference in references:
        response = client.get(reference)
        assert response.status_code == 200 and len(response.content) > 100, reference
    assert "cdn" not in page.text.lower()


def test_docs_page_works_offline_in_a_browser(serve, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    client = serve()
    base = str(client.base_url)
    operations = sum(len(methods) for methods in client.get("/openapi.json").json()["paths"].values())
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith((base, "data:", "blob:")):
            route.continue_()
        else:  # as if there were no network at all
            elsewhere.append(route.request.url)
            route.abort()

    with headless_chromium() as browser:
        page = browser.new_page()
        page.route("**/*", only_this_server)
        page.goto(f"{base}/docs")
        expect(page.locator(".opblock")).to_have_count(operations, timeout=20_000)
        expect(page.locator(".info .title")).to_contain_text("numbre")
        page.screenshot(path=str(tmp_path / "docs.png"))
    assert not elsewhere, f"/docs asked for files elsewhere: {elsewhere}"


# --- numbre serve as a process ---------------------------------------------------------------------

def test_serve_binds_loopback_and_finishes_requests_in_flight_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    server, url = start_serve([sys.executable, "-m", "numbre"], tmp_path, timeout=60)
    try:
        listening = [connection.laddr for connection in psutil.Process(server.pid).net_connections("inet")
                     if connection.status == psutil.CONN_LISTEN]
        assert listening and all(address.ip == "127.0.0.1" for address in listening), listening

        png = strokes_png(ONE)

        def slowly() -> Iterator[bytes]:  # about 2 s of upload, so the request is in flight for the stop
            for start in range(0, len(png), len(png) // 8 + 1):
                time.sleep(0.25)
                yield png[start:start + len(png) // 8 + 1]

        answers: list[httpx.Response | Exception] = []

        def post(content) -> None:
            try:
                answers.append(httpx.post(f"{url}/api/predict", content=content, headers=PNG, timeout=60))
            except httpx.HTTPError as error:
                answers.append(error)

        clients = [threading.Thread(target=post, args=(slowly(),)) for _ in range(3)]
        clients.append(threading.Thread(target=post, args=(big_one(),)))
        for client in clients:
            client.start()
        wait_for(lambda: httpx.get(f"{url}/api/ready").json()["pending"] == 4)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the stop is under way while the uploads go on
        with pytest.raises(httpx.ConnectError):  # no new connections once stopping
            httpx.get(f"{url}/api/health", timeout=5)
        for client in clients:
            client.join(timeout=60)
        assert server.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert len(answers) == 4
    for answer in answers:
        assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
        assert answer.json()["digit"] == 1
    assert "Finished server process" in log_path.read_text()
