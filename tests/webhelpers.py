"""A real uvicorn server in a background thread, for the API and browser tests.

Tests talk to it over loopback HTTP like any client, so request parsing, Content-Length, chunked
bodies and the thread pool are all the real ones. The socket is bound before the thread starts
(port 0: a free port), so there is no race between picking a port and listening on it.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageDraw


@contextmanager
def live_server(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 while the block runs; yields the base URL."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[listener])), daemon=True)
    thread.start()
    try:
        for _ in range(3000):  # up to 30 s for the loop to start (a busy machine); normally milliseconds
            if server.started:
                break
            threading.Event().wait(0.01)
        else:
            raise RuntimeError("the test server did not start")
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


ONE = [[(150, 40), (140, 240)]]  # a 1 in strokes_png's 280x280 pixels
PNG = {"Content-Type": "image/png"}  # the header of a raw PNG body


def strokes_png(strokes: list[list[tuple[float, float]]], size: tuple[int, int] = (280, 280),
                pen: int = 18) -> bytes:
    """A canvas-like PNG: black strokes (polylines in pixels) on white, as the drawing page sends."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=pen, joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round caps, like the page's lineCap
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is not used


@contextmanager
def headless_chromium() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright; yields the Browser."""
    import shutil

    import playwright.sync_api as playwright_api

    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()
