"""Ten thousand mutated images into `Recognizer.predict`, ten thousand more into `POST /api/predict`.

The seeds are small, valid images of a drawn 7 in every format and colour
layout numbre reads. Each mutant is one seed damaged at the byte level (half
the time near its header), with its dimensions rewritten, or spliced with
another seed; PNG chunk checksums are repaired half the time so the damage
reaches the decoder instead of the checksum test. Every mutant must give a
`Prediction` or an `ImageError`; over HTTP, a 2xx or 4xx answer in JSON, never
a 5xx, and the server must answer a real 7 afterwards.

The library loop runs in a child process (this file as a script), so a crash
in a decoder shows as a signal and the child's peak memory is its own;
`PYTHONPATH=tests python tests/reading/test_fuzz_images.py 10000 1` replays it and prints its figures.
The HTTP loop talks to a real `numbre serve` process.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from fuzzhelpers import damage, peak_rss_mb
from webhelpers import strokes_png

CASES = 10_000
LIBRARY_SEED, HTTP_SEED = 1, 2
PEAK_RSS_MB = 400  # the child's whole life: numpy, Pillow, ONNX Runtime and the largest mutant
SLOWEST_CASE_S = 1.0  # CPU seconds; a mutant decodes in about a millisecond

SEVEN = [[(70, 50), (210, 50), (120, 240)]]
Seed = tuple[str, bytes]  # (format and layout, bytes)


@functools.cache
def seeds() -> tuple[Seed, ...]:
    """The 7 in every format and layout numbre reads, 48 to 64 px: small, so mutants decode fast."""
    grey = Image.open(io.BytesIO(strokes_png(SEVEN))).convert("L").resize((56, 56), Image.Resampling.BILINEAR)
    rgba = np.zeros((56, 56, 4), np.uint8)
    rgba[..., 3] = 255 - np.asarray(grey)  # a canvas export: the 7 drawn by alpha alone

    def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format, **options)
        return buffer.getvalue()

    blank = Image.new("L", grey.size, 255)
    return (
        ("png grey", encoded(grey)), ("png rgb", encoded(grey.convert("RGB"))),
        ("png rgba canvas", encoded(Image.fromarray(rgba))), ("png palette", encoded(grey.convert("P"))),
        ("png 16-bit", encoded(Image.fromarray(np.asarray(grey, np.uint16) * 257))),
        ("png 1-bit", encoded(grey.convert("1"))), ("png grey+alpha", encoded(grey.convert("LA"))),
        ("apng", encoded(grey, "PNG", save_all=True, append_images=[blank], duration=50)),
        ("jpeg", encoded(grey, "JPEG", quality=90)),
        ("jpeg progressive", encoded(grey.convert("RGB"), "JPEG", progressive=True)),
        ("jpeg cmyk", encoded(grey.convert("CMYK"), "JPEG")),
        ("gif animated", encoded(grey.convert("P"), "GIF", save_all=True,
                                 append_images=[blank.convert("P")])),
        ("bmp", encoded(grey, "BMP")), ("bmp rgb", encoded(grey.convert("RGB"), "BMP")),
        ("tiff", encoded(grey, "TIFF")), ("tiff lzw", encoded(grey, "TIFF", compression="tiff_lzw")),
        ("tiff pages", encoded(grey, "TIFF", save_all=True, append_images=[blank])),
        ("webp lossy", encoded(grey.convert("RGB"), "WEBP", quality=80)),
        ("webp lossless", encoded(grey.convert("RGBA"), "WEBP", lossless=True)),
        ("pgm", encoded(grey, "PPM")),
    )


def repair_png_checksums(data: bytes) -> bytes:
    """Recompute every PNG chunk's CRC, so damage inside a chunk reaches the decoder."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, position = bytearray(data[:8]), 8
    while position + 12 <= len(data):
        length = struct.unpack(">I", data[position:position + 4])[0]
        end = position + 12 + length
        if end > len(data):
            break
        kind_and_body = data[position + 4:end - 4]
        out += data[position:position + 4] + kind_and_body + struct.pack(">I", zlib.crc32(kind_and_body))
        position = end
    return bytes(out + data[position:])


