"""`numbre draw`: the drawing window, driven by real pygame mouse and key events, against the real model.

Most tests run the window on SDL's dummy video driver (no display): they post MOUSEBUTTONDOWN,
MOUSEMOTION (with the button held) and MOUSEBUTTONUP events as a mouse would, step the loop, and
read both the window's state and the pixels it painted. Every wait is on the window's own state
(`settle`), never a fixed sleep. One test starts the real `numbre draw` on an Xvfb display, times
its start, draws a 7 with the X server's own pointer (XTEST) and reads the answer off the X screen.
Frames are kept in test-artifacts/desktop/.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

try:
    import pygame
except ImportError:
    pytest.fail("the desktop tests need pygame-ce: pip install 'numbre[desktop]'", pytrace=False)

from numbre.cli.draw_cmd import draw
from numbre.desktop.window import ACCENT, LINE, PAPER, REASONS, SOME_NOT_DIGITS, WARN, DrawWindow, Pad
from numbre.errors import NumbreError
from numbre.reading.recognize import NOT_A_DIGIT, Prediction, Reading, Recognizer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
SIZE = 420
NO_ANSWER = "\u2013"

# Strokes as fractions of the pad (or of one cell of it): (x, y) with 0 at the top left.
ONE = [[(0.53, 0.12), (0.47, 0.88)]]
SEVEN = [[(0.25, 0.15), (0.75, 0.15), (0.42, 0.88)]]
ZERO = [[(0.5 + 0.24 * math.cos(step * math.tau / 32 - math.pi / 2),
          0.5 + 0.36 * math.sin(step * math.tau / 32 - math.pi / 2)) for step in range(34)]]
BARS = [[(0.1, 0.1), (0.9, 0.1)], [(0.1, 0.9), (0.9, 0.9)]]
FLAG = [[(0.2, 0.14), (0.53, 0.12)]]  # drawn onto a ONE, it makes a 7


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDL's dummy video driver: a real display surface in memory, no screen needed."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


@pytest.fixture
def window(headless, recognizer: Recognizer, tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[DrawWindow]:
    window = DrawWindow(recognizer, size=SIZE, save_dir=tmp_path)
    window.step()
    yield window
    snapshot(window, request.node.name)
    window.close()


def snapshot(window: DrawWindow, name: str) -> None:
    """The window's last frame in test-artifacts/desktop/, to look at what a test saw."""
    window.save_screenshot(ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png")


def post(kind: int, **attributes) -> None:
    pygame.event.post(pygame.event.Event(kind, **attributes))


def draw_strokes(window: DrawWindow, strokes, cell: int = 0, cells: int = 1, *, lift: bool = True) -> None:
    """Draw strokes (pad fractions) with mouse events ~12 px apart, in cell `cell` of `cells` side by side.

    The loop steps every few events, as it would at 60 frames a second under a moving mouse.
    """
    pad = window.canvas_rect
    width = pad.width / cells
    for stroke in strokes:
        corners = [(pad.x + width * (cell + x), pad.y + pad.height * y) for x, y in stroke]
        points = [corners[0]]
        for (x0, y0), (x1, y1) in itertools.pairwise(corners):
            steps = max(1, round(math.dist((x0, y0), (x1, y1)) / 12))
            points += [(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(1, steps + 1)]
        pixels = [(round(x), round(y)) for x, y in points]
        post(pygame.MOUSEBUTTONDOWN, pos=pixels[0], button=1)
        for index, (previous, here) in enumerate(itertools.pairwise(pixels)):
            post(pygame.MOUSEMOTION, pos=here, rel=(here[0] - previous[0], here[1] - previous[1]),
                 buttons=(1, 0, 0))
            if index % 3 == 2:
                window.step()
        if lift:
            post(pygame.MOUSEBUTTONUP, pos=pixels[-1], button=1)
        window.step()


def press_key(window: DrawWindow, key: int, modifiers: int = 0) -> None:
    post(pygame.KEYDOWN, key=key, mod=modifiers)
    window.step()


def click(window: DrawWindow, button: str) -> None:
    centre = window.buttons[button].center
    post(pygame.MOUSEBUTTONDOWN, pos=centre, button=1)
    post(pygame.MOUSEBUTTONUP, pos=centre, button=1)
    window.step()


def colour_at(window: DrawWindow, point: tuple[int, int]) -> tuple[int, int, int]:
    return tuple(window.screen.get_at(point))[:3]


def highlighted_bars(window: DrawWindow) -> list[int]:
    """The digits whose bar is painted in the accent colour (read from the frame, not the state)."""
    window.render()
    return [digit for digit, track in enumerate(window.bar_rects)
            if colour_at(window, (track.x + 3, track.centery)) == ACCENT]


def assert_empty(window: DrawWindow, message: str = "Draw a digit in the box.") -> None:
    assert window.state == "empty"
    assert window.shown.headline == NO_ANSWER and window.shown.message == message
    assert window.pad.empty and window.pad.ink.max() == 0.0
    frame = pygame.surfarray.pixels3d(window.render())
    pad = window.canvas_rect
    assert (frame[pad.left:pad.right, pad.top:pad.bottom] == 255).all()  # nothing left on the pad
    del frame  # release the surface lock


# --- drawing and reading ---------------------------------------------------------------------

def test_an_empty_pad_says_what_to_do(window: DrawWindow) -> None:
    assert_empty(window)
    assert window.shown.probabilities == (0.0,) * 10 and highlighted_bars(window) == []
    assert all(colour_at(window, (track.x + 3, track.centery)) == LINE for track in window.bar_rects)
    assert window.canvas_rect.size == (SIZE, SIZE)
    assert window.screen.get_rect().contains(window.buttons["save"])  # the window fits pad and panel


@pytest.mark.parametrize(("strokes", "digit"), [(ONE, 1), (SEVEN, 7), (ZERO, 0)],
                         ids=["one", "seven", "zero"])
def test_a_drawn_digit_is_read_with_its_bar_highlighted(window: DrawWindow, strokes, digit: int) -> None:
    draw_strokes(window, strokes)
    window.settle()
    assert window.state == "done"
    assert window.shown.headline == str(digit) and window.shown.best == digit
    assert window.shown.detail.endswith("% sure")
    assert abs(sum(window.shown.probabilities) - 1) < 1e-4
    assert highlighted_bars(window) == [digit]
    seen = pygame.surfarray.array3d(window.screen)[window.seen_rect.left:window.seen_rect.right,
                                                   window.seen_rect.top:window.seen_rect.bottom]
    assert seen.max() > 200  # the network's white-on-black digit is on show
    assert window.shown.seen[0].shape == (28, 28) and window.shown.seen[0].max() > 0.5


def test_the_answer_updates_while_the_pen_is_still_down(window: DrawWindow) -> None:
    draw_strokes(window, ONE, lift=False)
    assert window.pad.drawing
    window.settle()  # answered before the stroke ends
    assert window.pad.drawing and window.shown.headline == "1"
    post(pygame.MOUSEBUTTONUP, pos=window.canvas_rect.center, button=1)
    window.settle()
    assert not window.pad.drawing and window.state == "done"


class CountingRecognizer:
    """The real Recognizer, counting the images it is asked about."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer, self.calls = recognizer, 0

    def predict(self, image: np.ndarray) -> Prediction:
        self.calls += 1
        return self.recognizer.predict(image)


def test_recognition_is_throttled_while_drawing(headless, recognizer: Recognizer, tmp_path: Path) -> None:
    now = [100.0]
    counting = CountingRecognizer(recognizer)
    window = DrawWindow(counting, size=SIZE, save_dir=tmp_path, clock=lambda: now[0])
    try:
        x, top = window.canvas_rect.centerx, window.canvas_rect.y + 40
        post(pygame.MOUSEBUTTONDOWN, pos=(x, top), button=1)
        window.step()
        window.job.future.result(timeout=10)  # the request runs on the worker thread: wait for it
        assert counting.calls == 1  # the first touch is answered at once
        for y in range(top + 10, top + 200, 10):  # 0.05 s of drawing: too soon to ask again
            post(pygame.MOUSEMOTION, pos=(x, y), rel=(0, 10), buttons=(1, 0, 0))
            now[0] += 0.0025
            window.step()
        assert counting.calls == 1 and window.state == "pending"
        now[0] += 0.06  # THROTTLE (0.1 s) after the first request
        window.step()
        window.job.future.result(timeout=10)
        assert counting.calls == 2
        post(pygame.MOUSEBUTTONUP, pos=(x, top + 200), button=1)
        window.step()  # lifting the pen asks at once, whatever the throttle
        window.job.future.result(timeout=10)
        assert counting.calls == 3
        window.settle()
        assert window.state == "done" and window.shown.headline == "1"
    finally:
        window.close()


# --- clear, undo, save ----------------------------------------------------------------------------

def test_clear_by_key_delete_and_button(window: DrawWindow) -> None:
    for clear in (lambda: press_key(window, pygame.K_c), lambda: press_key(window, pygame.K_DELETE),
                  lambda: click(window, "clear")):
        draw_strokes(window, ONE)
        window.settle()
        assert window.shown.headline == "1"
        clear()
        assert_empty(window)
        window.settle()  # an answer still on its way is void: the pad stays empty
        assert_empty(window)


def test_undo_takes_back_the_last_stroke(window: DrawWindow) -> None:
    draw_strokes(window, ONE)
    window.settle()
    only_one = window.pad.ink.copy()
    draw_strokes(window, FLAG)
    window.settle()
    assert window.shown.headline == "7"
    press_key(window, pygame.K_z, pygame.KMOD_LCTRL)
    assert len(window.pad.strokes) == 1
    np.testing.assert_array_equal(window.pad.ink, only_one)  # repainted to the very same pixels
    window.settle()
    assert window.shown.headline == "1"
    click(window, "undo")
    assert_empty(window)
    press_key(window, pygame.K_z, pygame.KMOD_LCTRL)  # nothing left to undo: nothing happens
    assert_empty(window)


def test_save_writes_a_png_of_the_drawing(window: DrawWindow, tmp_path: Path, recognizer: Recognizer) -> None:
    press_key(window, pygame.K_s)
    assert list(tmp_path.iterdir()) == [] and "Nothing to save" in window.notice
    draw_strokes(window, SEVEN)
    window.settle()
    press_key(window, pygame.K_s)
    click(window, "save")  # within the same second: a second file, not an overwrite
    saved = sorted(tmp_path.glob("numbre-drawing-*.png"))
    assert len(saved) == 2 and re.fullmatch(r"numbre-drawing-\d{8}-\d{6}(-2)?\.png", saved[0].name)
    assert window.notice.startswith("Saved ") and any(path.name in window.notice for path in saved)
    pixels = np.asarray(Image.open(saved[0]))
    assert pixels.shape == (SIZE, SIZE) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, window.pad.grey())
    assert pixels[int(0.15 * SIZE), SIZE // 2] < 30 and pixels[5, 5] == 255  # ink on the bar of the 7
    assert recognizer.predict(saved[0]).digit == 7  # `numbre predict` reads the file as the window did


# --- number mode and refusals ---------------------------------------------------------------------

def test_number_mode_reads_two_digits_and_boxes_each(window: DrawWindow) -> None:
    press_key(window, pygame.K_n)
    assert window.mode == "number" and window.canvas_rect.size == (2 * SIZE, SIZE)
    assert_empty(window, "Write a number in the box, digits side by side.")
    assert colour_at(window, window.buttons["number"].move(4, 0).midleft) == ACCENT  # the toggle is on
    draw_strokes(window, ONE, 0, 2)
    draw_strokes(window, ZERO, 1, 2)
    window.settle()
    assert window.state == "done" and window.shown.headline == "10"
    assert window.shown.detail == "2 digits" and window.shown.message == ""
    boxes = [box for box, _, _ in window.shown.boxes]
    assert [label for _, label, _ in window.shown.boxes] == ["1", "0"]
    assert boxes[0][2] <= SIZE <= boxes[1][0]  # one box in each half
    window.render()
    x0, y0, _, _ = boxes[1]
    assert colour_at(window, (window.canvas_rect.x + x0 + 1, window.canvas_rect.y + y0 + 1)) == ACCENT
    snapshot(window, "number-mode-10")
    click(window, "number")
    assert window.mode == "digit" and window.canvas_rect.size == (SIZE, SIZE)
    assert_empty(window)


def test_several_digits_in_digit_mode_point_to_number_mode(window: DrawWindow) -> None:
    draw_strokes(window, ONE, 0, 3)
    draw_strokes(window, ZERO, 2, 3)
    window.settle()
    assert window.shown.headline == "?" and "several digits" in window.shown.message
    assert "press N" in window.shown.message and highlighted_bars(window) == []


class RefusingRecognizer:
    """Answers every drawing with a refusal, as a model with a rejection policy does for a scribble."""

    def predict(self, image: np.ndarray) -> Prediction:
        probabilities = (0.05,) * 4 + (0.4,) + (0.05,) * 5
        image = np.full((28, 28), 0.5, np.float32)
        return Prediction(None, 0.4, probabilities, image, (1, 1, 9, 9), NOT_A_DIGIT)

    def read(self, image: np.ndarray) -> Reading:
        seven = Prediction(7, 0.98, (0.0,) * 7 + (0.98,) + (0.0,) * 2, np.zeros((28, 28), np.float32),
                           (20, 40, 120, 300))
        unknown = Prediction(None, 0.3, (0.1,) * 10, np.zeros((28, 28), np.float32), (500, 40, 700, 300),
                             NOT_A_DIGIT)
        return Reading(None, (seven, unknown), NOT_A_DIGIT)


def test_not_a_digit_is_said_plainly(headless, tmp_path: Path) -> None:
    window = DrawWindow(RefusingRecognizer(), size=SIZE, save_dir=tmp_path)
    try:
        draw_strokes(window, BARS)
        window.settle()
        assert window.shown.headline == "?" and window.shown.message == REASONS[NOT_A_DIGIT]
        assert window.shown.message == "That does not look like a digit."
        assert highlighted_bars(window) == []  # probabilities are shown, but no digit is named
        snapshot(window, "not-a-digit")
        press_key(window, pygame.K_n)
        draw_strokes(window, BARS)
        window.settle()
        assert window.shown.headline == "7?" and window.shown.message == SOME_NOT_DIGITS
        window.render()
        assert colour_at(window, (window.canvas_rect.x + 501, window.canvas_rect.y + 41)) == WARN
    finally:
        window.close()


def test_a_failing_model_shows_an_error_and_the_window_lives_on(headless, tmp_path: Path) -> None:
    class Broken:
        def predict(self, image: np.ndarray) -> Prediction:
            raise RuntimeError("model went away")

    window = DrawWindow(Broken(), size=SIZE, save_dir=tmp_path)
    try:
        draw_strokes(window, ONE)
        window.settle()
        assert window.state == "error" and "model went away" in window.shown.message
        press_key(window, pygame.K_c)
        assert_empty(window)
    finally:
        window.close()


# --- the pad on its own ---------------------------------------------------------------------------

def outer_radius_spread(pad: Pad, centre: tuple[float, float]) -> float:
    """How much the outer edge of a ring of ink strays from a circle, in px (max - min over rays).

    The rays keep 60 degrees away from 0, where the stroke starts and ends at a mouse position.
    """
    radii = []
    for degrees in range(60, 301):
        direction = np.array([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])
        samples = np.array(centre) + np.outer(np.arange(0, 200, 0.25), direction)
        inked = pad.ink[samples[:, 1].astype(int), samples[:, 0].astype(int)] >= 0.5
        radii.append(np.flatnonzero(inked)[-1] * 0.25)
    return max(radii) - min(radii)


def test_fast_mouse_strokes_are_drawn_round_not_as_polygons() -> None:
    centre, radius = (200.0, 200.0), 120.0
    angles = [k * math.tau / 12 for k in range(13)]  # 63 px between mouse events: a quick circle
    corners = [(centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
               for angle in angles]
    smooth, polygon = Pad(400, 400, pen=27), Pad(400, 400, pen=27)
    smooth.begin(corners[0])
    for point in corners[1:]:
        smooth.extend(point)
    smooth.end()
    polygon._paint(corners)  # the same points joined by straight lines
    assert outer_radius_spread(smooth, centre) < 0.5 * outer_radius_spread(polygon, centre)
    dot = Pad(100, 100, pen=27)
    dot.begin((50.0, 50.0))
    dot.end()
    assert 0.9 < (dot.ink >= 0.5).sum() / (math.pi * 13.5**2) < 1.1  # a click leaves a round dot
    assert 0 < dot.ink[50, 36] < 1  # with a soft edge


# --- the command ----------------------------------------------------------------------------------

def test_the_command_runs_headless_and_saves_a_screenshot(headless, tmp_path: Path) -> None:
    screenshot = tmp_path / "window.png"
    result = CliRunner().invoke(draw, ["--quit-after", "3", "--size", "300", "--screenshot", str(screenshot),
                                       "--save-dir", str(tmp_path / "drawings")])
    assert result.exit_code == 0, result.output
    assert re.search(r"first frame shown \d+\.\d+ s after start", result.stderr)
    assert Image.open(screenshot).size[0] == 16 + 300 + 32 + 300 + 16  # margin, pad, gap, panel, margin


def test_the_command_refuses_a_missing_model(headless, tmp_path: Path) -> None:
    result = CliRunner().invoke(draw, ["--model", str(tmp_path / "nothing.onnx"), "--quit-after", "1"])
    assert result.exit_code != 0 and isinstance(result.exception, NumbreError)


def test_the_command_refuses_to_run_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no display SDL would draw off screen: a window nobody sees that never closes."""
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(draw, ["--quit-after", "1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, NumbreError)
    assert str(result.exception) == ("no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY "
                                     "is set); run numbre draw on a desktop, or under xvfb-run")


def test_a_screenshot_path_that_cannot_be_written_is_refused_before_the_window(
        headless, tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("a file where the folder would be")
    result = CliRunner().invoke(draw, ["--quit-after", "1", "--screenshot", str(a_file / "shot.png")])
    assert isinstance(result.exception, NumbreError)
    assert str(result.exception) == (f"--screenshot {a_file}: {a_file} is a file, not a folder; "
                                     "choose another path")


# --- the real process on an X display -------------------------------------------------------------

def draw_command() -> list[str]:
    """`numbre draw` as a process; before the command is registered in the group, its module directly."""
    from numbre.cli import cli

    if "draw" in cli.commands:
        return [sys.executable, "-m", "numbre", "draw"]
    return [sys.executable, "-c", "from numbre.cli.draw_cmd import draw; draw(prog_name='numbre draw')"]


def read_until(stream, pattern: str, timeout: float) -> tuple[re.Match, str]:
    """Read a process's pipe until `pattern` matches what came so far; fails after `timeout` s."""
    text, deadline = "", time.monotonic() + timeout
    while (match := re.search(pattern, text)) is None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            pytest.fail(f"no {pattern!r} within {timeout} s; got: {text!r}")
        chunk = os.read(stream.fileno() if hasattr(stream, "fileno") else stream, 65536).decode()
        if not chunk:
            pytest.fail(f"the process closed its output before {pattern!r}; got: {text!r}")
        text += chunk
    return match, text


def read_xwd(path: Path) -> np.ndarray:
    """Xvfb's -fbdir screen file (XWD, 24-bit TrueColor in 32-bit pixels) as (H, W, 3) uint8 RGB."""
    data = path.read_bytes()
    header = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order, bits_per_pixel, bytes_per_line = (
        header[0], header[4], header[5], header[7], header[11], header[12])
    masks, colours = header[14:17], header[19]
    assert bits_per_pixel == 32, f"Xvfb screen is {bits_per_pixel} bits a pixel; the test starts it at 24"
    offset = header_size + colours * 12
    rows = np.frombuffer(data, np.uint8, bytes_per_line * height, offset).reshape(height, bytes_per_line)
    words = rows[:, :4 * width].copy().view("<u4" if byte_order == 0 else ">u4")
    channels = [(words & mask) >> ((mask & -mask).bit_length() - 1) for mask in masks]  # R, G, B
    return np.stack(channels, -1).astype(np.uint8)


@contextmanager
def xvfb(screen_dir: Path) -> Iterator[str]:
    """A virtual X display on a free number, its screen memory as an XWD file in `screen_dir`."""
    server_binary = shutil.which("Xvfb")
    if server_binary is None:
        pytest.fail("this test runs `numbre draw` on a virtual X display: apt-get install xvfb",
                    pytrace=False)
    display_pipe, display_end = os.pipe()
    server = subprocess.Popen([server_binary, "-displayfd", str(display_end), "-screen", "0", "1280x800x24",
                               "-fbdir", str(screen_dir), "-nolisten", "tcp"],
                              pass_fds=(display_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(display_end)
    try:
        yield ":" + read_until(display_pipe, r"(\d+)\n", 15)[0][1]
    finally:
        os.close(display_pipe)
        server.terminate()
        server.wait(timeout=10)


class XPointer:
    """The X server's own pointer, moved and pressed through the XTEST extension, as a hand would."""

    def __init__(self, display: str) -> None:
        try:
            self.x11, self.xtest = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXtst.so.6")
        except OSError as error:
            pytest.fail(f"this test moves the X pointer with libXtst ({error}): apt-get install libxtst6",
                        pytrace=False)
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        connection, number, delay = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong
        self.xtest.XTestFakeMotionEvent.argtypes = [connection, number, number, number, delay]
        self.xtest.XTestFakeButtonEvent.argtypes = [connection, ctypes.c_uint, number, delay]
        self.connection = self.x11.XOpenDisplay(display.encode())
        assert self.connection, f"cannot connect to X display {display}"

    def stroke(self, points: list[tuple[int, int]]) -> None:
        """Left button down at the first point, moved through the rest, up at the last."""
        self.xtest.XTestFakeMotionEvent(self.connection, -1, *points[0], 0)
        self.xtest.XTestFakeButtonEvent(self.connection, 1, True, 0)
        for x, y in points[1:]:
            self.xtest.XTestFakeMotionEvent(self.connection, -1, x, y, 0)
        self.xtest.XTestFakeButtonEvent(self.connection, 1, False, 0)
        self.x11.XSync(self.connection, 0)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.connection)


def wait_for_screen(screen_file: Path, where: tuple[int, int, int, int], ready, what: str) -> np.ndarray:
    """The window's part of the X screen, read until `ready(pixels)` holds (at most 10 s)."""
    left, top, width, height = where
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = read_xwd(screen_file)[top:top + height, left:left + width]
        if shown.shape[:2] == (height, width) and ready(shown):
            return shown
        time.sleep(0.02)
    pytest.fail(f"the X screen never showed {what}")


def test_the_real_command_on_xvfb_shows_its_window_and_reads_a_drawn_seven(
        headless, recognizer: Recognizer, tmp_path: Path) -> None:
    xwininfo = shutil.which("xwininfo")
    if xwininfo is None:
        pytest.fail("this test finds the window with xwininfo: apt-get install x11-utils", pytrace=False)
    reference = DrawWindow(recognizer, size=SIZE)  # the same layout as the process's window, headless
    pad, bar, seen = reference.canvas_rect, reference.bar_rects[7], reference.seen_rect
    reference.close()
    screen_dir, shot = tmp_path / "screen", tmp_path / "window.png"
    screen_dir.mkdir()
    with xvfb(screen_dir) as display:
        environment = {**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11"}
        started = time.monotonic()
        app = subprocess.Popen([*draw_command(), "--size", str(SIZE), "--screenshot", str(shot),
                                "--save-dir", str(tmp_path)],
                               env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            match, _ = read_until(app.stderr, r"first frame shown (\d+\.\d+) s after start", 30)
            seen_by_test, startup = time.monotonic() - started, float(match[1])
            info = subprocess.run([xwininfo, "-display", display, "-name", "numbre draw"],
                                  capture_output=True, text=True, timeout=10, check=True).stdout
            assert "Map State: IsViewable" in info
            where = tuple(int(re.search(rf"{name}:\s+(-?\d+)", info)[1]) for name in
                          ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height"))
            screen_file = screen_dir / "Xvfb_screen0"
            def paper_shows(shown: np.ndarray) -> bool:
                return bool((shown[pad.centery, pad.centerx] == PAPER).all())

            wait_for_screen(screen_file, where, paper_shows, "the first frame")
            mouse = XPointer(display)
            corners = [(where[0] + pad.x + SIZE * x, where[1] + pad.y + SIZE * y) for x, y in SEVEN[0]]
            points = [(round(x0 + (x1 - x0) * k / 30), round(y0 + (y1 - y0) * k / 30))
                      for (x0, y0), (x1, y1) in itertools.pairwise(corners) for k in range(30)]
            mouse.stroke([*points, (round(corners[-1][0]), round(corners[-1][1]))])
            mouse.close()
            previous: list[np.ndarray] = []

            def answered_and_still(shown: np.ndarray) -> bool:
                """Bar 7 highlighted, and the same frame three reads running: the final answer."""
                previous.append(shown)
                return ((shown[bar.centery, bar.x + 3] == ACCENT).all()
                        and len(previous) >= 3 and all((frame == shown).all() for frame in previous[-3:]))

            shown = wait_for_screen(screen_file, where, answered_and_still, "the 7 read with its bar")
            app.send_signal(signal.SIGTERM)  # SDL turns it into a QUIT event: the window closes normally
            assert app.wait(timeout=15) == 0, app.stderr.read().decode()
        finally:
            if app.poll() is None:
                app.kill()
                app.wait(timeout=10)
    own = np.asarray(Image.open(shot).convert("RGB"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "xvfb-numbre-draw.png")
    Image.fromarray(shown).save(ARTIFACTS / "xvfb-screen-crop.png")
    report = (f"numbre draw on Xvfb: first frame {startup:.3f} s after process start (measured inside the "
              f"process), {seen_by_test:.3f} s as seen by the test; window {where[2]}x{where[3]}\n")
    (ARTIFACTS / "startup.txt").write_text(report)
    print(report, end="")
    assert own.shape == shown.shape and (own == shown).all()  # the window's last frame is what X showed
    assert (own[pad.y + int(0.15 * SIZE), pad.centerx] < 40).all()  # the 7's bar, drawn by the pointer
    assert own[seen.top:seen.bottom, seen.left:seen.right].max() > 200  # and what the network saw
    # How fast the window starts is a benchmark's figure (benchmarks/draw_startup.py), not a test's.
