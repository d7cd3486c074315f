"""The HTTP API against the real Recognizer and the shipped model, over loopback HTTP.

One uvicorn server (in a thread) serves the module; every refusal is checked for its status and
its JSON, and for the server still answering afterwards. The answers are checked against the
library and against `numbre predict --json` / `numbre read --json`, which must print the same objects.
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from numbre.reading.recognize import Recognizer
from numbre.web import schemas
from numbre.web.app import create_app
from numbre.web.limits import ServeLimits
from numbre.web.uploads import png_base64
from webhelpers import ONE, PNG, live_server, strokes_png

LIMIT = 300_000  # the test server's upload limit, small so that oversized bodies are cheap to send

ZERO = [[(140 + 60 * math.cos(step * math.tau / 24), 140 + 95 * math.sin(step * math.tau / 24))
         for step in range(25)]]


def number_png(strokes_per_digit: list[list[list[tuple[float, float]]]]) -> bytes:
    """Digits side by side on a 560x280 pad, each drawn in its own 160-pixel-wide cell."""
    shifted = [[[(x * 0.5 + 40 + 170 * index, y) for x, y in stroke] for stroke in strokes]
               for index, strokes in enumerate(strokes_per_digit)]
    return strokes_png([stroke for strokes in shifted for stroke in strokes], size=(560, 280))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def client(recognizer: Recognizer):
    app = create_app(recognizer, limits=ServeLimits(max_bytes=LIMIT))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def still_serving(client: httpx.Client) -> None:
    response = client.post("/api/predict", content=strokes_png(ONE), headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()["digit"] == 1


# --- answers ---------------------------------------------------------------------------------

def test_predict_raw_body_is_the_library_answer(client: httpx.Client, recognizer: Recognizer) -> None:
    png = strokes_png(ONE)
    response = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == recognizer.predict(png).to_dict()
    assert response.json()["digit"] == 1
    schemas.PredictionOut.model_validate(response.json())


def test_multipart_and_raw_bodies_get_the_same_answer(client: httpx.Client) -> None:
    png = strokes_png(ZERO)
    raw = client.post("/api/predict", content=png, headers={"Content-Type": "application/octet-stream"})
    form = client.post("/api/predict", files={"file": ("zero.png", png, "image/png")})
    unlabelled = client.post("/api/predict", content=png, headers={"Content-Type": ""})
    assert raw.status_code == form.status_code == unlabelled.status_code == 200
    assert raw.json() == form.json() == unlabelled.json()
    assert raw.json()["digit"] == 0


def test_a_png_mislabelled_by_curl_is_still_read(client: httpx.Client) -> None:
    """`curl --data-binary @digit.png` labels the body as a form; the bytes say PNG."""
    response = client.post("/api/predict", content=strokes_png(ONE),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json()["digit"] == 1


def test_answers_are_what_the_command_line_prints(client: httpx.Client, tmp_path: Path) -> None:
    from numbre.cli.predict_cmd import predict, read

    digit, number = tmp_path / "digit.png", tmp_path / "number.png"
    digit.write_bytes(strokes_png(ONE))
    number.write_bytes(number_png([ONE, ZERO, ONE]))
    for command, path, endpoint in ((predict, digit, "/api/predict"), (read, number, "/api/read")):
        printed = CliRunner().invoke(command, [str(path), "--json"])
        assert printed.exit_code == 0, printed.output
        expected = json.loads(printed.output)
        expected.pop("file")
        assert client.post(endpoint, files={"file": (path.name, path.read_bytes())}).json() == expected


def test_read_gives_the_number_and_a_box_per_digit(client: httpx.Client, recognizer: Recognizer) -> None:
    png = number_png([ONE, ZERO, ONE])
    answer = client.post("/api/read", content=png, headers={"Content-Type": "image/png"}).json()
    assert answer == recognizer.read(png).to_dict()
    assert answer["number"] == "101"
    lefts = [digit["box"][0] for digit in answer["digits"]]
    assert lefts == sorted(lefts) and len(lefts) == 3
    for digit in answer["digits"]:
        x0, y0, x1, y1 = digit["box"]
        assert 0 <= x0 < x1 <= 560 and 0 <= y0 < y1 <= 280
    schemas.ReadingOut.model_validate(answer)


def test_image_flag_adds_the_28x28_input_and_changes_nothing_else(client: httpx.Client,
                                                                   recognizer: Recognizer) -> None:
    png = strokes_png(ONE)
    plain = client.post("/api/predict", content=png).json()
    shown = client.post("/api/predict?image=1", content=png).json()
    assert "image" not in plain
    seen = Image.open(io.BytesIO(base64.b64decode(shown.pop("image"))))
    assert seen.size == (28, 28) and seen.mode == "L"
    assert shown == plain
    assert png_base64(recognizer.predict(png).image) == client.post("/api/predict?image=1",
                                                                    content=png).json()["image"]
    reading = client.post("/api/read?image=true", content=number_png([ONE, ONE])).json()
    assert all(Image.open(io.BytesIO(base64.b64decode(digit["image"]))).size == (28, 28)
               for digit in reading["digits"])


def test_a_blank_image_is_empty_not_an_error(client: httpx.Client) -> None:
    blank = strokes_png([])
    predicted = client.post("/api/predict", content=blank).json()
    assert predicted["digit"] is None and predicted["reason"] == "empty"
    read = client.post("/api/read", content=blank).json()
    assert read == {"number": None, "digits": [], "reason": "empty"}


def test_health_model_and_docs(client: httpx.Client, recognizer: Recognizer) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == recognizer.meta["architecture"]
    assert client.get("/api/model").json() == json.loads(json.dumps(recognizer.meta))
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/read", "/api/health", "/api/model"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"PredictionOut", "ReadingOut", "ErrorOut"} <= set(spec["components"]["schemas"])
    page = client.get("/")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    assert client.get("/static/app.js").status_code == 200


# --- refusals --------------------------------------------------------------------------------

def chunked(data: bytes, size: int = 65_536):
    """A body without Content-Length: the limit must hold while the bytes stream in."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


