"""The drawing window behind `numbre draw`: draw with the mouse, see the answer while drawing.

    window = DrawWindow(Recognizer.load())
    window.run()            # a test instead posts pygame events, then calls step() or settle()

Three layers, so most of it is tested without a screen:

- `Pad` turns pointer positions into strokes and strokes into a numpy ink canvas. No pygame.
- `describe` turns the Recognizer's answer into what the panel shows. No pygame.
- `DrawWindow` holds the state, handles pygame events, paints, and asks the Recognizer.

Recognition takes 5-10 ms for a 420 px pad, so it runs on one worker thread and a frame never waits
for it. While the pen moves the pad is sent at most every THROTTLE seconds, and only once the
previous answer is in; when the pen lifts it is sent at once. Clearing, undoing and switching mode
void the answers still on their way (`epoch`), as on the web page.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pygame
from PIL import Image

from numbre.data.corrections import Correction, CorrectionStore, model_label
from numbre.errors import NumbreError
from numbre.reading.recognize import EMPTY, NOT_A_DIGIT, SEVERAL, Box, Prediction, Reading, Recognizer

Point = tuple[float, float]  # pad pixels, x to the right, y down; pixel (0, 0) spans 0..1
Colour = tuple[int, int, int]

TITLE = "numbre draw"
PEN_PER_SIDE = 18 / 280  # the web pad's pen: MNIST's stroke for its box, and wide enough for a mouse
CURVE_STEP = 4.0  # px between the points a smoothed curve is drawn through
THROTTLE = 0.1  # s between recognitions while the pen moves: about ten answers a second
FPS = 60
MARGIN, PANEL_WIDTH, GAP = 16, 300, 8
SEEN_SCALE = 4  # the 28x28 network input shown at 112x112, nearest-neighbour so its pixels stay visible
NOTICE_SECONDS = 4.0

PAPER, PAGE, INK, MUTED = (255, 255, 255), (243, 245, 247), (27, 31, 36), (91, 101, 112)
LINE, FADED, BAR = (213, 218, 224), (170, 176, 184), (154, 164, 174)
ACCENT, WARN = (31, 111, 235), (179, 38, 30)

EMPTY_PAD = {"digit": "Draw a digit in the box.", "number": "Write a number in the box, digits side by side."}
REASONS = {
    EMPTY: "The drawing is empty: there is no ink to read.",
    NOT_A_DIGIT: "That does not look like a digit.",
    SEVERAL: "That looks like several digits: press N to read it as a number.",
}
SOME_NOT_DIGITS = "Some of that is not a digit (marked ?)."
HELP = {"digit": "Draw one digit with the left mouse button. W if the answer is wrong. Esc quits.",
        "number": "Write a number, digits side by side. N goes back to one digit. Esc quits."}
BUTTONS = (("clear", "Clear  (C)"), ("undo", "Undo  (Ctrl+Z)"), ("number", "Number  (N)"),
           ("save", "Save PNG  (S)"), ("wrong", "Wrong?  (W)"))
ASK_DIGIT = "That was wrong? Press the digit it is, 0-9 (Esc cancels)."
CORRECTIONS_OFF = "Corrections are off: start numbre draw with --corrections DIR to keep them."
DIGIT_KEYS = {**{getattr(pygame, f"K_{digit}"): digit for digit in range(10)},
              **{getattr(pygame, f"K_KP{digit}"): digit for digit in range(10)}}

log = logging.getLogger("numbre.desktop")


# --- the pad: strokes to pixels, no pygame ---------------------------------------------------------

class Pad:
    """Strokes of a round pen and the (H, W) float32 ink canvas they make: 0 is paper, 1 is ink.

    Between pointer positions the pen follows quadratic curves through the midpoints, so a fast
    mouse (events 10-40 px apart) still draws a round stroke, not a polygon; the curve trails the
    pointer by half a segment until the stroke ends. Edges are anti-aliased from the exact distance
    to the pen's path. Undo repaints from the strokes, which gives the very pixels drawn live.
    """

    def __init__(self, width: int, height: int, pen: float) -> None:
        self.pen = pen
        self.version = 0  # bumped by every change, so a view knows when to repaint
        self.resize(width, height)

    @property
    def empty(self) -> bool:
        return not self.strokes

    def resize(self, width: int, height: int) -> None:
        """A blank pad of the new size (a drawing does not fit another shape)."""
        self.width, self.height = width, height
        self.ink = np.zeros((height, width), np.float32)
        self.strokes: list[list[Point]] = []
        self.drawing = False
        self.version += 1

    def begin(self, point: Point) -> None:
        self.end()
        self.strokes.append([point])
        self.drawing = True
        self._paint([point])

    def extend(self, point: Point) -> None:
        if not self.drawing or point == self.strokes[-1][-1]:
            return
        stroke = self.strokes[-1]
        stroke.append(point)
        self._paint(_piece(stroke, len(stroke) - 1))

    def end(self) -> None:
        if self.drawing:
            self.drawing = False
            self._paint(_tail(self.strokes[-1]))

    def undo(self) -> bool:
        """Take back the last stroke; False when there is none."""
        self.end()
        if not self.strokes:
            return False
        self.strokes.pop()
        self.ink[:] = 0.0
        self.version += 1
        for stroke in self.strokes:
            self._paint([stroke[0]])
            for index in range(1, len(stroke)):
                self._paint(_piece(stroke, index))
            self._paint(_tail(stroke))
        return True

    def clear(self) -> None:
        self.resize(self.width, self.height)

    def grey(self) -> np.ndarray:
        """(H, W) uint8, black ink on white paper: the image shown, recognised and saved."""
        return np.round(255.0 * (1.0 - self.ink)).astype(np.uint8)

    def save_png(self, folder: Path, now: datetime | None = None) -> Path:
        """Write the drawing as numbre-drawing-<date>-<time>.png in `folder`, never over a file."""
        folder.mkdir(parents=True, exist_ok=True)
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        for attempt in itertools.count(1):
            path = folder / (f"numbre-drawing-{stamp}.png" if attempt == 1
                             else f"numbre-drawing-{stamp}-{attempt}.png")
            try:
                with path.open("xb") as file:  # exclusive: two saves in one second get two files
                    Image.fromarray(self.grey(), "L").save(file, "PNG")
            except FileExistsError:
                continue
            return path
        raise AssertionError("unreachable")

    def _paint(self, path: list[Point]) -> None:
        """Ink along a polyline (a single point is a dot), keeping the darker of old and new ink."""
        if not path:
            return
        for start, stop in zip(path, path[1:] or path, strict=False):
            self._capsule(start, stop)
        self.version += 1

    def _capsule(self, a: Point, b: Point) -> None:
        """One straight piece of pen: every pixel within pen/2 of segment ab, anti-aliased over 1 px."""
        radius = self.pen / 2
        x0 = max(math.floor(min(a[0], b[0]) - radius - 1), 0)
        x1 = min(math.ceil(max(a[0], b[0]) + radius + 1), self.width)
        y0 = max(math.floor(min(a[1], b[1]) - radius - 1), 0)
        y1 = min(math.ceil(max(a[1], b[1]) + radius + 1), self.height)
        if x0 >= x1 or y0 >= y1:
            return
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5  # pixel centres, (1, w)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5  # (h, 1)
        dx, dy = b[0] - a[0], b[1] - a[1]
        length2 = dx * dx + dy * dy
        t = np.clip(((xs - a[0]) * dx + (ys - a[1]) * dy) / length2, 0.0, 1.0) if length2 else 0.0
        distance = np.hypot(xs - (a[0] + t * dx), ys - (a[1] + t * dy))
        window = self.ink[y0:y1, x0:x1]
        np.maximum(window, np.clip(radius + 0.5 - distance, 0.0, 1.0), out=window)


def _midpoint(a: Point, b: Point) -> Point:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2


def _piece(stroke: list[Point], index: int) -> list[Point]:
    """The path drawn when point `index` (>= 1) arrives: up to the midpoint of its segment."""
    if index == 1:
        return [stroke[0], _midpoint(stroke[0], stroke[1])]
    start, control = _midpoint(stroke[index - 2], stroke[index - 1]), stroke[index - 1]
    stop = _midpoint(stroke[index - 1], stroke[index])
    steps = max(1, math.ceil((math.dist(start, control) + math.dist(control, stop)) / CURVE_STEP))
    return [((1 - t) ** 2 * start[0] + 2 * (1 - t) * t * control[0] + t * t * stop[0],
             (1 - t) ** 2 * start[1] + 2 * (1 - t) * t * control[1] + t * t * stop[1])
            for t in (step / steps for step in range(steps + 1))]


def _tail(stroke: list[Point]) -> list[Point]:
    """The path drawn when the stroke ends: from the last midpoint to the last point."""
    return [_midpoint(stroke[-2], stroke[-1]), stroke[-1]] if len(stroke) > 1 else []


# --- what the panel shows, no pygame -------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Shown:
    """What the panel shows for one answer (or for an empty pad)."""

    headline: str = "\u2013"  # the digit or number; an en dash before there is anything, "?" when refused
    detail: str = ""  # "97.3% sure", "2 digits"
    message: str = ""
    probabilities: tuple[float, ...] = (0.0,) * 10
    best: int | None = None  # the bar drawn in the accent colour: the digit named, if any
    seen: tuple[np.ndarray, ...] = ()  # what the network saw: one (28, 28) float image per digit
    captions: tuple[str, ...] = ()  # under each seen image in number mode: "7 98%"
    boxes: tuple[tuple[Box, str, bool], ...] = ()  # number mode: (box, label, was read)


def describe(answer: Prediction | Reading | None, mode: str) -> Shown:
    """The panel for `answer`; None is the empty pad of `mode` ("digit" or "number")."""
    if answer is None:
        return Shown(message=EMPTY_PAD[mode])
    if isinstance(answer, Reading):
        if not answer.digits:
            return Shown(message=REASONS[EMPTY])
        labels = [str(digit.digit) if digit.digit is not None else "?" for digit in answer.digits]
        read = answer.number is not None
        count = len(answer.digits)
        return Shown(
            headline="".join(labels), detail=f"{count} digit{'' if count == 1 else 's'}" if read else "",
            message="" if read else SOME_NOT_DIGITS, seen=tuple(digit.image for digit in answer.digits),
            captions=tuple(f"{label} {digit.confidence:.0%}" for label, digit in zip(labels, answer.digits,
                                                                                     strict=True)),
            boxes=tuple((digit.box, label, digit.digit is not None)
                        for label, digit in zip(labels, answer.digits, strict=True) if digit.box))
    if answer.digit is not None:
        return Shown(str(answer.digit), f"{answer.confidence:.1%} sure", "", answer.probabilities,
                     answer.digit, (answer.image,))
    return Shown("\u2013" if answer.reason == EMPTY else "?", "", REASONS.get(answer.reason or "", ""),
                 answer.probabilities, None, () if answer.reason == EMPTY else (answer.image,))


# --- the window ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    """A recognition on its way: the drawing's generation and epoch when it was sent."""

    future: Future
    generation: int
    epoch: int


