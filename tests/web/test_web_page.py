"""The drawing page as people use it: no stale or broken states, touch, keyboard, screen readers, contrast.

A real `numbre serve` (a separate process, the shipped model, the real Content-Security-Policy) and
Debian's headless Chromium through Playwright. Every page fails its test on a script error, a console
error or a Content-Security-Policy violation. Screenshots of each state go to test-artifacts/web/.
Timing lives in benchmarks/page_latency.py, not here.
"""

from __future__ import annotations

import base64
import io
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import playwright.sync_api as playwright_api
import pytest
from PIL import Image

from apphelpers import running_server
from numbre.insight.contest import load_contest_set
from numbre.web.contest import CONTEST_FOLDER
from webhelpers import strokes_png

expect = playwright_api.expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
FORMATS = "(PNG, JPEG, GIF, BMP, TIFF or WebP)"

# Strokes as fractions of the pad: (x, y) with 0 at the top left.
ONE = [[(0.53, 0.12), (0.47, 0.88)]]
EIGHT = [[(0.5 + 0.17 * math.sin(step * math.tau / 24), 0.3 - 0.17 * math.cos(step * math.tau / 24))
          for step in range(25)],
         [(0.5 + 0.21 * math.sin(step * math.tau / 24), 0.66 + 0.21 * math.cos(step * math.tau / 24))
          for step in range(25)]]

