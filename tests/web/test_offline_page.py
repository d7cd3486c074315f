"""The drawing page without the server: the shipped model run in the browser (static/offline.js and
onnxruntime-web, fetched into the cache by numbre.web.runtime), on a static copy of the page (`numbre
export --web`) and on a served page whose server goes away.

The static copy is served by a plain http.server, which answers the page's POSTs with an HTML 501: the
page must read every drawing in the browser. Its answers are compared, drawing by drawing, with what the
server's /api/predict says about the very same pixels (the pad's PNG): digit, reason, the ten
probabilities and the 28x28 image the network saw. Drawings are made with real pointer events (page.mouse)
from numbre's stroke font, slanted, stretched and shaken, plus the cases with their own code paths: small
writing (read again at full resolution), ink against the pad's edge (the photo branch, with its levelled
background), two digits (several digits), scribbles (not a digit) and a dot (empty). Screenshots go to
test-artifacts/web/offline-*.png.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import playwright.sync_api as playwright_api
import pytest
from click.testing import CliRunner
from PIL import Image

from numbre.cli import cli
from numbre.data.drawn import STROKE_FONT
from numbre.data.synthetic import digit_ink, page_image, random_writer, synth_digit
from numbre.reading.preprocess import GRAIN_AVERAGED, OVERVIEW_SIDE, center_ink, ink_map
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from webhelpers import live_server

expect = playwright_api.expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
ONE = [[(0.53, 0.12), (0.47, 0.88)]]
# Both run the same int8 graph with exact integer products (the server asks ONNX Runtime for them on
# CPUs without VNNI: numbre.model.onnx_model._session); float32 rounding may differ in the last bits.
PROBABILITY_TOLERANCE = 1e-4

# Before the page's scripts: every Content-Security-Policy violation is kept.
PROBE = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""

# The in-browser reader's answer for the pad as it is, and the pad's PNG, for the server to read.
READ_HERE = """async () => {
  const pad = document.getElementById("pad");
  const answer = await NumbreOffline.page.predict(pad, "digit");
  return { answer, png: pad.toDataURL("image/png"), shown: document.getElementById("answer").textContent,
           message: document.getElementById("message").textContent };
}"""


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def server_url(recognizer: Recognizer) -> Iterator[str]:
    with live_server(create_app(recognizer)) as url:
        yield url


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """A plain http.server on `folder` in a thread: what a static web host does, and no more."""
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # the base class's signature
        pass


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("site") / "numbre-site"
    result = CliRunner().invoke(cli, ["export", "--web", str(folder)])
    assert result.exit_code == 0, result.output
    with static_server(folder) as url:
        yield url


def open_page(browser, url: str, problems: list[str]):
    """A page on `url` that lists script errors, console errors and requests to other origins."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(20_000)
    context.add_init_script(PROBE)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("request", lambda sent: None if sent.url.startswith((url, "data:", "blob:"))
            else problems.append(f"request to another origin: {sent.url}"))
    page.goto(url)
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    return page


def close_page(page, problems: list[str], name: str) -> None:
    snapshot(page, name)
    problems += page.evaluate("window.__violations")
    page.context.close()
    assert not problems, problems


def snapshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"offline-{name}.png"), full_page=True)


def draw(page, strokes, *, steps: int = 24) -> None:
    """Draw strokes (pad fractions, (x, y) with 0 at the top left) with real mouse events."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=max(2, steps // len(points)))
        page.mouse.up()


def answered(page) -> None:
    expect(page.locator("#result")).to_have_attribute("data-state", "done")


def glyph(digit: int, rng: np.random.Generator, *, left: float = 0.0, width: float = 1.0,
          height: float | None = None, top: float | None = None) -> list[list[tuple[float, float]]]:
    """One digit of numbre's stroke font as pad fractions: slanted, stretched and shaken a little."""
    slant, stretch = rng.uniform(-0.2, 0.2), rng.uniform(0.85, 1.1)
    height = rng.uniform(0.55, 0.72) if height is None else height
    top = rng.uniform(0.12, 0.9 - height) if top is None else top
    across = min(0.55, width * 0.8 / 0.7) * height / 0.66
    strokes = []
    for line in STROKE_FONT[digit]:
        points = np.asarray(line, np.float64) + rng.normal(0.0, 0.012, size=(len(line), 2))
        x = left + width / 2 + ((points[:, 0] - 0.35) * stretch + slant * (0.5 - points[:, 1])) * across
        y = top + points[:, 1] * height
        strokes.append(list(zip(np.clip(x, 0.0, 1.0).tolist(), np.clip(y, 0.0, 1.0).tolist(), strict=True)))
    return strokes