class DrawWindow:
    """The window's state, its event handling and its painting; `run` is the loop a person uses.

    Tests drive it the way the loop does: post pygame events, then `step()`; `settle()` steps until
    the drawing as it is now has its answer. `clock` is injectable so throttling can be tested.
    """

    def __init__(self, recognizer: Recognizer, *, size: int = 420, save_dir: Path | None = None,
                 corrections: CorrectionStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.recognizer = recognizer
        self.corrections = corrections  # where "Wrong?" keeps drawings with their right digit; None: off
        self.correcting = False  # "Wrong?" was pressed: the next digit key names the right digit
        self.size = size
        self.save_dir = save_dir if save_dir is not None else Path.cwd()
        self.clock = clock
        self.mode = "digit"
        self.pad = Pad(size, size, pen=max(2.0, size * PEN_PER_SIDE))
        pygame.display.init()  # not pygame.init(): sound and joysticks cost start-up time for nothing
        pygame.font.init()
        pygame.display.set_caption(TITLE)
        self.fonts = {name: pygame.font.Font(None, px) for name, px in
                      (("small", 17), ("body", 21), ("mid", 52), ("big", 96))}
        self.shown = describe(None, self.mode)
        self.state = "empty"  # as the web page's data-state: empty, pending, done or error
        self.running = True
        self.frames = self.presented = 0  # loop turns, and frames actually shown
        self.generation = self.answered = self.epoch = 0
        self.asked_at = -math.inf
        self.job: _Job | None = None
        self.notice, self.notice_until = "", 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="numbre-recognize")
        self._pad_surface: tuple[int, pygame.Surface] | None = None  # (pad version, surface)
        self._seen_surfaces: list[pygame.Surface] = []
        self._dirty = True
        self._layout()

    # --- the loop --------------------------------------------------------------------------------
    def run(self, *, quit_after: int | None = None, on_first_frame: Callable[[], None] | None = None) -> None:
        """Loop at FPS turns a second until the window closes, or for `quit_after` turns."""
        pacer = pygame.time.Clock()
        while self.running:
            self.step()
            if on_first_frame is not None and self.presented:
                on_first_frame()
                on_first_frame = None
            if quit_after is not None and self.frames >= quit_after:
                break
            pacer.tick(FPS)

    def step(self) -> None:
        """One turn: handle the waiting events, collect or send a recognition, show a new frame if needed."""
        for event in pygame.event.get():
            self.handle_event(event)
        self._update(self.clock())
        if self._dirty:
            self.render()
            pygame.display.flip()
            self.presented += 1
            self._dirty = False
        self.frames += 1

    def settle(self, timeout: float = 10.0) -> None:
        """Step until the drawing as it is now has its answer (for tests and scripted screenshots)."""
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            if self.job is None and self.answered == self.generation:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout} s (state {self.state})")
            if self.job is not None:
                wait_for([self.job.future], timeout=0.05)
            else:
                time.sleep(0.005)  # throttled while the pen is down: the next request is due soon

    def close(self) -> None:
        """Close the window; a recognition still running finishes on its own and is dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        pygame.display.quit()

    def save_screenshot(self, path: Path) -> None:
        """The last frame, as shown, to a PNG (for documentation and the Xvfb test)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.screen, str(path))

    # --- input -----------------------------------------------------------------------------------
    def handle_event(self, event: pygame.event.Event) -> None:
        """Apply one pygame event: the left button draws on the pad and presses buttons; keys act."""
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN and self.correcting:
            self._correction_key(event.key)
        elif event.type == pygame.KEYDOWN:
            self._key(event.key, getattr(event, "mod", 0))
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and not self.pad.drawing:
            for name, rect in self.buttons.items():
                if rect.collidepoint(event.pos):
                    self.press(name)
        version = self.pad.version  # pen events below; the answer is out of date only if ink changed
        if event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            if self.canvas_rect.collidepoint(event.pos):
                self.pad.begin(self._pad_point(event.pos))
        elif event.type == pygame.MOUSEMOTION and self.pad.drawing:
            if event.buttons[0]:
                self.pad.extend(self._pad_point(event.pos))
            else:  # the button went up where the window could not see it
                self.pad.end()
        elif ((event.type == pygame.MOUSEBUTTONUP and event.button == 1)
              or event.type == pygame.WINDOWFOCUSLOST):
            self.pad.end()
        if self.pad.version != version:
            self._changed()

    def _key(self, key: int, modifiers: int) -> None:
        control = modifiers & (pygame.KMOD_CTRL | pygame.KMOD_META)
        if key == pygame.K_z and control:
            self.press("undo")
        elif key in (pygame.K_c, pygame.K_DELETE, pygame.K_BACKSPACE):
            self.press("clear")
        elif key == pygame.K_n:
            self.press("number")
        elif key == pygame.K_s:
            self.press("save")
        elif key == pygame.K_w:
            self.press("wrong")
        elif key == pygame.K_ESCAPE or (key == pygame.K_q and control):
            self.running = False

    def press(self, name: str) -> None:
        """What a button (or its key) does: clear, undo, number or save."""
        if name == "clear" and not self.pad.empty:
            self.pad.clear()
            self._changed(void=True)
        elif name == "undo" and self.pad.undo():
            self._changed(void=True)
        elif name == "number":
            self.mode = "digit" if self.mode == "number" else "number"
            self.pad.resize(*self._pad_size())
            self._layout()
            self._changed(void=True)
        elif name == "save":
            self.save()
        elif name == "wrong":
            self.ask_correction()

    def save(self) -> Path | None:
        """Save the drawing into save_dir and say where; None (and a notice) when there is nothing."""
        if self.pad.empty:
            self._notify("Nothing to save: the pad is empty.")
            return None
        try:
            path = self.pad.save_png(self.save_dir)
        except OSError as error:
            self._notify(f"Could not save the drawing: {error}")
            return None
        self._notify(f"Saved {path.name} in {path.parent}")
        return path

    # --- corrections -----------------------------------------------------------------------------
    def ask_correction(self) -> bool:
        """"Wrong?": ask for the right digit (the next digit key); False, with a notice saying why, when
        there is nothing to correct or nowhere to keep it."""
        if self.corrections is None:
            self._notify(CORRECTIONS_OFF)
        elif self.pad.empty:
            self._notify("Nothing to correct: draw a digit first.")
        elif self.mode == "number":
            self._notify("Corrections are for one digit: press N to go back to one digit.")
        else:
            self.correcting = True
            self.notice, self.notice_until = ASK_DIGIT, math.inf  # until a digit or Esc
            self._dirty = True
            return True
        return False

    def _correction_key(self, key: int) -> None:
        if key in DIGIT_KEYS:
            self.correct(DIGIT_KEYS[key])
        elif key == pygame.K_ESCAPE:
            self._end_correcting("")

    def _end_correcting(self, notice: str) -> None:
        self.correcting = False
        self.notice, self.notice_until = notice, self.clock() + NOTICE_SECONDS
        self._dirty = True

    def correct(self, label: int) -> Correction | None:
        """Keep the drawing, as drawn and as the network sees it, with `label` in the corrections folder."""
        if self.corrections is None or self.pad.empty:
            self._end_correcting(CORRECTIONS_OFF if self.corrections is None else "Nothing to correct.")
            return None
        drawn = self.pad.grey()
        prediction = self.recognizer.predict(drawn)  # 5-10 ms; the same pixels the answer came from
        try:
            saved = self.corrections.save(drawn, prediction.image, label, read_as=prediction.digit,
                                          confidence=prediction.confidence, source="numbre draw",
                                          model=model_label(self.recognizer.meta))
        except NumbreError as error:
            self._end_correcting(f"Not kept: {error}")
            return None
        self._end_correcting(f"Kept as {'an' if label == 8 else 'a'} {label} in {self.corrections.folder}; "
                             "train with numbre train --extra.")
        return saved

    def _pad_point(self, position: tuple[int, int]) -> Point:
        return position[0] - self.canvas_rect.x + 0.5, position[1] - self.canvas_rect.y + 0.5

    def _pad_size(self) -> tuple[int, int]:
        return (2 * self.size, self.size) if self.mode == "number" else (self.size, self.size)

    def _notify(self, text: str) -> None:
        self.notice, self.notice_until = text, self.clock() + NOTICE_SECONDS
        self._dirty = True

    # --- recognition -----------------------------------------------------------------------------
    def _changed(self, *, void: bool = False) -> None:
        """The drawing changed, so its answer is out of date; `void`: so are answers on their way."""
        if self.correcting:  # the correction asked for was about the drawing as it was
            self._end_correcting("")
        self.generation += 1
        if void:
            self.epoch += 1
        if self.pad.empty:
            self.answered, self.state = self.generation, "empty"
            self._show(describe(None, self.mode))
        else:
            self.state = "pending"
        self._dirty = True

    def _update(self, now: float) -> None:
        job = self.job
        if job is not None and job.future.done():
            self.job = None
            if job.epoch == self.epoch:
                self._collect(job)
        if (self.job is None and self.answered != self.generation and not self.pad.empty
                and (not self.pad.drawing or now - self.asked_at >= THROTTLE)):
            recognise = self.recognizer.read if self.mode == "number" else self.recognizer.predict
            self.job = _Job(self._executor.submit(recognise, self.pad.grey()), self.generation, self.epoch)
            self.asked_at = now
        if self.notice and now >= self.notice_until:
            self.notice = ""
            self._dirty = True

    def _collect(self, job: _Job) -> None:
        try:
            answer = job.future.result()
        except Exception as error:  # a failing model must not take the drawing with it
            log.exception("recognition failed")
            self._show(Shown(headline="!", message=f"Could not read the drawing: {error}"))
            self.state = "error"
        else:
            self._show(describe(answer, self.mode))
            self.state = "done" if job.generation == self.generation else "pending"
        self.answered = job.generation

    def _show(self, shown: Shown) -> None:
        self.shown = shown
        scale = SEEN_SCALE if self.mode == "digit" else SEEN_SCALE // 2
        self._seen_surfaces = [pygame.transform.scale_by(_grey_surface(np.round(np.clip(image, 0, 1) * 255)
                                                                       .astype(np.uint8)), scale)
                               for image in shown.seen]
        self._dirty = True

    # --- painting --------------------------------------------------------------------------------
    def _layout(self) -> None:
        """Place the pad, panel, bars and buttons for the current mode, and size the window to fit."""
        width, height = self._pad_size()
        self.canvas_rect = pygame.Rect(MARGIN, MARGIN, width, height)
        self.help_rect = pygame.Rect(MARGIN, self.canvas_rect.bottom + GAP, width, 44)
        left, seen = self.canvas_rect.right + 2 * MARGIN, 28 * SEEN_SCALE
        headline_width = PANEL_WIDTH - seen - 2 * GAP if self.mode == "digit" else PANEL_WIDTH
        self.headline_rect = pygame.Rect(left, MARGIN, headline_width, 92)
        self.seen_rect = pygame.Rect(left + PANEL_WIDTH - seen, MARGIN, seen, seen)
        self.message_rect = pygame.Rect(left, self.seen_rect.bottom + 30, PANEL_WIDTH, 46)
        top = self.message_rect.bottom + GAP
        self.bar_rects = [pygame.Rect(left + 22, top + 22 * digit + 4, PANEL_WIDTH - 22 - 50, 14)
                          for digit in range(10)]
        self.digits_rect = pygame.Rect(left, top, PANEL_WIDTH, 220)
        top = self.digits_rect.bottom + 2 * GAP
        button_width = (PANEL_WIDTH - GAP) // 2
        self.buttons = {name: pygame.Rect(left + (index % 2) * (button_width + GAP),
                                          top + (index // 2) * (36 + GAP), button_width, 36)
                        for index, (name, _) in enumerate(BUTTONS)}
        bottom = max(*(rect.bottom for rect in self.buttons.values()), self.help_rect.bottom)
        self.screen = pygame.display.set_mode((left + PANEL_WIDTH + MARGIN, bottom + MARGIN))
        self._pad_surface = None
        self._dirty = True

    def render(self) -> pygame.Surface:
        """Paint the whole window from the state onto the display surface; `step` shows it."""
        self.screen.fill(PAGE)
        self._render_pad()
        self._render_answer()
        if self.mode == "digit":
            self._render_bars()
        else:
            self._render_digits()
        self._render_buttons()
        notice = self.notice or HELP[self.mode]
        self._text(notice, self.help_rect, "small", INK if self.notice else MUTED)
        return self.screen

    def _render_pad(self) -> None:
        if self._pad_surface is None or self._pad_surface[0] != self.pad.version:
            self._pad_surface = self.pad.version, _grey_surface(self.pad.grey())
        self.screen.blit(self._pad_surface[1], self.canvas_rect)
        pygame.draw.rect(self.screen, LINE, self.canvas_rect.inflate(4, 4), 2)
        for (x0, y0, x1, y1), label, read in self.shown.boxes if self.mode == "number" else ():
            colour = ACCENT if read else WARN
            box = pygame.Rect(self.canvas_rect.x + x0, self.canvas_rect.y + y0, x1 - x0, y1 - y0)
            pygame.draw.rect(self.screen, colour, box, 3)
            text = self.fonts["body"].render(label, True, colour)
            self.screen.blit(text, (box.x + 2, max(self.canvas_rect.y + 2, box.y - text.get_height() - 1)))

    def _render_answer(self) -> None:
        shown, rect = self.shown, self.headline_rect
        font = next((self.fonts[name] for name in ("big", "mid")
                     if self.fonts[name].size(shown.headline)[0] <= rect.width), self.fonts["body"])
        self.screen.blit(font.render(shown.headline, True, WARN if shown.headline == "!" else INK), rect)
        self._text(shown.detail, pygame.Rect(rect.x, rect.bottom - 4, rect.width, 24), "body", MUTED)
        if self.mode == "digit":
            pygame.draw.rect(self.screen, (0, 0, 0), self.seen_rect)
            if self._seen_surfaces:
                self.screen.blit(self._seen_surfaces[0], self.seen_rect)
            pygame.draw.rect(self.screen, LINE, self.seen_rect.inflate(2, 2), 1)
            caption = pygame.Rect(0, self.seen_rect.bottom + 4, PANEL_WIDTH, 20)
            caption.right = self.seen_rect.right
            self._text("what the network saw", caption, "small", MUTED, align_right=True)
        self._text(shown.message, self.message_rect, "body", INK)

    def _render_bars(self) -> None:
        shown = self.shown
        for digit, track in enumerate(self.bar_rects):
            best = digit == shown.best
            probability = shown.probabilities[digit]
            self.screen.blit(self.fonts["body"].render(str(digit), True, INK if best else MUTED),
                             (track.x - 20, track.y - 1))
            pygame.draw.rect(self.screen, LINE, track, border_radius=3)
            fill = track.copy()
            fill.width = round(track.width * probability)
            if fill.width:
                pygame.draw.rect(self.screen, ACCENT if best else BAR, fill, border_radius=3)
            value = pygame.Rect(track.right + 4, track.y - 1, 46, 18)
            self._text(f"{probability:.0%}", value, "small", INK if best else MUTED, align_right=True)

    def _render_digits(self) -> None:
        """Number mode: each digit's network input, with what it was read as, four to a row."""
        area, cell = self.digits_rect, (PANEL_WIDTH + GAP) // 4
        shown_count = min(len(self._seen_surfaces), 8)
        for index, (surface, caption) in enumerate(zip(self._seen_surfaces[:shown_count], self.shown.captions,
                                                       strict=False)):
            x, y = area.x + (index % 4) * cell, area.y + (index // 4) * 84
            self.screen.blit(surface, (x, y))
            pygame.draw.rect(self.screen, LINE, pygame.Rect(x, y, 56, 56).inflate(2, 2), 1)
            self._text(caption, pygame.Rect(x, y + 60, cell, 20), "small", INK)
        if len(self._seen_surfaces) > shown_count:
            more = pygame.Rect(area.x, area.y + 170, area.width, 20)
            self._text(f"and {len(self._seen_surfaces) - shown_count} more", more, "small", MUTED)

    def _render_buttons(self) -> None:
        for name, label in BUTTONS:
            rect = self.buttons[name]
            pressed = name == "number" and self.mode == "number"
            enabled = name == "number" or (not self.pad.empty and (name != "wrong" or self.mode == "digit"))
            pygame.draw.rect(self.screen, ACCENT if pressed else PAPER, rect, border_radius=8)
            pygame.draw.rect(self.screen, ACCENT if pressed else LINE, rect, 1, border_radius=8)
            colour = PAPER if pressed else INK if enabled else FADED
            text = self.fonts["body"].render(label, True, colour)
            self.screen.blit(text, text.get_rect(center=rect.center))

    def _text(self, text: str, rect: pygame.Rect, font_name: str, colour: Colour, *,
              align_right: bool = False) -> None:
        """`text` word-wrapped into `rect`; lines that do not fit below it are dropped."""
        font = self.fonts[font_name]
        y = rect.y
        for line in _wrap(font, text, rect.width):
            if y + font.get_height() > rect.bottom + 4:
                break
            image = font.render(line, True, colour)
            self.screen.blit(image, (rect.right - image.get_width() if align_right else rect.x, y))
            y += font.get_linesize()


def _grey_surface(grey: np.ndarray) -> pygame.Surface:
    """A (H, W) uint8 image as an RGB surface (rows of the array are rows of the screen)."""
    height, width = grey.shape
    return pygame.image.frombytes(np.repeat(grey[:, :, None], 3, axis=2).tobytes(), (width, height), "RGB")


def _wrap(font: pygame.font.Font, text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if font.size(trial)[0] <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return [*lines, line] if line else lines
