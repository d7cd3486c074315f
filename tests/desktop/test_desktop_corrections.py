"""`numbre draw --corrections DIR`: "Wrong?" (W) then the right digit keeps the drawing to train on.

The window runs on SDL's dummy video driver and is driven by posted pygame events, as in
test_desktop.py. Frames are kept in test-artifacts/desktop/.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

try:
    import pygame
except ImportError:
    pytest.fail("the desktop tests need pygame-ce: pip install 'numbre[desktop]'", pytrace=False)

from numbre.cli import cli
from numbre.data.corrections import CorrectionLimits, CorrectionStore, load_corrections, read_corrections
from numbre.desktop.window import ASK_DIGIT, CORRECTIONS_OFF, DrawWindow
from numbre.reading.recognize import Recognizer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
SIZE = 420
# A "1" with a long flag, as many people write it: the shipped model reads it as a 7.
FLAGGED_ONE = [[(0.214, 0.429), (0.536, 0.143), (0.536, 0.857)]]
ONE = [[(0.53, 0.12), (0.47, 0.88)]]


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "corrections"


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch, recognizer: Recognizer, folder: Path,
           request: pytest.FixtureRequest) -> Iterator[DrawWindow]:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    window = DrawWindow(recognizer, size=SIZE, save_dir=folder.parent, corrections=CorrectionStore(folder))
    window.step()
    yield window
    window.render()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.save_screenshot(ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', request.node.name)}.png")
    window.close()


def post(kind: int, **attributes) -> None:
    pygame.event.post(pygame.event.Event(kind, **attributes))


def draw_strokes(window: DrawWindow, strokes) -> None:
    """Mouse events ~12 px apart along the strokes (pad fractions), stepping as the loop would."""
    pad = window.canvas_rect
    for stroke in strokes:
        corners = [(pad.x + pad.width * x, pad.y + pad.height * y) for x, y in stroke]
        points = [corners[0]]
        for (x0, y0), (x1, y1) in itertools.pairwise(corners):
            steps = max(1, round(math.dist((x0, y0), (x1, y1)) / 12))
            points += [(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(1, steps + 1)]
        pixels = [(round(x), round(y)) for x, y in points]
        post(pygame.MOUSEBUTTONDOWN, pos=pixels[0], button=1)
        for previous, here in itertools.pairwise(pixels):
            post(pygame.MOUSEMOTION, pos=here, rel=(here[0] - previous[0], here[1] - previous[1]),
                 buttons=(1, 0, 0))
        post(pygame.MOUSEBUTTONUP, pos=pixels[-1], button=1)
        window.step()
    window.settle()


def press_key(window: DrawWindow, key: int) -> None:
    post(pygame.KEYDOWN, key=key, mod=0)
    window.step()


def test_wrong_then_a_digit_keeps_the_drawing_as_drawn_and_as_seen(window: DrawWindow, folder: Path) -> None:
    draw_strokes(window, FLAGGED_ONE)
    assert window.shown.headline == "7"  # the model's mistake this test corrects
    press_key(window, pygame.K_w)
    assert window.correcting and window.notice == ASK_DIGIT
    window.render()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.save_screenshot(ARTIFACTS / "correction-asks-for-the-digit.png")
    press_key(window, pygame.K_1)
    assert not window.correcting
    assert window.notice.startswith(f"Kept as a 1 in {folder}")
    [correction] = read_corrections(folder)
    assert (correction.label, correction.read_as, correction.source) == (1, 7, "numbre draw")
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        f"{correction.name}{suffix}" for suffix in ("-28x28.png", "-drawn.png", ".json"))
    with Image.open(folder / f"{correction.name}-drawn.png") as drawn:
        assert drawn.size == (SIZE, SIZE) and drawn.mode == "L"
        assert np.array_equal(np.asarray(drawn), window.pad.grey())  # exactly what was drawn
    images, labels, _ = load_corrections(folder)
    seen = window.recognizer.predict(window.pad.grey()).image
    assert labels.tolist() == [1]
    assert np.abs(images[0].astype(int) - np.round(seen * 255)).max() <= 1  # what the network saw
    record = json.loads((folder / f"{correction.name}.json").read_text())
    assert record["label"] == 1 and record["read_as"] == 7 and record["model"].startswith("numbre-robust")


def test_the_keypad_digits_name_the_label_too(window: DrawWindow, folder: Path) -> None:
    draw_strokes(window, ONE)
    window.press("wrong")  # the button does what W does
    press_key(window, pygame.K_KP4)
    assert [correction.label for correction in read_corrections(folder)] == [4]


def test_escape_cancels_the_correction_and_does_not_quit(window: DrawWindow, folder: Path) -> None:
    draw_strokes(window, ONE)
    press_key(window, pygame.K_w)
    press_key(window, pygame.K_ESCAPE)
    assert not window.correcting and window.running and not folder.exists()
    press_key(window, pygame.K_1)  # not a correction any more
    assert not folder.exists()


def test_drawing_more_drops_the_question(window: DrawWindow, folder: Path) -> None:
    draw_strokes(window, ONE)
    press_key(window, pygame.K_w)
    draw_strokes(window, [[(0.2, 0.5), (0.8, 0.5)]])
    assert not window.correcting and window.notice != ASK_DIGIT
    press_key(window, pygame.K_3)
    assert not folder.exists()


def test_nothing_to_correct_on_an_empty_pad_or_in_number_mode(window: DrawWindow, folder: Path) -> None:
    press_key(window, pygame.K_w)
    assert not window.correcting and window.notice == "Nothing to correct: draw a digit first."
    press_key(window, pygame.K_n)
    draw_strokes(window, [[(0.25, 0.12), (0.25, 0.88)]])
    press_key(window, pygame.K_w)
    assert not window.correcting and "one digit" in window.notice
    assert not folder.exists()


def test_without_a_folder_it_says_how_to_turn_corrections_on(monkeypatch: pytest.MonkeyPatch,
                                                              recognizer: Recognizer) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    window = DrawWindow(recognizer, size=SIZE)
    try:
        window.step()
        draw_strokes(window, ONE)
        press_key(window, pygame.K_w)
        assert not window.correcting and window.notice == CORRECTIONS_OFF
        assert "--corrections DIR" in CORRECTIONS_OFF
    finally:
        window.close()


def test_a_full_folder_is_said_in_the_window(monkeypatch: pytest.MonkeyPatch, recognizer: Recognizer,
                                             folder: Path) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    store = CorrectionStore(folder, CorrectionLimits(max_count=1))
    window = DrawWindow(recognizer, size=SIZE, corrections=store)
    try:
        window.step()
        draw_strokes(window, ONE)
        for digit in (pygame.K_1, pygame.K_2):
            press_key(window, pygame.K_w)
            press_key(window, digit)
        assert window.notice.startswith("Not kept: the corrections folder is full: it holds 1 corrections")
        assert [correction.label for correction in read_corrections(folder)] == [1]
    finally:
        window.close()


def test_numbre_draw_takes_a_corrections_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    folder = tmp_path / "new" / "corrections"
    command = ["draw", "--quit-after", "2", "--size", "200", "--corrections", str(folder)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert folder.is_dir()  # made at start, so a folder that cannot be made fails before the window opens
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["draw", "--quit-after", "2", "--corrections", str(blocker / "c")])
    assert result.exit_code == 2 and f"{blocker} is a file, not a folder" in result.output
