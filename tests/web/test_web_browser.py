"""The drawing page in a real browser: headless Chromium, driven by Playwright, against the real model.

Digits are drawn with mouse strokes (and one with touch) on the pad, and the tests read what the
page shows. Every wait is on the page's own state: #result's data-state becomes "done" only once
the answer to the latest drawing is shown. Screenshots go to test-artifacts/web/.

Chromium is Debian's (/usr/bin/chromium); Playwright's own browser download is not used.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import playwright.sync_api as playwright_api
import pytest
from PIL import Image

from numbre.data.drawn import drawn_digit, drawn_number, glyph, page_export
from numbre.model.rejection import Rejector
from numbre.reading.images import Pixels, open_image
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from webhelpers import live_server

expect = playwright_api.expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"

# Strokes as fractions of the pad (or of one cell of it): (x, y) with 0 at the top left.
ONE = [[(0.53, 0.12), (0.47, 0.88)]]
ZERO = [[(0.5 + 0.24 * math.cos(step * math.tau / 32 - math.pi / 2),
          0.5 + 0.36 * math.sin(step * math.tau / 32 - math.pi / 2)) for step in range(34)]]
NO_ANSWER = "\u2013"  # the en dash the page shows before there is anything to read


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def base_url(recognizer: Recognizer) -> Iterator[str]:
    with live_server(create_app(recognizer)) as url:
        yield url


@pytest.fixture
def page(browser, base_url: str, request: pytest.FixtureRequest):
    """A fresh page on the app; fails the test on a script or console error or a request elsewhere."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("response", lambda response: problems.append(f"{response.status} for {response.url}")
            if response.status >= 400 and "/api/" not in response.url else None)  # API refusals are tested
    page.on("request", lambda sent: None if sent.url.startswith((base_url, "data:", "blob:"))
            else problems.append(f"request to another origin: {sent.url}"))
    page.goto(base_url)
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    yield page
    snapshot(page, request.node.name)
    context.close()
    assert not problems, problems


