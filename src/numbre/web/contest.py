"""The page's "you against the model" contest and its "show what mattered" overlay, as an API router.

    GET  /api/contest?count=10     digits to read, as PNGs, without their answers
    POST /api/contest/answer       {"id": 3, "guess": 7} -> the truth and the model's answer
    POST /api/saliency             an image, like /api/predict -> where the pixels mattered, as a heat map

The contest set (`numbre.insight.contest`) is read from `contest/` beside this module when the app is
built, and answered by the served model: when another model made the set, the served model's
answers are computed then (a few dozen images, milliseconds), so the score is always against the
model the page talks to. The score is kept by the page: the server holds no per-person state, and
answering a digit twice gives the same answer.

Saliency is `numbre.insight.explain.occlusion_saliency` on the 28x28 image the network saw; this module
only colours it for the page.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from numbre.errors import NumbreError
from numbre.insight.contest import ContestError, ContestSet, answered_by, load_contest_set
from numbre.insight.explain import occlusion_saliency
from numbre.reading.images import MAX_PIXELS, open_image
from numbre.reading.recognize import EMPTY
from numbre.web import schemas
from numbre.web.limits import WorkPool
from numbre.web.uploads import UPLOAD_BODY, image_bytes, pixels_png_base64, png_base64

if TYPE_CHECKING:
    from numbre.reading.recognize import Recognizer

CONTEST_FOLDER = Path(__file__).parent / "contest_set"
DEFAULT_COUNT = 10  # digits in one game on the page
log = logging.getLogger("numbre.web")


class ContestDigitOut(BaseModel):
    """A digit to read; its answer comes only from `POST /api/contest/answer`."""

    id: int = Field(description="Send this back with the guess.")
    image: str = Field(description="The 28x28 test digit as a base64 PNG, white ink on black as in MNIST.")


class ContestRoundOut(BaseModel):
    """Digits for one game, drawn at random from the contest set."""

    digits: list[ContestDigitOut]
    total: int = Field(description="How many digits the contest set holds.")
    model: str = Field(description="The architecture of the model you play against.")


class ContestAnswerIn(BaseModel):
    """A person's reading of one contest digit."""

    id: int = Field(ge=0, strict=True, description="The digit's id from `GET /api/contest`.")
    guess: int = Field(ge=0, le=9, strict=True, description="The digit the person read, 0-9.")


class ModelAnswerOut(BaseModel):
    digit: int = Field(description="The model's most likely digit.")
    confidence: float = Field(description="Its calibrated probability.")


class ContestAnswerOut(BaseModel):
    """The truth about one contest digit, and who read it right."""

    id: int
    guess: int
    truth: int = Field(description="The digit's label in the test set.")
    model: ModelAnswerOut
    person_right: bool
    model_right: bool


class SaliencyOut(BaseModel):
    """Where the pixels of the network's input mattered for its answer."""

    digit: int | None = Field(description="As in `POST /api/predict`.")
    confidence: float
    probabilities: list[float]
    reason: schemas.Reason | None = Field(None, description="Present only when `digit` is null: why.")
    target: int | None = Field(description="The digit the saliency is for: `digit`, or the most likely "
                                           "digit when `digit` is null; null when the image is empty.")
    image: str | None = Field(description="The 28x28 image the network saw, as a base64 PNG; null when "
                                          "empty.")
    saliency: str | None = Field(description="A 28x28 RGBA heat map as a base64 PNG, to lay over `image`: "
                                             "opaque red where covering the pixels changes the answer "
                                             "most, transparent where it does not matter; null when empty.")
    values: list[list[float]] | None = Field(description="The saliency itself: 28 rows of 28 values in "
                                                         "[0, 1]; null when the image is empty.")