def drawings() -> list[tuple[str, list]]:
    """62 drawings: 50 digits, and each kind of drawing that takes its own path through the reader."""
    rng = np.random.default_rng(16)
    made = [(f"digit-{digit}", glyph(digit, rng)) for digit in list(range(10)) * 5]
    made += [(f"small-{digit}", glyph(digit, rng, height=0.11, top=rng.uniform(0.1, 0.8)))
             for digit in (2, 4, 7, 9)]
    for digit in (1, 5, 8):  # ink against the pad's left edge: a border that is not one level
        made.append((f"edge-{digit}", [[(0.0, 0.2), (0.02, 0.8)], *glyph(digit, rng, left=0.25, width=0.6)]))
    made += [(f"pair-{a}{b}", glyph(a, rng, width=0.5, height=0.4)
              + glyph(b, rng, left=0.5, width=0.5, height=0.4)) for a, b in ((3, 1), (7, 4))]
    zigzag = [[(0.1 + 0.8 * (step % 2), 0.1 + 0.8 * step / 12) for step in range(13)],
              [(0.1 + 0.8 * step / 12, 0.1 + 0.8 * (step % 2)) for step in range(13)]]
    made.append(("scribble-zigzag", zigzag))
    fill = [[(0.15 + 0.7 * (step % 2), 0.15 + 0.7 * step / 20) for step in range(21)]]
    made.append(("scribble-fill", fill))
    made.append(("dot", [[(0.5, 0.5)]]))
    return made


def server_answer(server_url: str, png: bytes, route: str = "predict") -> dict:
    """The server's JSON answer to `png` on /api/{route} (predict or read), with the 28x28 views."""
    response = httpx.post(f"{server_url}/api/{route}?image=1", content=png,
                          headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def seen_pixels(base64_png: str | None) -> np.ndarray | None:
    if base64_png is None:
        return None
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(base64_png))).convert("L"), np.int16)


def test_the_static_site_answers_in_the_browser_as_the_server_does(browser, site_url: str,
                                                                  server_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, site_url, problems)
    answerer = page.locator("#answerer")
    expect(answerer).to_have_attribute("data-answerer", "browser")
    expect(answerer).to_have_text(
        "Answers come from this browser (offline); numbers are read without cutting.")
    expect(page.locator("#view-contest")).to_be_hidden()  # the contest needs the server
    compared, kinds, differences = 0, set(), []
    for name, strokes in drawings():
        page.keyboard.press("Escape")
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        draw(page, strokes)
        answered(page)
        here = page.evaluate(READ_HERE)
        there = server_answer(server_url, base64.b64decode(here["png"].split(",", 1)[1]))
        mine = here["answer"]
        kinds.add(there.get("reason") or "digit")
        shown = {"empty": "\u2013", None: str(there["digit"])}.get(there.get("reason"), "?")
        same = (mine["digit"], mine.get("reason")) == (there["digit"], there.get("reason"))
        if not same or here["shown"] != shown:
            differences.append(f"{name}: browser {mine['digit']} {mine.get('reason')} "
                               f"(shown {here['shown']!r}), server {there['digit']} {there.get('reason')}")
        gap = float(np.max(np.abs(np.subtract(mine["probabilities"], there["probabilities"]))))
        if gap > PROBABILITY_TOLERANCE:
            differences.append(f"{name}: probabilities differ by {gap:.2e}")
        seen, expected = seen_pixels(mine.get("image")), seen_pixels(there.get("image"))
        if (seen is None) != (expected is None) or (seen is not None and np.abs(seen - expected).max() > 1):
            differences.append(f"{name}: the 28x28 images differ")
        if name in ("digit-7", "small-4", "edge-8", "pair-31", "scribble-zigzag"):
            snapshot(page, f"static-{name}")
        compared += 1
    assert compared >= 50
    assert not differences, differences
    # Every kind of answer a drawing gets was compared (an empty pad is never sent: the page says so itself).
    assert kinds == {"digit", "several digits", "not a digit"}, kinds
    close_page(page, problems, "static-site")


