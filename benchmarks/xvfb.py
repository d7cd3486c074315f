"""A fresh Xvfb display for the benchmarks that need a real (virtual) screen: draw_startup.py and
page_latency.py. Imported by them as a sibling module (they run as scripts from this folder)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator


@contextlib.contextmanager
def xvfb_display(caller: str) -> Iterator[str]:
    """A display on a number Xvfb picks itself (-displayfd), stopped afterwards; `caller` names the
    benchmark in the error when Xvfb is missing or does not start."""
    if shutil.which("Xvfb") is None:
        raise SystemExit(f"{caller}: a headed run needs Xvfb (apt-get install -y xvfb)")
    reader, writer = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(writer), "-screen", "0", "1280x1024x24",
                               "-nolisten", "tcp"],
                              pass_fds=(writer,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(writer)
    try:
        with os.fdopen(reader) as announced:  # Xvfb writes its display number once it is ready
            number = announced.readline().strip()
        if not number:
            raise SystemExit(f"{caller}: Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)