def draw(page, strokes, cell: int = 0, cells: int = 1, *, lift: bool = True) -> None:
    """Draw strokes (pad fractions) with the mouse, in cell `cell` of `cells` side-by-side cells."""
    box = page.locator("#pad").bounding_box()
    width = box["width"] / cells
    for stroke in strokes:
        points = [(box["x"] + width * (cell + x), box["y"] + box["height"] * y) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=max(2, 24 // len(points)))
        if lift:
            page.mouse.up()


def answered(page) -> None:
    expect(page.locator("#result")).to_have_attribute("data-state", "done")


def snapshot(page, name: str) -> None:
    """A screenshot in test-artifacts/web/ of a moment the test's own end would not show."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_empty_pad_says_what_to_do(page) -> None:
    expect(page.locator("#message")).to_have_text("Draw a digit in the box.")
    expect(page.locator("#answer")).to_have_text(NO_ANSWER)
    expect(page.locator("#bars li")).to_have_count(10)
    expect(page.locator("#undo")).to_be_disabled()


def test_drawing_a_one_shows_it_with_ten_bars_and_the_network_input(page) -> None:
    draw(page, ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    expect(page.locator("#bars li.best .label")).to_have_text("1")
    expect(page.locator("#confidence")).to_contain_text("% sure")
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator("#seen").evaluate("image => image.complete && image.naturalWidth") == 28
    widths = page.locator("#bars .fill").evaluate_all("bars => bars.map(bar => parseFloat(bar.style.width))")
    assert len(widths) == 10 and 99 <= sum(widths) <= 101 and max(widths) == widths[1]


def test_drawing_a_zero(page) -> None:
    draw(page, ZERO)
    answered(page)
    expect(page.locator("#answer")).to_have_text("0")


def test_the_answer_updates_while_the_pen_is_still_down(page) -> None:
    draw(page, ONE, lift=False)
    answered(page)  # answered before the stroke ends
    expect(page.locator("#answer")).to_have_text("1")
    page.mouse.up()
    answered(page)


def test_undo_and_clear(page) -> None:
    draw(page, ONE)
    answered(page)
    draw(page, [[(0.1, 0.1), (0.9, 0.1)], [(0.1, 0.9), (0.9, 0.9)]])  # two bars: no longer a clear 1
    answered(page)
    snapshot(page, "undo-before")
    page.click("#undo")
    page.click("#undo")
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    page.click("#clear")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(page.locator("#message")).to_have_text("Draw a digit in the box.")
    expect(page.locator("#answer")).to_have_text(NO_ANSWER)
    assert page.locator("#seen").get_attribute("src") is None
    assert page.locator("#pad").evaluate(INK_PIXELS) == 0


def test_something_that_is_not_a_digit_says_so(page, recognizer: Recognizer, monkeypatch) -> None:
    if not recognizer.meta.get("rejection"):
        # A model without a fitted policy rejects nothing; a strict one shows the page's answer.
        monkeypatch.setattr(recognizer, "rejector", Rejector(min_confidence=0.995))
    scribble = [[(0.1 + 0.8 * (step % 2), 0.1 + 0.8 * step / 12) for step in range(13)],
                [(0.1 + 0.8 * step / 12, 0.1 + 0.8 * (step % 2)) for step in range(13)]]
    draw(page, scribble)
    answered(page)
    pad_png = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    expected = recognizer.predict(base64.b64decode(pad_png.split(",", 1)[1]))
    assert expected.reason == "not a digit", f"the scribble was read as {expected}"
    expect(page.locator("#answer")).to_have_text("?")
    expect(page.locator("#message")).to_have_text("That does not look like a digit.")


def test_the_pad_sends_an_opaque_rgba_png(page) -> None:
    """What the benchmarks post as "the page's canvas PNG" (numbre.data.drawn.page_export) is what it sends:
    black ink on white, 8-bit RGBA with every pixel opaque, read on the libspng route."""
    draw(page, ONE)
    answered(page)
    url = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    assert data[24:26] == bytes([8, 6]), "bit depth 8, colour type 6 (RGBA)"
    pixels = open_image(data)
    assert isinstance(pixels, Pixels) and pixels.mode == "RGBA"
    assert pixels.array[..., 3].min() == 255 and pixels.array[0, 0, :3].tolist() == [255, 255, 255]
    ink = 255 - pixels.array[..., 0]
    assert ink.max() == 255
    exported = page_export(np.dstack([np.zeros((*ink.shape, 3), np.uint8), ink]))
    assert np.array_equal(exported, pixels.array), "page_export paints the same ink the page does"


def test_several_digits_in_digit_mode_point_to_number_mode(page) -> None:
    draw(page, ONE, 0, 3)
    draw(page, ZERO, 2, 3)
    answered(page)
    expect(page.locator("#message")).to_contain_text("several digits")


def test_number_mode_reads_the_number_and_boxes_each_digit(page) -> None:
    page.click("#mode-number")
    expect(page.locator("#message")).to_contain_text("Write a number")
    assert page.locator("#pad").evaluate("pad => [pad.width, pad.height]") == [560, 280]
    for cell, strokes in enumerate((ONE, ZERO, ONE)):
        draw(page, strokes, cell, 3)
    answered(page)
    expect(page.locator("#answer")).to_have_text("101")
    expect(page.locator("#digits li")).to_have_count(3)
    expect(page.locator("#digits li .digit")).to_have_text(["1", "0", "1"])
    assert page.locator("#boxes").evaluate(INK_PIXELS) > 0  # the boxes are drawn over the pad
    snapshot(page, "number-mode-101")
    page.click("#clear")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    assert page.locator("#boxes").evaluate(INK_PIXELS) == 0


def photo_jpeg(digits: list[int], seed: int = 0) -> bytes:
    """A synthetic phone photo (numbre.data.drawn's "photo" style) of handwritten digits, as a JPEG."""
    rng = np.random.default_rng(seed)
    glyphs = [glyph(digit, rng) for digit in digits]
    pixels = (drawn_digit(glyphs[0], rng, canvas=640, style="photo") if len(digits) == 1
              else drawn_number(glyphs, rng, style="photo"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_uploading_a_photo_of_a_digit_and_of_a_number(page, tmp_path: Path, recognizer: Recognizer) -> None:
    digit, number = tmp_path / "seven.jpg", tmp_path / "number.jpg"
    digit.write_bytes(photo_jpeg([7]))
    number.write_bytes(photo_jpeg([4, 2, 7]))
    page.set_input_files("#upload", str(digit))
    answered(page)
    expect(page.locator("#answer")).to_have_text(str(recognizer.predict(digit).digit))
    expect(page.locator("#answer")).to_have_text("7")
    snapshot(page, "upload-digit-mode")
    page.click("#mode-number")  # the upload stays, and is now read as a number
    answered(page)
    expect(page.locator("#answer")).to_have_text("7")
    page.set_input_files("#upload", str(number))
    answered(page)
    expect(page.locator("#answer")).to_have_text(recognizer.read(number).number)
    expect(page.locator("#answer")).to_have_text("427")
    expect(page.locator("#digits li")).to_have_count(3)
    assert page.locator("#boxes").evaluate(INK_PIXELS) > 0  # boxes drawn over the photo, scaled to fit


def test_uploading_something_that_is_not_an_image_shows_the_servers_reason(page, tmp_path: Path) -> None:
    document = tmp_path / "scan.pdf"
    document.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    page.set_input_files("#upload", str(document))
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#message")).to_contain_text("PDF")
    draw(page, ONE)  # drawing replaces the upload
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")


def test_a_phone_draws_with_a_finger(browser, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(base_url)
        box = page.locator("#pad").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # the pad fits the screen
        touch = context.new_cdp_session(page)
        points = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y)
                  for x, y in ((0.52, 0.12 + 0.76 * step / 12) for step in range(13))]
        for index, (x, y) in enumerate(points):
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove" if index else "touchStart",
                                                    "touchPoints": [{"x": x, "y": y}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        answered(page)
        expect(page.locator("#answer")).to_have_text("1")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        snapshot(page, "test_a_phone_draws_with_a_finger")
    finally:
        context.close()


INK_PIXELS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && data[i] < 128) count++;
  return count;
}"""