def test_the_static_site_reads_in_both_modes(browser, site_url: str) -> None:
    """Numbers with the line model (tests/web/test_offline_numbers.py compares them with the server's)."""
    problems: list[str] = []
    page = open_page(browser, site_url, problems)
    page.click("#mode-number")
    draw(page, ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator("#digits li")).to_have_count(1)
    page.click("#mode-digit")
    draw(page, ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    close_page(page, problems, "static-number-mode")


INK_TOLERANCE = 1e-5
INK_HERE = """([rgba, width, height]) => {
  const found = NumbreOffline.inkMap(Uint8ClampedArray.from(rgba), width, height);
  const placed = found.empty ? null : Array.from(NumbreOffline.centerInk(found.ink, found.box));
  return { empty: found.empty, box: found.box, ink: Array.from(found.ink.d), w: found.ink.w, h: found.ink.h,
           placed };
}"""


def photographed(count: int) -> list[tuple[str, bytes]]:
    """Synthesised photos and scans of digits, as made (read at full size or shrunk twice: the grain is
    blurred first, preprocess._smooth) and every third one four times larger (shrunk more: not blurred);
    every fourth written with a pen finer or bolder than MNIST's, which the stroke step thickens or
    thins (preprocess._normalise_stroke)."""
    made = []
    for index in range(count):
        rng = np.random.default_rng((61, index))
        medium = ("photo", "scan")[index % 2]
        if index % 4 == 3:
            writer = random_writer(rng, "train", medium)
            writer = dataclasses.replace(writer, pen=(0.035, 0.3)[index // 4 % 2])
            picture = page_image(digit_ink(index % 10, rng, writer)[0], writer, rng, writer.height)
        else:
            picture, _ = synth_digit(index % 10, rng, split="train", medium=medium)
        opened = Image.fromarray(picture)
        if index % 3 == 2:
            opened = opened.resize((opened.width * 4, opened.height * 4), Image.BILINEAR)
        buffer = io.BytesIO()
        opened.save(buffer, "PNG")
        made.append((f"{('photo', 'scan')[index % 2]}-{index}", buffer.getvalue()))
    return made


def test_the_browser_finds_the_ink_of_photos_and_scans_as_the_server_does(browser, site_url: str) -> None:
    """The photo branch of finding the ink (grain blurred, background levelled, noise measured), pixel
    for pixel: the page reads uploaded pictures as the pad shows them, and small writing on them again
    from the pad's full-resolution pixels, where the grain is blurred away."""
    problems: list[str] = []
    page = open_page(browser, site_url, problems)
    pictures = photographed(24)
    sizes = set()
    for name, png in pictures:
        with Image.open(io.BytesIO(png)) as opened:
            rgba = opened.convert("RGBA")
        width, height = rgba.size
        sizes.add(-(-max(width, height) // OVERVIEW_SIDE) >= GRAIN_AVERAGED)
        mine = page.evaluate(INK_HERE, [list(rgba.tobytes()), width, height])
        found = ink_map(png)
        assert mine["empty"] == found.empty, name
        if found.empty:
            continue
        assert tuple(mine["box"]) == found.box, name
        ink = np.asarray(mine["ink"], np.float32).reshape(mine["h"], mine["w"])
        assert ink.shape == found.ink.shape, name
        # Sums numpy adds pairwise are added in order in the port: the last float32 bits may differ.
        assert np.abs(ink - found.ink).max() <= INK_TOLERANCE, f"{name}: {np.abs(ink - found.ink).max()}"
        placed = np.asarray(mine["placed"], np.float32).reshape(28, 28)
        expected = center_ink(found.ink, box=found.box)
        assert np.abs(placed - expected).max() <= INK_TOLERANCE, f"{name}: {np.abs(placed - expected).max()}"
    assert sizes == {True, False}  # pictures blurred and pictures shrunk enough not to be
    close_page(page, problems, "static-photos")


def test_the_page_keeps_answering_when_its_server_goes(browser, recognizer: Recognizer) -> None:
    problems: list[str] = []
    with contextlib.ExitStack() as running:
        url = running.enter_context(live_server(create_app(recognizer)))
        page = open_page(browser, url, problems)
        answerer = page.locator("#answerer")
        expect(answerer).to_have_attribute("data-answerer", "server")
        expect(answerer).to_have_text("Answers come from the server.")
        # The reader is made in the background while the server is there, under the page's own CSP.
        expect(answerer).to_have_attribute("data-reader", "ready")
        draw(page, ONE)
        answered(page)
        expect(page.locator("#answer")).to_have_text("1")
        snapshot(page, "server-answers")
    # The server has stopped: the next drawing is read in the browser, and the page says so.
    page.keyboard.press("Escape")
    draw(page, glyph(7, np.random.default_rng(7)))
    answered(page)
    expect(page.locator("#answer")).to_have_text("7")
    expect(page.locator("#confidence")).to_contain_text("% sure")
    expect(answerer).to_have_attribute("data-answerer", "browser")
    expect(page.locator("#seen")).to_be_visible()
    close_page(page, problems, "server-gone")
