"""Locust users for benchmarks/web_load.py: each posts canvas-sized PNGs to /api/predict, back to back.

A pool of 280x280 drawings (numbre.drawn's "canvas" style, from the built-in stroke font, so no
MNIST download is needed) is made once per load process; every request sends one of them as the
raw body, as the drawing page does. A request counts as failed unless it answers 200 with a
prediction in the JSON shape of `numbre predict --json`.

Run by web_load.py; by hand:  locust -f benchmarks/web_locustfile.py --headless -u 8 -t 20s --host URL
"""

from __future__ import annotations

import io
import itertools

import numpy as np
from locust import FastHttpUser, constant, task
from PIL import Image

from numbre.drawn import drawn_digit, glyph

POOL = 64  # drawings in the pool: enough that no cache or branch predictor sees one image only


def canvas_pngs(count: int, seed: int = 0) -> list[bytes]:
    """`count` canvas-style 280x280 digit drawings as PNG bytes, digits 0-9 in turn."""
    rng = np.random.default_rng(seed)
    pngs = []
    for index in range(count):
        pixels = drawn_digit(glyph(index % 10, rng), rng, style="canvas")
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    return pngs


DRAWINGS = canvas_pngs(POOL)
_next = itertools.cycle(range(POOL))


class PredictUser(FastHttpUser):
    """One client: post, wait for the answer, post again (no think time: a closed-loop load)."""

    wait_time = constant(0)

    @task
    def predict(self) -> None:
        body = DRAWINGS[next(_next)]
        with self.client.post("/api/predict", data=body, headers={"Content-Type": "image/png"},
                              catch_response=True, name="POST /api/predict") as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
            elif "probabilities" not in (response.json() or {}):
                response.failure(f"not a prediction: {response.text[:200]}")