def contest_router(recognizer: Recognizer, *, max_bytes: int, pool: WorkPool,
                   max_pixels: int = MAX_PIXELS, folder: Path = CONTEST_FOLDER) -> APIRouter:
    """The contest and saliency endpoints over `recognizer`; the contest set is read and answered now.

    Uploads to /api/saliency are held to the server's `max_bytes` and `max_pixels`, like /api/predict's,
    and its work runs on the server's `pool`, within the same limit of recognitions at once.
    """
    contest, unavailable = _served_contest(recognizer, folder)
    size = len(contest) if contest is not None else 1
    router = APIRouter()
    images = [pixels_png_base64(digit) for digit in contest.images] if contest is not None else []
    # A plain default, not Annotated: the bound is this set's size, and annotations here are strings.
    count_query = Query(min(DEFAULT_COUNT, size), ge=1, le=size,
                        description=f"How many digits, 1 to {size}; all different.")

    def ready() -> ContestSet:
        if contest is None:
            raise HTTPException(404, f"this server has no contest: {unavailable}")
        return contest

    @router.get("/api/contest", response_model=ContestRoundOut, responses=_ERRORS, tags=["contest"])
    async def contest_digits(count: int = count_query) -> dict[str, Any]:
        """Digits to read, at random from the model's hardest test digits; the answers stay hidden."""
        chosen = random.sample(range(len(ready())), count)
        return {"digits": [{"id": index, "image": images[index]} for index in chosen],
                "total": len(ready()), "model": str(recognizer.meta.get("architecture", "?"))}

    @router.post("/api/contest/answer", response_model=ContestAnswerOut, responses=_ERRORS, tags=["contest"])
    async def contest_answer(answer: ContestAnswerIn) -> dict[str, Any]:
        """The true digit and the model's answer for a digit the person has read."""
        played = ready()
        if answer.id >= len(played):
            raise HTTPException(404, f"there is no contest digit {answer.id}: ids go from 0 to "
                                     f"{len(played) - 1}; take them from GET /api/contest")
        truth = int(played.labels[answer.id])
        model_digit = int(played.answers.digits[answer.id])
        return {"id": answer.id, "guess": answer.guess, "truth": truth,
                "model": {"digit": model_digit,
                          "confidence": round(float(played.answers.confidences[answer.id]), 6)},
                "person_right": answer.guess == truth, "model_right": model_digit == truth}

    @router.post("/api/saliency", response_model=SaliencyOut, responses=schemas.ERRORS,
                 openapi_extra=UPLOAD_BODY, tags=["recognition"])
    async def saliency(request: Request) -> Response:
        """Read the image as one digit, and show which of the network's input pixels decided it."""
        data = await image_bytes(request, max_bytes)
        try:
            answer = await pool.run(_saliency, recognizer, data, max_bytes, max_pixels)
        except NumbreError as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        return Response(json.dumps(answer), media_type="application/json")

    return router


def _served_contest(recognizer: Recognizer, folder: Path) -> tuple[ContestSet | None, str]:
    """The contest set answered by `recognizer`, or None and why there is none."""
    try:
        made = load_contest_set(folder)
        contest, recomputed = answered_by(made, recognizer)
    except ContestError as error:
        log.warning("no contest: %s", error)
        return None, str(error)
    if recomputed:
        log.info("the contest set was made by another model (%s); the served model %s answered it now",
                 made.answers.model.get("architecture", "?"), recognizer.meta.get("architecture", "?"))
    return contest, ""


def _saliency(recognizer: Recognizer, data: bytes, max_bytes: int, max_pixels: int) -> dict[str, Any]:
    """Prediction JSON plus the saliency for the digit the page shows as most likely (the named digit,
    or the highest bar when it names none), so the overlay explains the answer on the screen."""
    prediction = recognizer.predict(open_image(data, max_bytes=max_bytes, max_pixels=max_pixels))
    answer: dict[str, Any] = {**prediction.to_dict(), "target": None, "image": None, "saliency": None,
                              "values": None}
    if prediction.reason == EMPTY:
        return answer
    target = int(np.argmax(prediction.probabilities))
    values = occlusion_saliency(recognizer.model, prediction.image, target=target)
    answer.update(target=target, image=png_base64(prediction.image),
                  saliency=pixels_png_base64(heat_map(values)),
                  values=np.round(values.astype(np.float64), 4).tolist())
    return answer


def heat_map(values: np.ndarray) -> np.ndarray:
    """(28, 28) saliency in [0, 1] -> (28, 28, 4) uint8 RGBA: yellow and faint to red and opaque."""
    level = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    pixels = np.zeros((*level.shape, 4), np.uint8)
    pixels[..., 0] = 255
    pixels[..., 1] = np.round(220 * (1 - level))
    pixels[..., 3] = np.round(255 * level)
    return pixels


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorOut, "description": "No such contest digit, or the server has no contest."},
    422: {"model": schemas.ErrorOut, "description": "A count, id or guess out of range, or not a number."},
}