BIG = b"\x89PNG\r\n\x1a\n" + bytes(LIMIT)
# name: (status, request arguments (made afresh each time: a generator is spent once), words in the error)
REFUSALS = {
    "text": (415, lambda: {"content": b"seven", "headers": {"Content-Type": "text/plain"}}, "text"),
    "json": (415, lambda: {"content": b'{"image": "x.png"}', "headers": {"Content-Type": "application/json"}},
             "text"),
    "pdf": (415, lambda: {"content": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
                          "headers": {"Content-Type": "application/pdf"}}, "PDF"),
    "pdf labelled png": (415, lambda: {"content": b"%PDF-1.4\n\x00\x01", "headers": PNG}, "PDF"),
    "unknown type": (415, lambda: {"content": b"\x00\x01\x02\x03", "headers": {"Content-Type": "audio/mpeg"}},
                     "audio/mpeg"),
    "text file in form": (415, lambda: {"files": {"file": ("note.txt", b"a seven", "text/plain")}}, "text"),
    "over the limit": (413, lambda: {"content": BIG, "headers": PNG}, "limit"),
    "over the limit, chunked": (413, lambda: {"content": chunked(BIG), "headers": PNG}, "limit"),
    "over the limit, form": (413, lambda: {"files": {"file": ("big.png", BIG, "image/png")}}, "limit"),
    "undecodable": (422, lambda: {"content": bytes(range(256)) * 4, "headers": PNG}, "not an image"),
    "truncated png": (422, lambda: {"content": strokes_png(ONE)[:300], "headers": PNG}, "truncated"),
    "empty body": (422, lambda: {"content": b"", "headers": PNG}, "0 bytes"),
    "form without file": (422, lambda: {"files": {"picture": ("one.png", strokes_png(ONE), "image/png")}},
                          "'file'"),
    "form field not a file": (422, lambda: {"data": {"file": "one.png"}, "files": {"other": ("x", b"x")}},
                              "'file'"),
    "broken form": (422, lambda: {"content": b"--nope\r\ngarbage",
                                  "headers": {"Content-Type": "multipart/form-data; boundary=b"}}, "form"),
    "decompression bomb": (422, lambda: {"content": png_claiming(60_000, 60_000)}, "bomb"),
    "too many pixels": (422, lambda: {"content": png_claiming(8_000, 8_000)}, "megapixel"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_are_json_with_the_right_status(client: httpx.Client, case: str) -> None:
    status, request, words = REFUSALS[case]
    for endpoint in ("/api/predict", "/api/read"):
        response = client.post(endpoint, **request())
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error"} and words in response.json()["error"]
    still_serving(client)


def test_a_bad_query_is_a_json_422(client: httpx.Client) -> None:
    response = client.post("/api/predict?image=perhaps", content=strokes_png(ONE))
    assert response.status_code == 422 and "image" in response.json()["error"]
    assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


def test_random_bytes_never_get_a_500(client: httpx.Client) -> None:
    rng = random.Random(7)
    valid = strokes_png(ONE)
    for _ in range(60):
        kind = rng.choice(["random", "mangled png", "form"])
        if kind == "random":
            body = rng.randbytes(rng.randint(1, 4000))
        else:  # a real PNG with bytes flipped or cut: decoders' favourite way to crash
            body = bytearray(valid[:rng.randint(8, len(valid))])
            for _ in range(rng.randint(1, 20)):
                body[rng.randrange(8, len(body))] = rng.randrange(256) if len(body) > 8 else 0
            body = bytes(body)
        if kind == "form":
            response = client.post("/api/read", files={"file": ("x.png", body, "image/png")})
        else:
            label = rng.choice(["image/png", "application/octet-stream"])
            response = client.post(rng.choice(["/api/predict", "/api/read"]), content=body,
                                   headers={"Content-Type": label})
        assert response.status_code in (200, 413, 415, 422), response.text
        assert response.status_code == 200 or "error" in response.json()
    still_serving(client)


def test_concurrent_requests_share_the_model_safely(client: httpx.Client) -> None:
    drawings = [strokes_png(ONE), strokes_png(ZERO)] * 16
    alone = [client.post("/api/predict", content=png).json() for png in drawings[:2]]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda png: client.post("/api/predict", content=png).json(), drawings))
    assert together == alone * 16


