"""The HTTP API's JSON, as pydantic models so that /docs shows every field with its meaning.

The answers themselves are built by `Prediction.to_dict` and `Reading.to_dict`, the same
dictionaries `numbre predict --json` and `numbre read --json` print, so the command line and the
API cannot drift apart; these models describe that shape (and are checked against it in tests).
Fields that are absent unless they apply (`reason`, `image`) are marked so.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Reason = Literal["empty", "several digits", "not a digit"]

IMAGE_FIELD = Field(None, description="Only with `?image=1`: the 28x28 image the network saw, as a base64 "
                                      "PNG (white ink on black, like MNIST).")


class PredictionOut(BaseModel):
    """One image read as one digit (`POST /api/predict`, `numbre predict --json`)."""

    digit: int | None = Field(description="0-9, or null when the image should not be trusted as a digit.")
    confidence: float = Field(description="Calibrated probability of the named (or most likely) digit.")
    probabilities: list[float] = Field(description="Ten probabilities, for the digits 0-9; all 0 when empty.")
    reason: Reason | None = Field(None, description="Present only when `digit` is null: why.")
    image: str | None = IMAGE_FIELD


class DigitOut(BaseModel):
    """One digit of a written number, with where it is."""

    digit: int | None = Field(description="0-9, or null when this character is not a readable digit.")
    confidence: float = Field(description="Calibrated probability of the named (or most likely) digit.")
    box: list[int] | None = Field(description="[x0, y0, x1, y1] in the uploaded image's pixels; x1, y1 "
                                              "exclusive.")
    reason: Reason | None = Field(None, description="Present only when `digit` is null: why.")
    image: str | None = IMAGE_FIELD


class ReadingOut(BaseModel):
    """A written number read left to right (`POST /api/read`, `numbre read --json`)."""

    number: str | None = Field(description="The digits as a string (keeps leading zeros), or null when "
                                           "the image is empty or one character is unreadable.")
    digits: list[DigitOut]
    reason: Reason | None = Field(None, description="Present only when `number` is null: why.")


class HealthOut(BaseModel):
    """The server is up and its model is loaded."""

    status: Literal["ok"]
    version: str = Field(description="numbre's version.")
    model: str = Field(description="The loaded model's architecture name.")


class ReadyOut(BaseModel):
    """The server takes work now."""

    status: Literal["ready"]
    pending: int = Field(description="POST requests this process has in hand now.")
    max_pending: int = Field(description="The most it takes at once; beyond that it answers 503.")
    abandoned: int = Field(description="Recognitions still running for requests that ran out of time; when "
                                       "they hold every recognition thread the server is not ready.")
    warmup_ms: float = Field(description="How long the model took to read its warm-up drawing at start.")


class ErrorOut(BaseModel):
    """Every refusal: a message that says what is wrong and what to do."""

    error: str


ModelOut = dict[str, Any]  # the model file's metadata, passed through: its keys belong to the model file

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The client closed the connection mid-upload."},
    408: {"model": ErrorOut, "description": "The request body did not arrive within the time limit."},
    413: {"model": ErrorOut, "description": "The upload is over the size limit."},
    415: {"model": ErrorOut, "description": "The upload is not an image (text, PDF, ...)."},
    422: {"model": ErrorOut, "description": "The bytes do not decode as an image, the image is a "
                                            "decompression bomb or over the pixel limit, or the form has "
                                            "no field `file`."},
    429: {"model": ErrorOut, "description": "This client has as many requests or upload bytes in hand as one "
                                            "client may; retry after the `Retry-After` header's seconds."},
    503: {"model": ErrorOut, "description": "The server has as many requests or upload bytes in hand as it "
                                            "takes at once; retry after the `Retry-After` header's seconds."},
    504: {"model": ErrorOut, "description": "The answer took longer than the time limit."},
}

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "The server has as many requests in hand as it takes at once, or "
                                            "all its recognition threads are held by work that ran out of "
                                            "time; retry after the `Retry-After` header's seconds."},
}
