"""The contest and the saliency overlay in a real browser: headless Chromium against the real model.

A game is played by typing answers, and the score on the page is checked against the truth and the
model's answers the API returned. The overlay is toggled on a drawn digit and must be the API's heat
map, loaded, with coloured pixels. Screenshots go to test-artifacts/web/, beside the drawing pad's.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import numpy as np
import playwright.sync_api as playwright_api
import pytest
from PIL import Image
from test_web_browser import ONE, answered, draw, snapshot

from numbre.insight.contest import load_contest_set
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from numbre.web.contest import CONTEST_FOLDER
from webhelpers import live_server

expect = playwright_api.expect
GAME = 10  # digits in one game on the page


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(create_app(Recognizer.load())) as url:
        yield url


@pytest.fixture
def page(browser, base_url: str, request: pytest.FixtureRequest):
    """A fresh phone-sized page; fails the test on a script error or a request to another origin."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" else None)
    page.on("request", lambda sent: None if sent.url.startswith((base_url, "data:", "blob:"))
            else problems.append(f"request to another origin: {sent.url}"))
    yield page
    snapshot(page, request.node.name)
    context.close()
    assert not problems, problems


def data_url_pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_a_game_keeps_the_score_of_person_and_model(page, base_url: str) -> None:
    shipped = load_contest_set(CONTEST_FOLDER)
    with page.expect_response("**/api/contest?count=10") as round_response:
        page.goto(f"{base_url}/#contest")
    digits = round_response.value.json()["digits"]
    view = page.locator("#contest-view")
    expect(view).to_have_attribute("data-state", "asking")
    expect(page.locator("#draw-view")).to_be_hidden()
    expect(page.locator("#contest-guess")).to_be_focused()

    page.keyboard.type("x")  # not a digit: a hint, no answer sent
    page.keyboard.press("Enter")
    expect(page.locator("#contest-hint")).to_have_text("Type one digit, 0 to 9.")
    expect(view).to_have_attribute("data-state", "asking")

    person = model = 0
    for index, digit in enumerate(digits):
        expect(page.locator("#contest-progress")).to_have_text(f"Digit {index + 1} of {GAME}")
        shown = data_url_pixels(page.locator("#contest-image").get_attribute("src"))
        assert np.array_equal(shown, shipped.images[digit["id"]])
        truth = int(shipped.labels[digit["id"]])
        guess = truth if index % 3 else (truth + 1) % 10  # wrong on digits 1, 4, 7 and 10
        page.fill("#contest-guess", str(guess))
        with page.expect_response("**/api/contest/answer") as answer_response:
            page.keyboard.press("Enter")
        result = answer_response.value.json()
        assert result["truth"] == truth and result["person_right"] == (guess == truth)
        person += result["person_right"]
        model += result["model_right"]
        expect(page.locator("#score-person")).to_have_text(str(person))
        expect(page.locator("#score-model")).to_have_text(str(model))
        expect(page.locator("#contest-truth")).to_have_text(f"It is {'an' if truth == 8 else 'a'} {truth}.")
        verdict = "right" if guess == truth else "wrong"
        expect(page.locator("#contest-person")).to_have_text(f"You said {guess}: {verdict}.")
        expect(page.locator("#contest-model")).to_contain_text(f"The model said {result['model']['digit']}, ")
        expect(view).to_have_attribute("data-person", verdict)
        if index == 0:
            snapshot(page, "contest-first-answer")
        if index < GAME - 1:
            expect(page.locator("#contest-next")).to_be_focused()
            page.keyboard.press("Enter")  # next digit
            expect(view).to_have_attribute("data-state", "asking")

    assert person == 6  # right on 6 of 10 by construction; the model's score is what the API said
    expect(view).to_have_attribute("data-state", "over")
    summary = (f"You win, {person} to {model}." if person > model else
               f"The model wins, {model} to {person}." if model > person else f"A draw, {person} each.")
    expect(page.locator("#contest-summary")).to_have_text(summary)
    expect(page.locator("#contest-next")).to_have_text("Play again")
    snapshot(page, "contest-over")
    page.click("#contest-next")
    expect(view).to_have_attribute("data-state", "asking")
    expect(page.locator("#score-person")).to_have_text("0")
    expect(page.locator("#score-model")).to_have_text("0")
    expect(page.locator("#contest-progress")).to_have_text(f"Digit 1 of {GAME}")


def test_the_views_switch_by_their_links(page, base_url: str) -> None:
    page.goto(base_url)
    expect(page.locator("#contest-view")).to_be_hidden()
    expect(page.locator("#contest-view")).to_have_attribute("data-state", "idle")  # nothing asked yet
    page.click("#view-contest")
    expect(page.locator("#contest-view")).to_have_attribute("data-state", "asking")
    expect(page.locator("#view-contest")).to_have_attribute("aria-current", "page")
    page.fill("#contest-guess", "3")
    page.click("#view-draw")
    expect(page.locator("#draw-view")).to_be_visible()
    page.keyboard.press("Escape")  # the pad's keys work again, and the game waits where it was
    page.click("#view-contest")
    expect(page.locator("#contest-guess")).to_have_value("3")
    page.click("#contest-restart")
    expect(page.locator("#contest-guess")).to_have_value("")
    expect(page.locator("#contest-progress")).to_have_text(f"Digit 1 of {GAME}")


def test_the_saliency_overlay_shows_what_mattered(page, base_url: str) -> None:
    page.set_viewport_size({"width": 1000, "height": 800})
    page.goto(base_url)
    figure, overlay = page.locator("#seen-figure"), page.locator("#saliency")
    expect(figure).to_have_attribute("data-saliency", "off")
    page.check("#show-saliency")
    expect(figure).to_have_attribute("data-saliency", "none")  # nothing drawn yet
    draw(page, ONE)
    answered(page)
    expect(figure).to_have_attribute("data-saliency", "shown")
    expect(overlay).to_be_visible()
    assert overlay.evaluate("image => image.complete && image.naturalWidth") == 28
    heat = data_url_pixels(overlay.get_attribute("src"))
    assert heat.shape == (28, 28, 4) and (heat[..., 3] > 0).sum() > 20  # coloured, see-through elsewhere
    box, seen = overlay.bounding_box(), page.locator("#seen").bounding_box()
    assert box == seen  # laid exactly over what the network saw
    pad_png = page.locator("#pad").evaluate("pad => pad.toDataURL('image/png')").split(",", 1)[1]
    expected = httpx.post(f"{base_url}/api/saliency", content=base64.b64decode(pad_png),
                          headers={"Content-Type": "image/png"}, timeout=30).json()
    assert overlay.get_attribute("src") == f"data:image/png;base64,{expected['saliency']}"
    snapshot(page, "saliency-overlay-one")

    page.uncheck("#show-saliency")
    expect(figure).to_have_attribute("data-saliency", "off")
    expect(overlay).to_be_hidden()
    page.check("#show-saliency")  # on again for the drawing already answered
    expect(figure).to_have_attribute("data-saliency", "shown")
    page.click("#clear")
    expect(figure).to_have_attribute("data-saliency", "none")
    expect(overlay).to_be_hidden()
    page.click("#mode-number")
    expect(page.locator(".toggle")).to_be_hidden()
    expect(figure).to_have_attribute("data-saliency", "off")