# --- numbre serve ----------------------------------------------------------------------------

def test_serve_refuses_a_bad_model_before_listening(tmp_path: Path) -> None:
    from numbre.cli import NumbreGroup
    from numbre.cli.serve_cmd import serve

    group = NumbreGroup(commands={"serve": serve})  # as in `numbre serve`: NumbreError -> one line, exit 2
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    result = CliRunner().invoke(group, ["serve", "--model", str(tmp_path / "broken.onnx")])
    assert result.exit_code == 2
    assert result.output.startswith("numbre: error: ") and result.output.count("\n") == 1


def test_serve_with_two_worker_processes(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from numbre.cli.serve_cmd import serve; serve()",
                               "--port", str(port), "--workers", "2", "--max-bytes", "1000",
                               "--max-pending", "7"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{url}/api/health").json()["status"] == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "numbre serve did not start"
                time.sleep(0.1)
        assert httpx.post(f"{url}/api/predict", content=BIG[:2000]).status_code == 413  # --max-bytes 1000
        assert httpx.get(f"{url}/api/ready").json()["max_pending"] == 7  # each worker has the limits
        assert httpx.post(f"{url}/api/predict", content=strokes_png([])).json()["reason"] == "empty"
    finally:
        server.terminate()
        server.wait(timeout=30)