def with_dimensions(data: bytes, rng: random.Random) -> bytes:
    """The seed with the width and height in its header replaced by extreme or random values."""
    width, height = (rng.choice((0, 1, 2, 3, 255, 4096, 65535, 2**31 - 1, rng.randrange(1, 100_000)))
                     for _ in range(2))
    buffer = bytearray(data)
    if data.startswith(b"\x89PNG"):
        buffer[16:24] = struct.pack(">II", width, height)
        return repair_png_checksums(bytes(buffer))
    if data.startswith(b"\xff\xd8"):
        frame = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if frame > 0:
            buffer[frame + 5:frame + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif data.startswith(b"GIF"):
        buffer[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    elif data.startswith(b"BM"):
        buffer[18:26] = struct.pack("<ii", width % 2**31, rng.choice((-1, 1)) * (height % 2**31))
    return bytes(buffer)


def mutants(count: int, seed: int) -> Iterator[tuple[str, str, bytes]]:
    """(seed name, mutation, bytes) for `count` mutants, the same ones for the same `seed`."""
    rng = random.Random(seed)
    pool = seeds()
    for _ in range(count):
        name, data = rng.choice(pool)
        roll = rng.random()
        if roll < 0.15:
            kind, mutant = "dimensions", with_dimensions(data, rng)
        elif roll < 0.25:
            _, other = rng.choice(pool)
            kind, mutant = "splice", data[:rng.randrange(len(data))] + other[rng.randrange(len(other)):]
        else:
            kind, mutant = damage(data, rng, (0, min(len(data), 128)))
            for _ in range(rng.choice((0, 0, 1, 3))):  # sometimes several rounds of damage
                kind, mutant = f"{kind}+", damage(mutant, rng, None)[1]
        if rng.random() < 0.5:
            mutant = repair_png_checksums(mutant)
        yield name, kind.rstrip("+"), mutant


# --- the library loop (in the child process) ----------------------------------------------------

def fuzz(count: int, seed: int) -> dict:
    from numbre.errors import ImageError
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest, slowest_case, started = 0.0, "", time.perf_counter()
    for case, (name, kind, data) in enumerate(mutants(count, seed)):
        began = time.thread_time()  # this thread's CPU time: 1 us to read; all threads' takes 400
        try:
            prediction = recognizer.predict(data)
            answer = prediction.digit if prediction.digit is not None else prediction.reason
            outcomes[f"answered {answer}"] += 1
        except ImageError as error:
            outcomes["refused"] += 1
            if "\n" in str(error):
                failures.append(f"case {case} ({name}, {kind}): a refusal of several lines: {error!r}")
        except BaseException as error:  # any other exception is the finding
            failures.append(f"case {case} ({name}, {kind}): {type(error).__name__}: {str(error)[:300]}")
        if (took := time.thread_time() - began) > slowest:
            slowest, slowest_case = took, f"{name}, {kind}"
    return {"cases": sum(outcomes.values()) + len(failures), "outcomes": dict(outcomes.most_common()),
            "seconds": round(time.perf_counter() - started, 2),
            "slowest_case_cpu_ms": round(slowest * 1000, 1), "slowest_case": slowest_case,
            "peak_rss_mb": peak_rss_mb(),
            "failures": failures[:20], "failure_count": len(failures)}


def test_ten_thousand_mutated_images_give_answers_or_clear_refusals() -> None:
    tests = Path(__file__).resolve().parents[1]  # the shared helpers (webhelpers) live there
    result = subprocess.run([sys.executable, __file__, str(CASES), str(LIBRARY_SEED)], capture_output=True,
                            text=True, timeout=600, cwd=tests, env={**os.environ, "PYTHONPATH": str(tests)})
    assert result.returncode == 0, f"the fuzz child died with {result.returncode}:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], f"{report['failure_count']} failures:\n" + "\n".join(report["failures"])
    assert report["cases"] == CASES
    outcomes = report["outcomes"]
    assert outcomes["refused"] > CASES // 4 and outcomes["answered 7"] > CASES // 20, outcomes  # both ran
    assert report["slowest_case_cpu_ms"] < SLOWEST_CASE_S * 1000, report
    assert report["peak_rss_mb"] < PEAK_RSS_MB, report


def test_the_seeds_are_read_as_a_seven() -> None:
    """The fuzz starts from images the recognizer gets right, so a mutant's answer means something."""
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load()
    answers = {name: recognizer.predict(data).digit for name, data in seeds()}
    assert answers == {name: 7 for name, _ in seeds()}


# --- the HTTP loop -------------------------------------------------------------------------------

CONTENT_TYPES = {"png": "image/png", "apng": "image/png", "jpeg": "image/jpeg", "gif": "image/gif",
                 "bmp": "image/bmp", "tiff": "image/tiff", "webp": "image/webp",
                 "pgm": "image/x-portable-graymap"}


BOUNDARY = "numbre-fuzz-7d1f0c"


def request(connection: http.client.HTTPConnection, case: int, name: str, data: bytes) -> tuple[int, bytes]:
    """POST one mutant: odd cases as the multipart field `file`, even ones as the raw body."""
    extension = name.split()[0]
    content_type = CONTENT_TYPES[extension]
    if case % 2:
        head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="upload.{extension}"'
                f"\r\nContent-Type: {content_type}\r\n\r\n").encode()
        data = head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    connection.request("POST", "/api/predict", body=data, headers={"Content-Type": content_type})
    response = connection.getresponse()
    return response.status, response.read()


def test_ten_thousand_mutated_uploads_get_no_server_error(tmp_path: Path) -> None:
    """http.client, not httpx: a quarter of the client's CPU per request, so the server sets the pace."""
    from apphelpers import running_server

    statuses: Counter[int] = Counter()
    bad: list[str] = []

    def send_all(url: str, items: list[tuple[int, tuple[str, str, bytes]]]) -> None:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        for case, (name, kind, data) in items:
            try:
                status, body = request(connection, case, name, data)
                answer = json.loads(body)
            except (OSError, http.client.HTTPException, ValueError) as error:
                bad.append(f"case {case} ({name}, {kind}): {type(error).__name__}: {error}")
                connection.close()
                continue
            statuses[status] += 1
            if status >= 500 or not isinstance(answer, dict) or not {"digit", "error"} & {*answer}:
                bad.append(f"case {case} ({name}, {kind}): {status} {body[:200]!r} "
                           f"input {data[:64].hex()}...")
        connection.close()

    cases = list(enumerate(mutants(CASES, HTTP_SEED)))
    started = time.perf_counter()
    with running_server([sys.executable, "-m", "numbre"], tmp_path) as url:
        with ThreadPoolExecutor(max_workers=2) as pool:  # two connections: client and server work overlap
            list(pool.map(lambda half: send_all(url, cases[half::2]), (0, 1)))
        seconds = time.perf_counter() - started
        with httpx.Client(base_url=url, timeout=30) as client:
            health = client.get("/api/health")
            seven = client.post("/api/predict", content=seeds()[0][1], headers={"Content-Type": "image/png"})
    assert bad == [], f"{len(bad)} bad answers:\n" + "\n".join(bad[:20])
    assert sum(statuses.values()) == CASES and max(statuses) < 500, statuses
    assert statuses[200] > CASES // 10 and statuses[422] > CASES // 4, statuses  # both paths ran
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert seven.status_code == 200 and seven.json()["digit"] == 7, seven.text
    print(f"\nHTTP fuzz: {dict(statuses)} in {seconds:.1f} s")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(fuzz(int(sys.argv[1]), int(sys.argv[2]))))

