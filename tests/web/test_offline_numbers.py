"""Whole numbers read in the browser: the line model (numbre-lines.onnx) run by static/offline.js.

The server reads a number with the line model in one pass and, when a digit is under LINE_SURE, also cuts
the line into digits and keeps the surer reading. The browser has only the first half. So the static
site's answers are compared, drawing by drawing, with the server's line model alone (read_tokens on the
very same PNG: digits, probabilities, boxes), and, wherever that reading is sure, with what POST /api/read
answers. Numbers of two to six digits are drawn with real mouse events from numbre's stroke font, most
apart and some touching. Screenshots go to test-artifacts/web/offline-*.png.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import test_offline_page
from click.testing import CliRunner
from test_offline_page import (
    ONE,
    answered,
    close_page,
    draw,
    expect,
    glyph,
    open_page,
    snapshot,
    static_server,
)

from numbre.cli import cli
from numbre.model.line_model import DEFAULT_LINE_ONNX
from numbre.reading.line_reader import read_tokens
from numbre.reading.preprocess import ink_map
from numbre.reading.recognize import LINE_SURE, Recognizer
from numbre.web.app import create_app
from webhelpers import live_server

# The static site, the server and its recognizer, as test_offline_page.py makes them (pytest fixtures).
recognizer = test_offline_page.recognizer
server_url = test_offline_page.server_url
site_url = test_offline_page.site_url

OFFLINE_NOTE = "Answers come from this browser (offline); numbers are read without cutting."
UNSURE_NOTE = "Read in this browser without cutting the line into digits: a digit may be misread."
PROBABILITY_TOLERANCE = 1e-3  # the same float32 graph in two runtimes: sums may differ in the last bits
BOX_SLACK = 4  # pad pixels: one ink-map pixel of the 560x280 pad

# The in-browser reader's answer to the pad as it is, the pad's PNG, and what the page shows.
READ_HERE = """async () => {
  const pad = document.getElementById("pad");
  const answer = await NumbreOffline.page.predict(pad, "number");
  return { answer, png: pad.toDataURL("image/png"), shown: document.getElementById("answer").textContent,
           message: document.getElementById("message").textContent,
           listed: document.querySelectorAll("#digits li").length };
}"""


def number_strokes(digits: list[int], rng: np.random.Generator, *, touching: bool) -> list:
    """A number as pad fractions of the 560x280 pad: digits in a row, apart or touching their neighbours.

    `glyph` sizes a digit for a square pad; on the 2:1 number pad a `width` of 0.256 keeps a digit about
    0.62 as wide as it is tall, and the height shrinks so that six digits written apart fit in 92% of it.
    """
    cell, count, widest_step = 0.256, len(digits), 1.45
    wide_per_height = cell * 0.8 / 0.7 / 0.66 * 0.7  # glyph's `across` times its font box's width (0.7)
    height = min(0.62, 0.92 / (count * widest_step * wide_per_height)) * rng.uniform(0.85, 1.0)
    wide = wide_per_height * height  # one digit's width, in fractions of the pad's width
    step = wide * (rng.uniform(0.72, 0.8) if touching else rng.uniform(1.25, widest_step))
    start = 0.5 - step * (count - 1) / 2
    top = rng.uniform(0.12, 0.88 - height)
    strokes = []
    for index, digit in enumerate(digits):
        centre = start + index * step
        strokes += glyph(digit, rng, left=centre - cell / 2, width=cell, height=height,
                         top=float(np.clip(top + rng.uniform(-0.03, 0.03), 0.02, 0.98 - height)))
    return strokes


def drawings() -> list[tuple[str, list, bool]]:
    """(name, strokes, touching): 26 numbers of 2-6 digits, 20 written apart and 6 with touching digits
    (every digit appears), then a 1 beside a scribble, which the line model calls "not a digit"."""
    rng = np.random.default_rng(20)
    made = []
    for index in range(26):
        count = 2 + index % 5
        digits = [int(digit) for digit in rng.integers(0, 10, size=count)]
        if index < 10:
            digits[0] = index  # each digit at least once
        touching = index >= 20
        made.append(("".join(map(str, digits)), number_strokes(digits, rng, touching=touching), touching))
    zigzag = [(0.4 + 0.4 * step / 10, 0.3 + 0.4 * (step % 2)) for step in range(11)]
    made.append(("1-scribble", [[(0.18, 0.21), (0.17, 0.79)], zigzag], False))
    return made


def boxes_agree(mine: list, theirs: list) -> bool:
    return all(abs(a - b) <= BOX_SLACK for one, other in zip(mine, theirs, strict=True)
               for a, b in zip(one, other, strict=True))


def test_the_static_site_reads_numbers_in_the_browser_as_the_server_does(browser, site_url: str,
                                                                        server_url: str,
                                                                        recognizer: Recognizer) -> None:
    problems: list[str] = []
    page = open_page(browser, site_url, problems)
    expect(page.locator("#answerer")).to_have_attribute("data-reader", "ready")
    expect(page.locator("#answerer")).to_have_text(OFFLINE_NOTE)
    page.click("#mode-number")
    compared, sure, touching_sure, differences, kinds = 0, 0, 0, [], set()
    for index, (name, strokes, touching) in enumerate(drawings()):
        page.keyboard.press("Escape")
        expect(page.locator("#result")).to_have_attribute("data-state", "empty")
        draw(page, strokes, steps=48)
        answered(page)
        here = page.evaluate(READ_HERE)
        png = base64.b64decode(here["png"].split(",", 1)[1])
        mine = here["answer"]
        found = ink_map(png)
        line = read_tokens(found, recognizer.line_model)
        # The browser's reading is the line model's: the same symbols, probabilities and boxes.
        labels = [None if token.digit is None else token.digit for token in line.tokens]
        if [entry["digit"] for entry in mine["digits"]] != labels:
            differences.append(f"{name}: browser {[e['digit'] for e in mine['digits']]}, line model {labels}")
            continue
        gap = max((abs(entry["confidence"] - token.probability)
                   for entry, token in zip(mine["digits"], line.tokens, strict=True)), default=0.0)
        if gap > PROBABILITY_TOLERANCE:
            differences.append(f"{name}: probabilities differ by {gap:.2e}")
        if [entry["box"] for entry in mine["digits"]] != [list(found.input_box(box)) for box in line.boxes]:
            differences.append(f"{name}: boxes differ from the line model's")
        unsure = any(token.probability < LINE_SURE for token in line.tokens)
        kinds.add("unreadable" if mine["number"] is None else "unsure" if unsure else "sure")
        if mine["unsure"] != unsure:
            differences.append(f"{name}: unsure {mine['unsure']}, line model {unsure}")
        # What the page shows is that answer, and says so when the server would also have cut the line.
        shown = mine["number"] if mine["number"] is not None else "".join(
            "?" if entry["digit"] is None else str(entry["digit"]) for entry in mine["digits"])
        expected_message = UNSURE_NOTE if mine["number"] is not None and unsure else (
            "" if mine["number"] is not None else "Some of that is not a digit (marked ?).")
        if (here["shown"], here["message"], here["listed"]) != (shown, expected_message, len(mine["digits"])):
            differences.append(f"{name}: page shows {here['shown']!r}, {here['message']!r}, "
                               f"{here['listed']} digits")
        if not unsure and line.tokens:  # the server takes the line model's reading alone
            there = test_offline_page.server_answer(server_url, png, route="read")
            # An unreadable line's digits are the cutting reader's on the server: its verdict is compared.
            readable = mine["number"] is not None
            if (mine["number"], mine.get("reason")) != (there["number"], there.get("reason")) or (
                    readable and len(mine["digits"]) != len(there["digits"])):
                differences.append(f"{name}: browser {mine['number']} {mine.get('reason')}, "
                                   f"server {there['number']} {there.get('reason')}")
            elif readable and not boxes_agree([entry["box"] for entry in mine["digits"]],
                                              [entry["box"] for entry in there["digits"]]):
                differences.append(f"{name}: boxes differ from the server's")
            sure += 1
            touching_sure += touching
        if index in (0, 4, 22, 26):
            snapshot(page, f"static-number-{name}")
        compared += 1
    assert compared >= 21
    assert not differences, differences
    assert sure >= 15 and touching_sure >= 1, (sure, touching_sure)
    # Each kind of answer was compared: sure, unsure (the page's note) and unreadable ("not a digit").
    assert kinds == {"sure", "unsure", "unreadable"}, kinds
    close_page(page, problems, "static-numbers")


def test_the_server_serves_its_line_model_for_the_page(recognizer: Recognizer) -> None:
    with live_server(create_app(recognizer)) as url:
        response = httpx.get(f"{url}/api/line-model.onnx", timeout=30)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == DEFAULT_LINE_ONNX.read_bytes()
        assert "/api/line-model.onnx" not in httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    without = Recognizer(recognizer.model, None)  # numbers read by cutting alone
    with live_server(create_app(without)) as url:
        response = httpx.get(f"{url}/api/line-model.onnx", timeout=30)
        assert response.status_code == 404
        assert response.json() == {
            "error": "this server reads numbers without a line model: there is no line model file"}


@pytest.fixture(scope="module")
def digits_only_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static site whose line model is missing (a site written before there was one)."""
    folder = tmp_path_factory.mktemp("site") / "digits-only"
    result = CliRunner().invoke(cli, ["export", "--web", str(folder)])
    assert result.exit_code == 0, result.output
    (folder / "line-model.onnx").unlink()
    with static_server(folder) as url:
        yield url


