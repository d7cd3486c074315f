"""`numbre draw`: a desktop window to draw digits in with the mouse, answered while you draw.

Needs the `desktop` extra (pygame-ce) and a display; on a machine without one, run it under
`xvfb-run`. The model loads before the window opens, so a bad --model fails with a one-line error
and the first frame can already answer. The start-up time, from process start to the first frame
shown, is printed on standard error.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from numbre.cli.predict_cmd import model_option
from numbre.errors import NumbreError

_IMPORTED = time.perf_counter()


def seconds_since_start() -> float:
    """Wall time since this process started, as the kernel recorded it (Linux, 10 ms steps).

    Elsewhere, the time since this module was imported, which misses the interpreter's own start.
    """
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
        if 0 <= age < 3600:
            return age
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return time.perf_counter() - _IMPORTED


@click.command()
@model_option
@click.option("--save-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder that S and the Save button write PNGs into (default: the current folder).")
@click.option("--corrections", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder where W (\"Wrong?\") keeps a drawing with the digit it really is, to train on "
                   "with `numbre train --extra DIR` (default: off).")
@click.option("--size", default=420, show_default=True, type=click.IntRange(140, 2000),
              help="Side of the square drawing pad in pixels; number mode makes it twice as wide.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the window's last frame to this PNG when it closes (default: none).")
@click.option("--quit-after", type=click.IntRange(1), default=None,
              help="Close after this many frames, 60 a second (default: stay open until closed).")
def draw(model: Path | None, save_dir: Path | None, corrections: Path | None, size: int,
         screenshot: Path | None, quit_after: int | None) -> None:
    """Open a window to draw a digit (or, with N, a number) in; the answer shows while you draw.

    Keys: C or Delete clears, Ctrl+Z undoes a stroke, N switches between one digit and a number,
    S saves the drawing as a PNG, W then a digit keeps a wrongly read drawing (--corrections), Esc quits.
    """
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on import otherwise
    try:
        import pygame
    except ImportError:
        raise NumbreError("numbre draw needs pygame-ce: pip install 'numbre[desktop]'") from None
    from numbre.desktop.window import DrawWindow
    from numbre.reading.recognize import Recognizer

    if screenshot is not None:  # a folder that cannot be made is known now, not after the session
        from numbre.atomic import prepare_folder

        prepare_folder(screenshot.parent, "--screenshot")
    if not os.environ.get("SDL_VIDEODRIVER"):
        # Without a display SDL falls back to drawing off screen: a window nobody sees, that never
        # closes. An SDL_VIDEODRIVER set on purpose (dummy, for scripts and tests) is respected.
        # On Linux the display is known from the environment, before SDL prints its own complaints.
        headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                            or os.environ.get("WAYLAND_DISPLAY"))
        if not headless:
            pygame.display.init()
        if headless or pygame.display.get_driver() in ("offscreen", "dummy"):
            pygame.display.quit()
            raise NumbreError("no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is "
                              "set); run numbre draw on a desktop, or under xvfb-run")
    store = None
    if corrections is not None:
        from numbre.atomic import prepare_folder
        from numbre.data.corrections import CorrectionStore

        prepare_folder(corrections, "--corrections")
        store = CorrectionStore(corrections)
    loading = time.perf_counter()
    recognizer = Recognizer.load(model)  # once, and before the window: a bad model fails cleanly
    loaded = time.perf_counter() - loading
    try:
        window = DrawWindow(recognizer, size=size, save_dir=save_dir, corrections=store)
    except pygame.error as error:
        raise NumbreError(f"cannot open a window: {error} (with no display, run it under xvfb-run)") from None

    def first_frame() -> None:
        click.echo(f"numbre draw: first frame shown {seconds_since_start():.3f} s after start "
                   f"(model loaded in {loaded:.3f} s); Esc quits", err=True)

    try:
        window.run(quit_after=quit_after, on_first_frame=first_frame)
    except KeyboardInterrupt:  # Ctrl+C in the terminal closes the window like Esc does
        pass
    finally:
        try:
            if screenshot is not None:
                window.save_screenshot(screenshot)
        except (pygame.error, OSError) as error:
            raise NumbreError(f"could not save the screenshot {screenshot}: {error}") from None
        finally:
            window.close()
