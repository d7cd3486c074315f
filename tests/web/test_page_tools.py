"""The drawing page's pen tools: brush size, eraser, undo and redo (buttons and keys), download as PNG.

A real `numbre serve` (corrections off, its default) and Debian's headless Chromium, with the page
helpers of test_web_page.py: every page fails its test on a script or console error or a
Content-Security-Policy violation. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import playwright.sync_api as playwright_api
import pytest
from PIL import Image
from test_web_page import ONE, answered, axe_violations, checked_page, draw, ink_pixels, open_page, snapshot

from apphelpers import running_server

expect = playwright_api.expect
FLAG = [[(0.2, 0.14), (0.53, 0.12)]]  # drawn onto ONE, it makes a 7
ACROSS = [[(0.1, 0.5), (0.9, 0.5)]]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server([sys.executable, "-m", "numbre"], tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.fixture
def page(browser, base_url: str, request: pytest.FixtureRequest):
    yield from checked_page(browser, base_url, request.node.name)


def pad_pixels(page) -> np.ndarray:
    """The pad's pixels as (H, W) grey, read from the canvas."""
    data = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("L"))


def thickness(page, column: float = 0.5) -> int:
    """Dark pixels down one column of the pad: the width of a horizontal stroke crossing it."""
    pixels = pad_pixels(page)
    return int((pixels[:, round(column * pixels.shape[1])] < 128).sum())


def test_the_brush_size_sets_the_width_of_new_strokes(page) -> None:
    expect(page.locator("#brush-size")).to_have_text("18 px")
    draw(page, [[(0.1, 0.3), (0.9, 0.3)]])
    thin = thickness(page)
    page.locator("#brush").fill("40")
    expect(page.locator("#brush-size")).to_have_text("40 px")
    draw(page, [[(0.1, 0.7), (0.9, 0.7)]])
    answered(page)
    pixels = pad_pixels(page)
    upper = int((pixels[:140, 140] < 128).sum())
    lower = int((pixels[140:, 140] < 128).sum())
    assert abs(thin - 18) <= 3 and upper == thin  # the first stroke keeps its width
    assert abs(lower - 40) <= 3
    page.click("#undo")
    page.click("#redo")   # a stroke brought back keeps its own width too
    assert int((pad_pixels(page)[140:, 140] < 128).sum()) == lower
    snapshot(page, "tools-brush-sizes")


def test_the_eraser_rubs_out_ink_and_the_server_reads_what_is_left(page) -> None:
    draw(page, ONE)
    answered(page)
    before = ink_pixels(page, (0.3, 0.45, 0.7, 0.55))
    assert before > 100
    page.click("#eraser")
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#pad-frame")).to_have_attribute("data-tool", "eraser")
    page.locator("#brush").fill("40")
    draw(page, ACROSS)
    answered(page)
    assert ink_pixels(page, (0.3, 0.45, 0.7, 0.55)) == 0
    assert ink_pixels(page, (0.3, 0.1, 0.7, 0.3)) > 100  # the rest of the 1 is still there
    sent = page.evaluate("window.__probe.bodies.at(-1)")
    pad_png = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    assert bytes(sent["bytes"]) == base64.b64decode(pad_png.split(",", 1)[1])  # what was erased is not sent
    snapshot(page, "tools-eraser")
    page.keyboard.press("Control+z")   # undoing the eraser stroke brings the ink back
    answered(page)
    assert ink_pixels(page, (0.3, 0.45, 0.7, 0.55)) == before
    page.click("#eraser")
    expect(page.locator("#eraser")).to_have_attribute("aria-pressed", "false")


def test_undo_and_redo_with_buttons_and_keys(page) -> None:
    undo, redo = page.locator("#undo"), page.locator("#redo")
    expect(redo).to_be_disabled()
    draw(page, ONE)
    draw(page, FLAG)
    answered(page)
    expect(page.locator("#answer")).to_have_text("7")
    page.click("#undo")
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    expect(redo).to_be_enabled()
    page.click("#redo")
    answered(page)
    expect(page.locator("#answer")).to_have_text("7")
    expect(redo).to_be_disabled()
    for undo_key, redo_key in (("Control+z", "Control+y"), ("Control+z", "Control+Shift+z")):
        page.keyboard.press(undo_key)
        answered(page)
        expect(page.locator("#answer")).to_have_text("1")
        page.keyboard.press(redo_key)
        answered(page)
        expect(page.locator("#answer")).to_have_text("7")
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(undo).to_be_disabled()
    page.keyboard.press("Control+y")
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    draw(page, ACROSS)   # a new stroke: what was undone cannot come back over it
    expect(redo).to_be_disabled()
    page.keyboard.press("Control+y")
    assert ink_pixels(page, (0.1, 0.0, 0.45, 0.25)) == 0  # no flag came back
    snapshot(page, "tools-undo-redo")


def test_redo_gives_its_focus_to_undo_when_there_is_nothing_left_to_redo(page) -> None:
    draw(page, ONE)
    draw(page, FLAG)
    page.click("#undo")
    page.focus("#redo")
    page.keyboard.press("Enter")
    expect(page.locator("#redo")).to_be_disabled()
    assert page.evaluate("document.activeElement.id") == "undo"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_download_saves_the_pad_as_a_png(page, tmp_path: Path) -> None:
    download = page.locator("#download")
    expect(download).to_be_disabled()
    draw(page, ONE)
    answered(page)
    with page.expect_download() as waiting:
        download.click()
    saved = tmp_path / "drawing.png"
    waiting.value.save_as(saved)
    assert re.fullmatch(r"numbre-drawing-\d{8}-\d{6}\.png", waiting.value.suggested_filename)
    pad_png = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')")
    assert saved.read_bytes() == base64.b64decode(pad_png.split(",", 1)[1])
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.size == (280, 280)
    page.click("#clear")
    expect(download).to_be_disabled()


def test_the_correction_is_not_offered_by_a_server_that_does_not_keep_them(page) -> None:
    assert page.evaluate("fetch('/api/corrections').then((r) => r.json())")["enabled"] is False
    draw(page, ONE)
    answered(page)
    expect(page.locator("#correction")).to_be_hidden()


def test_the_tools_have_visible_focus_and_pass_axe(browser, base_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, base_url, problems, axe=True)
    try:
        draw(page, ONE)
        draw(page, FLAG)
        answered(page)
        page.click("#undo")   # so that Redo is enabled
        answered(page)
        for control in ("#redo", "#eraser", "#brush", "#download"):
            page.focus(control)
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")   # focus by keyboard, so :focus-visible applies
            assert page.evaluate("document.activeElement.id") == control[1:]
            style = page.evaluate("[getComputedStyle(document.activeElement).outlineStyle, "
                                  "getComputedStyle(document.activeElement).outlineWidth]")
            assert style == ["solid", "3px"], (control, style)
        assert axe_violations(page) == []
        snapshot(page, "tools-focus")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert not problems, problems
