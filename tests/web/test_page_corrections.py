"""The page's "That was wrong, it is a ...": offered by a server started with a corrections folder,
by mouse and by keyboard, saving the drawing the model misread with the digit it is.

A real `numbre serve` (a separate process, the shipped model) given its folder by the environment
variable NUMBRE_SERVE_CORRECTIONS, and Debian's headless Chromium. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import playwright.sync_api as playwright_api
import pytest
from PIL import Image
from test_web_page import ONE, answered, axe_violations, checked_page, draw, open_page, snapshot

from apphelpers import running_server
from numbre.data.corrections import load_corrections, read_corrections

expect = playwright_api.expect
# A 1 with a long flag, as many people write it (pad fractions): the shipped model reads a 7.
FLAGGED_ONE = [[(0.214, 0.429), (0.536, 0.143), (0.536, 0.857)]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("kept") / "corrections"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NUMBRE_SERVE_CORRECTIONS", str(folder))
        with running_server([sys.executable, "-m", "numbre"], tmp_path_factory.mktemp("serve")) as url:
            yield url, folder


@pytest.fixture
def page(browser, served: tuple[str, Path], request: pytest.FixtureRequest):
    yield from checked_page(browser, served[0], request.node.name)


def labels(folder: Path) -> list[int]:
    return [correction.label for correction in read_corrections(folder)] if folder.exists() else []


def test_a_misread_digit_is_corrected_and_kept(page, served: tuple[str, Path]) -> None:
    folder = served[1]
    before = labels(folder)
    correction = page.locator("#correction")
    expect(correction).to_be_hidden()   # nothing answered yet
    draw(page, FLAGGED_ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("7")
    expect(correction).to_be_visible()
    page.click("#wrong")
    expect(page.locator("#wrong")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#right-digits")).to_be_visible()
    assert page.evaluate("document.activeElement.dataset.digit") == "0"  # focus moves into the choices
    snapshot(page, "correction-choose-the-digit")
    page.click("#right-digits [data-digit='1']")
    expect(page.locator("#correction-status")).to_have_text("Thank you: kept as a 1 to train the model on.")
    expect(page.locator("#announce")).to_have_text("Thank you: kept as a 1 to train the model on.")
    expect(page.locator("#right-digits")).to_be_hidden()
    snapshot(page, "correction-kept")
    assert labels(folder) == [*before, 1]
    newest = read_corrections(folder)[-1]
    assert newest.read_as == 7 and newest.source == "web page"
    with Image.open(folder / f"{newest.name}-drawn.png") as drawn:   # the pad as drawn
        pad = page.locator("#pad").evaluate(
            "pad => [...pad.getContext('2d').getImageData(0, 0, 280, 280).data]")
        expected = np.asarray(pad, np.uint8).reshape(280, 280, 4)[:, :, 0]
        assert drawn.size == (280, 280) and np.abs(np.asarray(drawn, int) - expected).max() <= 1
    images, _, _ = load_corrections(folder)
    seen = page.locator("#seen").evaluate("image => image.src")
    assert seen.startswith("data:image/png;base64,") and images[-1].max() > 200


def test_the_keyboard_alone_corrects(page, served: tuple[str, Path]) -> None:
    folder = served[1]
    before = labels(folder)
    draw(page, ONE)
    answered(page)
    page.focus("#wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#right-digits")).to_be_visible()
    page.keyboard.press("Escape")   # closes the choices, keeps the drawing
    expect(page.locator("#right-digits")).to_be_hidden()
    expect(page.locator("#result")).to_have_attribute("data-state", "done")
    assert page.evaluate("document.activeElement.id") == "wrong"
    page.keyboard.press("Enter")
    page.keyboard.press("4")
    expect(page.locator("#correction-status")).to_have_text("Thank you: kept as a 4 to train the model on.")
    assert labels(folder) == [*before, 4]


def test_the_offer_goes_while_drawing_and_in_number_mode(page) -> None:
    draw(page, ONE)
    answered(page)
    page.click("#wrong")
    draw(page, [[(0.2, 0.14), (0.53, 0.12)]], lift=False)
    expect(page.locator("#correction")).to_be_hidden()   # the question was about the drawing before
    answered(page)   # the stroke still being drawn is read (the throttled asks) ...
    expect(page.locator("#correction")).to_be_hidden()   # ... but nothing is offered until the pen lifts
    page.mouse.up()
    answered(page)
    expect(page.locator("#correction")).to_be_visible()
    expect(page.locator("#right-digits")).to_be_hidden()
    page.click("#mode-number")
    draw(page, ONE)
    answered(page)
    expect(page.locator("#correction")).to_be_hidden()


def test_a_refusal_is_said_on_the_page(page, served: tuple[str, Path]) -> None:
    before = labels(served[1])
    page.route("**/api/corrections?label=*", lambda route: route.fulfill(
        status=507, content_type="application/json", body='{"error": "the corrections folder is full"}'))
    draw(page, ONE)
    answered(page)
    page.click("#wrong")
    page.click("#right-digits [data-digit='2']")
    expect(page.locator("#correction-status")).to_have_text(
        "Not kept: The server has no room for more corrections. Thank you all the same.")
    assert labels(served[1]) == before
    snapshot(page, "correction-refused")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_correction_passes_axe(browser, served: tuple[str, Path], scheme: str) -> None:
    problems: list[str] = []
    page = open_page(browser, served[0], problems, scheme=scheme, axe=True)
    try:
        draw(page, ONE)
        answered(page)
        page.click("#wrong")
        found = {"choosing": axe_violations(page)}
        page.keyboard.press("7")
        expect(page.locator("#correction-status")).to_contain_text("kept as a 7")
        found["kept"] = axe_violations(page)
        snapshot(page, f"correction-axe-{scheme}")
    finally:
        problems += page.evaluate("window.__probe.violations")
        page.context.close()
    assert {state: lines for state, lines in found.items() if lines} == {}
    assert not problems, problems