def test_a_static_site_without_the_line_model_reads_digits_only(browser, digits_only_url: str) -> None:
    problems: list[str] = []
    page = open_page(browser, digits_only_url, problems)
    expect(page.locator("#answerer")).to_have_attribute("data-reader", "ready")
    expect(page.locator("#answerer")).to_have_text(
        "Answers come from this browser (offline): one digit at a time.")
    page.click("#mode-number")
    draw(page, ONE)
    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    expect(page.locator("#message")).to_have_text(
        "Without the server this page reads one digit at a time: switch to \u201cOne digit\u201d.")
    page.click("#mode-digit")
    draw(page, ONE)
    answered(page)
    expect(page.locator("#answer")).to_have_text("1")
    close_page(page, problems, "static-digits-only")


def test_a_served_page_reads_numbers_in_the_browser_when_its_server_goes(browser,
                                                                         recognizer: Recognizer) -> None:
    problems: list[str] = []
    rng = np.random.default_rng(3)
    with live_server(create_app(recognizer)) as url:
        page = open_page(browser, url, problems)
        # Both models are fetched in the background while the server is there.
        expect(page.locator("#answerer")).to_have_attribute("data-reader", "ready")
        page.click("#mode-number")
        draw(page, number_strokes([4, 7], rng, touching=False), steps=48)
        answered(page)
        expect(page.locator("#answerer")).to_have_attribute("data-answerer", "server")
        expect(page.locator("#answer")).to_have_text("47")
    page.keyboard.press("Escape")
    draw(page, number_strokes([2, 0, 5], rng, touching=False), steps=48)
    answered(page)
    expect(page.locator("#answerer")).to_have_attribute("data-answerer", "browser")
    expect(page.locator("#answerer")).to_have_text(OFFLINE_NOTE)
    expect(page.locator("#answer")).to_have_text("205")
    expect(page.locator("#digits li")).to_have_count(3)
    close_page(page, problems, "server-gone-number")
