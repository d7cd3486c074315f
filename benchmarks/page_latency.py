"""How long the drawing page takes from pen-up to the final answer, in a real Chromium.

A real `numbre serve` answers; Debian's Chromium (through Playwright) draws digits on the pad with
real pointer events (page.mouse down, moves, up), one digit (digit mode) or two to four side by side
(number mode), from the stroke font numbre's synthetic digits are drawn with, each a little slanted,
stretched and shaken. The time is taken inside the page with performance.now(): from the last
`pointerup` (seen on the window in the capture phase, before the page's own handler) to the moment
#result's data-state becomes "done", which the page sets only once the answer to the finished drawing
is in the DOM (a MutationObserver sees it at once). "next frame" adds the wait for the frame that
paints it (requestAnimationFrame). The pad is cleared with Esc between drawings.

"headed" is Chromium with a window, on an Xvfb display this script starts (closest to a desktop);
"headless" is Chromium's headless mode. `--static DIR` serves the page's files (index.html, app.js,
contest.js, style.css) from DIR instead of the package, keeping the server's headers (its
Content-Security-Policy included), so an older page can be measured against the same server (e4f6ace:
the page before the encoding fix):

    mkdir -p /tmp/page-before && for f in index.html app.js contest.js style.css; do
        git show e4f6ace:src/numbre/web/static/$f > /tmp/page-before/$f; done
    python benchmarks/page_latency.py --static /tmp/page-before

"--answerers browser" measures the page reading in the browser (static/offline.js, onnxruntime-web's
WebAssembly backend): the page as `numbre export --web` writes it, served by a plain http.server, so no
request leaves the browser. In number mode it reads the line with the line model alone (line-model.onnx;
the server also cuts a line it is unsure of into digits).

Target: median at most 100 ms and 95th percentile at most 200 ms, headed, in both modes.

Run:  python benchmarks/page_latency.py [--drawings 50] [--browsers headed headless] [--modes digit number]
                                        [--answerers server browser]
Needs: Debian's chromium and xvfb, Playwright for Python (the dev extra).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from numbre.data.drawn import STROKE_FONT as FONT  # the stroke font numbre's synthetic digits are drawn from
from xvfb import xvfb_display  # a sibling module: the benchmarks run as scripts from this folder

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_MEDIAN_MS, TARGET_P95_MS = 100.0, 200.0
STATIC_FILES = ("index.html", "app.js", "contest.js", "style.css")

# Runs in the page before its own scripts (Playwright's init script, not subject to the page's CSP).
PROBE = """
window.__latency = { up: null, times: [], frames: [], answers: [], token: 0 };
addEventListener("pointerup", () => { window.__latency.up = performance.now(); }, true);
addEventListener("DOMContentLoaded", () => {
  const result = document.getElementById("result"), probe = window.__latency;
  new MutationObserver(() => {
    if (result.dataset.state !== "done" || probe.up === null) return;
    const up = probe.up, shown = performance.now();
    probe.up = null;
    probe.times.push(shown - up);
    probe.answers.push(document.getElementById("answer").textContent);
    const token = probe.token;   // a frame that lands after the next reset is not this answer's
    requestAnimationFrame(() => { if (probe.token === token) probe.frames.push(performance.now() - up); });
  }).observe(result, { attributes: true, attributeFilter: ["data-state"] });
});
"""


@contextlib.contextmanager
def numbre_serve(folder: Path) -> Iterator[str]:
    """`numbre serve --port 0` with the shipped model, in its own process; yields its base URL."""
    log_path = folder / "serve.log"
    command = [sys.executable, "-m", "numbre", "serve", "--port", "0", "--no-access-log"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while (found := re.search(r"Uvicorn running on (http://\S+) ", log_path.read_text())) is None:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"page_latency: numbre serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        while True:
            try:
                httpx.get(f"{found[1]}/api/ready", timeout=10).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield found[1]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def glyph_strokes(digit: int, rng: np.random.Generator, left: float, width: float) -> list[list[tuple]]:
    """One digit's strokes as pad fractions, in the cell [left, left + width) of the pad's width."""
    slant, stretch = rng.uniform(-0.2, 0.2), rng.uniform(0.85, 1.1)
    height = rng.uniform(0.6, 0.72)
    top = rng.uniform(0.12, 0.9 - height)
    across = min(0.55, width * 0.8 / 0.7)  # the font's box is 0.7 wide and 1 tall
    strokes = []
    for line in FONT[digit]:
        points = np.asarray(line, np.float64) + rng.normal(0.0, 0.012, size=(len(line), 2))
        x = left + width / 2 + ((points[:, 0] - 0.35) * stretch + slant * (0.5 - points[:, 1])) * across
        y = top + points[:, 1] * height
        strokes.append(list(zip(x.tolist(), y.tolist(), strict=True)))
    return strokes


def draw(page, strokes: list[list[tuple]], pause_ms: float) -> None:
    """Real pointer events: down, moves with a pause between them (a person's pace), up."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=max(1, 24 // len(points)))
            page.wait_for_timeout(pause_ms)
        page.mouse.up()


# Waits in the page for the probe's first frame (page.wait_for_function evaluates strings, which the
# page's CSP forbids).
ANSWERED = """() => new Promise((resolve, reject) => {
  const started = performance.now();
  const check = () => window.__latency.frames.length ? resolve()
    : performance.now() - started > 30000 ? reject(new Error("no answer in 30 s")) : setTimeout(check, 20);
  check();
})"""


def run_mode(page, mode: str, drawings: int, seed: int) -> tuple[list[float], list[float], int]:
    """(pen-up to answer times in ms, to the next frame in ms, answers that matched) over `drawings`."""
    from playwright.sync_api import expect

    rng = np.random.default_rng(seed)
    page.click("#mode-number" if mode == "number" else "#mode-digit")
    times, frames, right = [], [], 0
    for index in range(drawings + 1):  # the first is a warm-up, not counted
        page.keyboard.press("Escape")
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        count = 1 if mode == "digit" else int(rng.integers(2, 5))
        digits = [int(digit) for digit in rng.integers(0, 10, size=count)]
        width = 1 / count if mode == "number" else 1.0
        strokes = [stroke for cell, digit in enumerate(digits)
                   for stroke in glyph_strokes(digit, rng, cell * width, width)]
        draw(page, strokes[:-1], pause_ms=8)
        # Only the last pen-up counts: an answer to the strokes before it may still land now.
        page.evaluate("() => { const probe = window.__latency; probe.up = null; probe.times = []; "
                      "probe.frames = []; probe.answers = []; probe.token += 1; }")
        draw(page, strokes[-1:], pause_ms=8)
        page.evaluate(ANSWERED)
        probe = page.evaluate("window.__latency")
        if index:
            times.append(probe["times"][0])
            frames.append(probe["frames"][0])
            right += probe["answers"][0] == "".join(map(str, digits))
    return times, frames, right


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def serve_static(context, static: Path) -> None:
    """Answer the page's own files from `static`, keeping the server's headers (its CSP)."""
    for name in STATIC_FILES:
        if not (static / name).is_file():
            raise SystemExit(f"page_latency: {static / name} is missing")

    def fulfil(route) -> None:
        path = route.request.url.split("?", 1)[0].rsplit("/", 1)[-1] or "index.html"
        response = route.fetch()
        route.fulfill(response=response, body=(static / path).read_bytes())

    context.route(re.compile(r"^http://[^/]+/(static/[a-z]+\.(js|css))?$"), fulfil)


@contextlib.contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """`numbre export --web` into `folder`, served by a plain http.server in a thread; yields its URL."""
    import functools
    import http.server
    import threading

    site = folder / "site"
    subprocess.run([sys.executable, "-m", "numbre", "export", "--web", str(site)], check=True,
                   stdout=subprocess.DEVNULL)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # the base class's signature
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def measure(base_url: str, headed: bool, modes: list[str], drawings: int, static: Path | None,
            in_browser: bool = False) -> dict:
    import playwright.sync_api as playwright_api

    display = xvfb_display("page_latency") if headed else contextlib.nullcontext(None)
    rows = {}
    with display as number, playwright_api.sync_playwright() as playwright:
        environment = {**os.environ, "DISPLAY": number} if number else None
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=not headed, env=environment,
            args=CHROMIUM_ARGS if headed else ["--headless", *CHROMIUM_ARGS])
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 800})
            context.add_init_script(PROBE)
            if static is not None:
                serve_static(context, static)
            page = context.new_page()
            page.goto(base_url)
            if in_browser:  # the model and runtime load before the first drawing, as they do on a real visit
                page.locator('#answerer[data-reader="ready"]').wait_for(timeout=120_000)
            for seed, mode in enumerate(modes):
                rows[mode] = run_mode(page, mode, drawings, seed)
            context.close()
        finally:
            browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawings", type=int, default=50, help="counted drawings per mode (default: 50)")
    parser.add_argument("--browsers", nargs="+", choices=("headed", "headless"),
                        default=["headed", "headless"],
                        help="Chromium with a window on Xvfb, headless, or both (default: both)")
    parser.add_argument("--modes", nargs="+", choices=("digit", "number"), default=["digit", "number"],
                        help="the page's modes to draw in (default: both)")
    parser.add_argument("--static", type=Path, help="serve the page's files from this folder (default: the "
                                                    "package's)")
    parser.add_argument("--label", default="", help="a name for this page in the table (default: the folder)")
    parser.add_argument("--answerers", nargs="+", choices=("server", "browser"), default=["server"],
                        help="who reads the drawings: numbre serve, or the browser itself on the static site "
                             "(default: server)")
    args = parser.parse_args()
    if shutil.which(CHROMIUM) is None:
        raise SystemExit(f"page_latency: needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    label = args.label or (str(args.static) if args.static else "package")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for answerer in args.answerers:
            in_browser = answerer == "browser"
            serving = static_site(Path(folder)) if in_browser else numbre_serve(Path(folder))
            with serving as base_url:
                for browser in args.browsers:
                    results[browser, answerer] = measure(base_url, browser == "headed", args.modes,
                                                         args.drawings, None if in_browser else args.static,
                                                         in_browser)
    print(f"# pen-up to final answer, {args.drawings} drawings per row, page: {label}, "
          f"{os.cpu_count()} cores")
    print("| browser | answers from | mode | median | p95 | max | next frame, median | read right "
          "| target met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (browser, answerer), rows in results.items():
        for mode, (times, frames, right) in rows.items():
            median, p95 = statistics.median(times), percentile(times, 0.95)
            met = median <= TARGET_MEDIAN_MS and p95 <= TARGET_P95_MS
            print(f"| {browser} | {answerer} | {mode} | {median:.0f} ms | {p95:.0f} ms | "
                  f"{max(times):.0f} ms | {statistics.median(frames):.0f} ms | {right}/{len(times)} | "
                  f"{'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