# Before the page's scripts: counts canvas.toBlob calls, keeps the image bodies the page posts (Playwright
# does not see a Blob body), records what #announce says and every Content-Security-Policy violation
# (Playwright's init scripts are not subject to the page's CSP).
PROBE = """
window.__probe = { toBlob: 0, bodies: [], announced: [], violations: [] };
const originalToBlob = HTMLCanvasElement.prototype.toBlob;
HTMLCanvasElement.prototype.toBlob = function (...args) {
  window.__probe.toBlob += 1;
  return originalToBlob.apply(this, args);
};
const originalFetch = window.fetch;
window.fetch = function (url, init = {}) {
  if (init.body instanceof Blob) {
    const body = { url: String(url), type: init.body.type, bytes: null };
    window.__probe.bodies.push(body);
    init.body.arrayBuffer().then((buffer) => { body.bytes = Array.from(new Uint8Array(buffer)); });
  }
  return originalFetch.call(this, url, init);
};
document.addEventListener("securitypolicyviolation",
  (event) => window.__probe.violations.push(`${event.violatedDirective} ${event.blockedURI}`));
addEventListener("DOMContentLoaded", () => {
  const region = document.getElementById("announce");
  if (!region) return;
  new MutationObserver(() => { if (region.textContent) window.__probe.announced.push(region.textContent); })
    .observe(region, { childList: true, characterData: true, subtree: true });
});
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server([sys.executable, "-m", "numbre"], tmp_path_factory.mktemp("serve")) as url:
        yield url


def open_page(browser, base_url: str, problems: list[str], *, scheme: str = "light", touch: bool = False,
              height: int = 800, axe: bool = False):
    """A page on the app, with PROBE, that lists script and console errors and foreign requests in
    `problems`. `axe` loads axe-core first, as an init script: the page's CSP refuses inline scripts,
    which is what page.add_script_tag adds."""
    options = dict(viewport={"width": 1000, "height": height}, color_scheme=scheme)
    if touch:
        options = dict(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True,
                       has_touch=True, color_scheme=scheme)
    context = browser.new_context(**options)
    context.set_default_timeout(10_000)
    context.add_init_script(PROBE)
    if axe:
        context.add_init_script(path=AXE)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("request", lambda sent: None if sent.url.startswith((base_url, "data:", "blob:"))
            else problems.append(f"request to another origin: {sent.url}"))
    page.goto(base_url)
    return page


def checked_page(browser, base_url: str, name: str) -> Iterator:
    """The body of a `page` fixture: an empty page on the app for one test, then its screenshot
    (`name`), and a failure for any problem `open_page` recorded or CSP violation the probe saw."""
    problems: list[str] = []
    page = open_page(browser, base_url, problems)
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    yield page
    snapshot(page, name)
    problems += page.evaluate("window.__probe.violations")
    page.context.close()
    assert not problems, problems


@pytest.fixture
def page(browser, base_url: str, request: pytest.FixtureRequest):
    yield from checked_page(browser, base_url, request.node.name)


def snapshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)


def draw(page, strokes, cell: int = 0, cells: int = 1, *, lift: bool = True, steps: int = 24) -> None:
    """Draw strokes (pad fractions) with the mouse, in cell `cell` of `cells` side-by-side cells."""
    box = page.locator("#pad").bounding_box()
    width = box["width"] / cells
    for stroke in strokes:
        points = [(box["x"] + width * (cell + x), box["y"] + box["height"] * y) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=max(2, steps // len(points)))
        if lift:
            page.mouse.up()


def answered(page) -> None:
    expect(page.locator("#result")).to_have_attribute("data-state", "done")


def no_broken_images(page) -> None:
    """Every <img> on screen has loaded pixels: none shows the broken-image icon."""
    broken = page.evaluate("""() => [...document.images]
        .filter((image) => image.getClientRects().length && !(image.complete && image.naturalWidth))
        .map((image) => image.id || image.alt)""")
    assert broken == [], f"images on screen without pixels: {broken}"


def ink_pixels(page, region: tuple[float, float, float, float] = (0, 0, 1, 1)) -> int:
    """Dark pixels on the pad inside `region` (x0, y0, x1, y1 as pad fractions)."""
    return page.locator("#pad").evaluate("""(pad, [x0, y0, x1, y1]) => {
      const left = Math.round(x0 * pad.width), top = Math.round(y0 * pad.height);
      const data = pad.getContext('2d').getImageData(left, top, Math.round(x1 * pad.width) - left,
                                                     Math.round(y1 * pad.height) - top).data;
      let count = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] < 128) count++;
      return count;
    }""", list(region))


def bar_widths(page) -> list[float]:
    return page.locator("#bars .fill").evaluate_all(
        "bars => bars.map(bar => parseFloat(bar.style.width) || 0)")


# --- 1. instant and correct ---------------------------------------------------------------------

def test_the_pen_up_request_carries_the_pad_png_without_to_blob(page) -> None:
    """toBlob's callback waits for an idle browser (about a second in a desktop Chromium); the page
    encodes with toDataURL at once, and what it sends is exactly the pad's PNG."""
    draw(page, ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    pad_png = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    last = page.evaluate("window.__probe.bodies.at(-1)")
    assert last["url"] == "/api/predict?image=1" and last["type"] == "image/png"
    assert bytes(last["bytes"]) == base64.b64decode(pad_png.split(",", 1)[1])
    assert page.evaluate("window.__probe.toBlob") == 0


def test_what_the_network_saw_has_a_placeholder_before_drawing_and_after_clear(page) -> None:
    placeholder, seen = page.locator("#seen-empty"), page.locator("#seen")
    expect(placeholder).to_be_visible()
    expect(placeholder).to_have_text("nothing yet")
    expect(seen).to_be_hidden()
    no_broken_images(page)
    snapshot(page, "placeholder-empty")
    draw(page, ONE)
    answered(page)
    expect(seen).to_be_visible()
    expect(placeholder).to_be_hidden()
    assert seen.evaluate("image => image.complete && image.naturalWidth") == 28
    no_broken_images(page)
    page.click("#clear")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(placeholder).to_be_visible()
    expect(seen).to_be_hidden()
    no_broken_images(page)
    snapshot(page, "placeholder-after-clear")


def test_an_error_clears_the_previous_answer(page, tmp_path: Path) -> None:
    draw(page, ONE)
    answered(page)
    expect(page.locator("#bars li.best")).to_have_count(1)
    document = tmp_path / "scan.pdf"
    document.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    page.set_input_files("#upload", str(document))
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#answer")).to_have_text("!")
    expect(page.locator("#confidence")).to_have_text("")
    expect(page.locator("#bars li.best")).to_have_count(0)
    assert bar_widths(page) == [0.0] * 10
    expect(page.locator("#seen")).to_be_hidden()
    expect(page.locator("#seen-empty")).to_be_visible()
    no_broken_images(page)
    snapshot(page, "error-after-a-digit")

    page.click("#mode-number")  # number mode: the digits read and their boxes go too
    for cell, strokes in enumerate((ONE, ONE)):
        draw(page, strokes, cell, 2)
    answered(page)
    expect(page.locator("#digits li")).to_have_count(2)
    page.set_input_files("#upload", str(document))
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#digits li")).to_have_count(0)
    assert page.locator("#boxes").evaluate(
        "boxes => boxes.getContext('2d').getImageData(0, 0, boxes.width, boxes.height).data.some(v => v)"
    ) is False


NOT_READ = f"not an image this page can read {FORMATS}."


@pytest.mark.parametrize(("name", "content", "message"), [
    ("scan.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", f"That file is a PDF document, {NOT_READ}"),
    ("notes.txt", b"seven, written out\n", f"That file is text, {NOT_READ}"),
    ("archive.zip", b"PK\x03\x04" + bytes(64), f"That file is a ZIP archive, {NOT_READ}"),
    ("cut.png", strokes_png([[(150, 40), (140, 240)]])[:200],
     "That image is damaged or incomplete. Save it again as PNG or JPEG and upload that."),
], ids=["pdf", "text", "zip", "truncated-png"])
def test_refusals_speak_to_someone_on_the_page(page, tmp_path: Path, name: str, content: bytes,
                                                message: str) -> None:
    upload = tmp_path / name
    upload.write_bytes(content)
    with page.expect_response("**/api/predict?image=1") as refusal:
        page.set_input_files("#upload", str(upload))
    assert refusal.value.status in (415, 422)
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#message")).to_have_text(message)
    assert message != refusal.value.json()["error"]  # the server's words are an API client's


def test_the_server_refusing_a_large_upload_is_said_for_the_page(page, base_url: str) -> None:
    """The server's own 413 text, turned into the page's words by the page's own mapping."""
    refusal = httpx.post(f"{base_url}/api/predict", content=bytes(9_000_000),
                         headers={"Content-Type": "image/png"}, timeout=30)
    assert refusal.status_code == 413
    said = page.evaluate("([status, error]) => pageMessage(status, error)",
                         [refusal.status_code, refusal.json()["error"]])
    assert said == "That file is too large for this server. Crop or shrink the picture to the digits first."


def touch(cdp, kind: str, points: list[dict]) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def test_a_second_finger_never_draws_a_line_to_the_first(browser, base_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, base_url, problems, touch=True)
    try:
        box = page.locator("#pad").bounding_box()
        at = lambda x, y, finger: {"x": box["x"] + box["width"] * x, "y": box["y"] + box["height"] * y,  # noqa: E731
                                   "id": finger}
        cdp = page.context.new_cdp_session(page)
        touch(cdp, "touchStart", [at(0.2, 0.15, 1)])
        for step in range(1, 7):
            touch(cdp, "touchMove", [at(0.2, 0.15 + 0.05 * step, 1)])
        touch(cdp, "touchStart", [at(0.2, 0.45, 1), at(0.8, 0.5, 2)])  # a second finger lands
        for step in range(1, 7):  # both move: the first keeps drawing, the second must not
            touch(cdp, "touchMove", [at(0.2, 0.45 + 0.06 * step, 1),
                                     at(0.8 - 0.03 * step, 0.5 + 0.04 * step, 2)])
        touch(cdp, "touchEnd", [at(0.2, 0.81, 1)])  # the second finger lifts
        touch(cdp, "touchEnd", [])
        answered(page)
        expect(page.locator("#answer")).to_have_text("1")
        assert ink_pixels(page, (0.1, 0.1, 0.3, 0.9)) > 1000  # the first finger's stroke
        assert ink_pixels(page, (0.35, 0, 1, 1)) == 0  # nothing from the second, no line between them
        snapshot(page, "two-fingers")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert not problems, problems


def test_a_palm_does_not_draw(browser, base_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, base_url, problems, touch=True)
    try:
        box = page.locator("#pad").bounding_box()
        cdp = page.context.new_cdp_session(page)
        palm = lambda x, y: {"x": box["x"] + box["width"] * x, "y": box["y"] + box["height"] * y,  # noqa: E731
                             "id": 5, "radiusX": 70, "radiusY": 90}
        touch(cdp, "touchStart", [palm(0.7, 0.6)])
        for step in range(1, 8):
            touch(cdp, "touchMove", [palm(0.7 - 0.05 * step, 0.6 + 0.02 * step)])
        touch(cdp, "touchEnd", [])
        assert ink_pixels(page) == 0
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        # A fingertip that flattens into a palm mid-stroke leaves no ink either.
        finger = lambda y, radius: {"x": box["x"] + box["width"] * 0.5, "y": box["y"] + box["height"] * y,  # noqa: E731
                                    "id": 6, "radiusX": radius, "radiusY": radius}
        touch(cdp, "touchStart", [finger(0.2, 4)])
        touch(cdp, "touchMove", [finger(0.3, 4)])
        touch(cdp, "touchMove", [finger(0.4, 80)])
        touch(cdp, "touchMove", [finger(0.5, 80)])
        touch(cdp, "touchEnd", [])
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        assert ink_pixels(page) == 0
        snapshot(page, "palm")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert not problems, problems


def test_it_is_an_8_and_a_1(page) -> None:
    draw(page, EIGHT)
    answered(page)
    expect(page.locator("#answer")).to_have_text("8")
    expect(page.locator("#announce")).to_have_text(re.compile(r"^It is an 8, \d+\.\d% sure\.$"))
    page.keyboard.press("Escape")
    draw(page, ONE)
    answered(page)
    expect(page.locator("#announce")).to_have_text(re.compile(r"^It is a 1, \d+\.\d% sure\.$"))


def test_the_contest_says_an_8(page, base_url: str) -> None:
    labels = load_contest_set(CONTEST_FOLDER).labels
    for _ in range(30):  # each round is a sample of the set; play rounds until one holds an 8
        with page.expect_response(re.compile(r".*/api/contest\?count=\d+$")) as round_response:
            if page.locator("#contest-view").is_hidden():
                page.click("#view-contest")
            else:
                page.click("#contest-restart")
        digits = round_response.value.json()["digits"]
        if 8 in [int(labels[digit["id"]]) for digit in digits]:
            break
    else:
        pytest.fail("no contest round held an 8")
    view = page.locator("#contest-view")
    for digit in digits:
        expect(view).to_have_attribute("data-state", "asking")
        page.fill("#contest-guess", "8")
        page.keyboard.press("Enter")
        truth = int(labels[digit["id"]])
        expect(page.locator("#contest-truth")).to_have_text(f"It is {'an' if truth == 8 else 'a'} {truth}.")
        if truth == 8:
            snapshot(page, "contest-an-8")
            return
        page.click("#contest-next")


# --- 2. keyboard, screen readers, contrast --------------------------------------------------------

def ring_target(page):
    """The focused element, or the label drawn for it when it is invisible (the file input)."""
    return page.evaluate_handle("""() => {
      const focused = document.activeElement;
      return focused.id === 'upload' ? document.querySelector('label[for=upload]') : focused;
    }""")


def changed_pixels(before: Image.Image, after: Image.Image, box: dict) -> int:
    clip = tuple(round(value) for value in (box["x"] - 6, box["y"] - 6, box["x"] + box["width"] + 6,
                                            box["y"] + box["height"] + 6))
    difference = np.abs(np.asarray(before.crop(clip), np.int16) - np.asarray(after.crop(clip), np.int16))
    return int((difference.max(axis=2) > 40).sum())


def screenshot(page) -> Image.Image:
    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_control_shows_a_focus_ring(browser, base_url: str, scheme: str) -> None:
    """Tab through every control: each one's look changes around it when it has the focus."""
    problems: list[str] = []
    page = open_page(browser, base_url, problems, scheme=scheme, height=1400)  # no scrolling while tabbing
    try:
        draw(page, ONE)  # Undo and Clear take the focus only once there is something to undo
        answered(page)
        page.click("h1")  # Tab starts from the top of the page
        page.mouse.move(0, 0)
        page.wait_for_timeout(300)  # the bars' 120 ms transition has ended
        resting = screenshot(page)
        seen, unringed = [], []
        for _ in range(20):
            page.keyboard.press("Tab")
            focused = page.evaluate("""() => document.activeElement === document.body ? ""
                : document.activeElement.id || document.activeElement.textContent.trim()""")
            if not focused or focused in seen:
                break
            seen.append(focused)
            box = ring_target(page).bounding_box()
            if changed_pixels(resting, screenshot(page), box) < 2 * (box["width"] + box["height"]):
                unringed.append(focused)
            if focused == "upload":
                snapshot(page, f"focus-upload-{scheme}")
        assert {"mode-digit", "mode-number", "undo", "clear", "upload", "show-saliency"} <= set(seen), seen
        assert unringed == [], f"no visible focus ring on {unringed}"
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert not problems, problems


@pytest.mark.parametrize("button", ["clear", "undo"])
def test_the_focus_stays_on_a_control_when_its_button_empties_the_pad(page, button: str) -> None:
    draw(page, ONE)
    answered(page)
    page.focus(f"#{button}")
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(page.locator(f"#{button}")).to_be_disabled()
    after = "#redo" if button == "undo" else "#upload"  # Redo can put back what Undo took; Clear is final
    expect(page.locator(after)).to_be_focused()  # the next control along, not the page's body
    page.keyboard.press("Shift+Tab")  # and the keyboard carries on from there
    expect(page.locator("#mode-number")).to_be_focused()


def test_the_live_region_announces_the_final_answer_once(page) -> None:
    live = page.evaluate("""() => [...document.querySelectorAll(
          '[aria-live], [role=status], [role=alert], output')]
        .filter((region) => region.getAttribute('aria-live') !== 'off').map((region) => region.id)""")
    assert "announce" in live
    for noisy in ("bars", "answer", "digits"):  # what changes while the pen moves is in no live region
        assert page.locator(f"#{noisy}").evaluate("""(element) => !element.closest(
            '[aria-live]:not([aria-live=off]), [role=status], [role=alert], output')""")
    draw(page, ONE, lift=False, steps=60)
    answered(page)  # answers shown while the pen is down
    box = page.locator("#pad").bounding_box()
    for step in range(8):  # keep drawing: more answers, still nothing said
        page.mouse.move(box["x"] + box["width"] * 0.47, box["y"] + box["height"] * (0.88 - 0.01 * step))
        page.wait_for_timeout(120)
    answered(page)
    assert page.evaluate("window.__probe.announced") == []
    page.mouse.up()
    answered(page)
    expect(page.locator("#announce")).to_have_text(re.compile(r"^It is a 1, "))
    page.wait_for_timeout(600)  # three throttle periods: nothing more arrives
    assert len(page.evaluate("window.__probe.announced")) == 1


def axe_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is, as readable lines."""
    found = page.evaluate("""async () => {
      const results = await axe.run(document, { resultTypes: ['violations'] });
      return results.violations.filter((rule) => ['serious', 'critical'].includes(rule.impact))
        .map((rule) => `${rule.id} (${rule.impact}): ` + rule.nodes.map((node) => node.target.join(' ')
          + ' ' + (node.any.map((check) => check.message).join('; '))).join(' | '));
    }""")
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious(browser, base_url: str, tmp_path: Path, scheme: str) -> None:
    """axe-core (vendored from npm, tests/vendor/axe-core) in every state of the page, light and dark:
    no serious or critical violation, colour contrast (WCAG AA 4.5:1) included."""
    problems: list[str] = []
    page = open_page(browser, base_url, problems, scheme=scheme, axe=True)
    try:
        assert page.evaluate("typeof axe.run") == "function"
        found = {"empty": axe_violations(page)}
        draw(page, ONE)
        answered(page)
        found["a digit read"] = axe_violations(page)
        document = tmp_path / "scan.pdf"
        document.write_bytes(b"%PDF-1.7\n")
        page.set_input_files("#upload", str(document))
        expect(page.locator("#result")).to_have_attribute("data-state", "error")
        found["an error"] = axe_violations(page)
        page.click("#mode-number")
        for cell, strokes in enumerate((ONE, ONE)):
            draw(page, strokes, cell, 2)
        answered(page)
        found["a number read"] = axe_violations(page)
        snapshot(page, f"axe-number-{scheme}")
        page.click("#view-contest")
        expect(page.locator("#contest-view")).to_have_attribute("data-state", "asking")
        found["the contest"] = axe_violations(page)
        snapshot(page, f"axe-contest-{scheme}")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert {state: lines for state, lines in found.items() if lines} == {}
    assert not problems, problems


def test_dark_mode_follows_the_system(browser, base_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, base_url, problems, scheme="dark")
    try:
        draw(page, ONE)
        answered(page)
        colours = page.evaluate("""() => {
          const style = getComputedStyle(document.documentElement);
          const result = getComputedStyle(document.getElementById('result'));
          return [style.backgroundColor, style.color, result.backgroundColor];
        }""")
        channels = [[int(value) for value in re.findall(r"\d+", colour)[:3]] for colour in colours]
        assert max(channels[0]) < 60 and min(channels[1]) > 200 and max(channels[2]) < 60, colours
        corner = page.locator("#pad").evaluate(
            "pad => [...pad.getContext('2d').getImageData(2, 2, 1, 1).data]")
        assert corner == [255, 255, 255, 255]  # the paper the network reads stays white
        snapshot(page, "dark-mode")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert not problems, problems
