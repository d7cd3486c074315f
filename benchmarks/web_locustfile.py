"""Locust users for benchmarks/web_load.py: each posts canvas-sized PNGs to /api/predict, back to back.

The pool of 280x280 drawings is web_load.py's (numbre.data.drawn's "canvas" style), made once per
load process; every request sends one of them as the raw body, as the drawing page does. A request
counts as failed unless it answers 200 with a prediction in the JSON shape of `numbre predict --json`.

Run by `web_load.py --tool locust`; by hand:
    locust -f benchmarks/web_locustfile.py --headless -u 8 -t 20s --host URL
"""

from __future__ import annotations

import itertools

from locust import FastHttpUser, constant, task

from web_load import POOL, canvas_pngs  # locust puts this file's folder on sys.path

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
