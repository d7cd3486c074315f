"""The web app: a drawing page at `/` and a JSON API over one shared `Recognizer`.

    uvicorn --factory numbre.web.app:app_from_environment      # or: numbre serve

The app only moves bytes: it takes the image out of the request (`numbre.web.uploads`), hands it
to the Recognizer, and sends back `Prediction.to_dict()` / `Reading.to_dict()`, the JSON that
`numbre predict --json` and `numbre read --json` print. Decoding, preprocessing and the model are
the library's.

Recognition is CPU-bound (decode, preprocess, network: about a millisecond), so it runs in worker
threads and the event loop stays free to accept and parse other requests. The Recognizer is safe to
share between threads, and ONNX Runtime and most of numpy release the GIL, so a few threads use
the cores; more threads than cores only queue inside the process (the limiter keeps them waiting
on the loop instead, where they cost nothing).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException

from numbre import __version__
from numbre.errors import NumbreError
from numbre.web import schemas
from numbre.web.uploads import FIELD, UploadError, image_bytes

if TYPE_CHECKING:
    from numbre.recognize import Recognizer

DEFAULT_MAX_BYTES = 8_000_000  # a phone photo is 2-8 MB; the pad's PNG is a few kB
STATIC = Path(__file__).parent / "static"
log = logging.getLogger("numbre.web")

# The page loads nothing from elsewhere; the 28x28 view and uploads are shown from data: and blob: URLs.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

IMAGE_QUERY = Query(description="1 adds `image`: the 28x28 input the network saw, as a base64 PNG.")

# /docs lets people try the API: one upload field, or a raw image body.
UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": [FIELD],
                                       "properties": {FIELD: {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


def create_app(recognizer: Recognizer | None = None, *, model: Path | str | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES, threads: int | None = None) -> FastAPI:
    """The app around `recognizer`, or around the model at `model` (default: the shipped one).

    The model is loaded here, once, so a bad model file fails before the server listens.
    `max_bytes` caps an upload; `threads` is how many recognitions run at once (default: the cores).
    """
    if recognizer is None:
        from numbre.recognize import Recognizer

        recognizer = Recognizer.load(model)
    limiter = anyio.CapacityLimiter(threads or os.cpu_count() or 1)
    app = FastAPI(title="numbre", version=__version__, redoc_url=None,
                  description="Reads handwritten digits. Send an image as the multipart field `file` or as "
                              "the raw request body. The drawing page is at [/](/).")
    app.state.recognizer = recognizer
    index = (STATIC / "index.html").read_bytes()

    async def recognised(request: Request, work: Callable[[bytes], dict[str, Any]]) -> Response:
        data = await image_bytes(request, max_bytes)
        try:
            answer = await anyio.to_thread.run_sync(work, data, limiter=limiter)
        except NumbreError as error:
            return _error(422, str(error))
        return Response(json.dumps(answer), media_type="application/json")

    @app.post("/api/predict", response_model=schemas.PredictionOut, responses=schemas.ERRORS,
              openapi_extra=UPLOAD_BODY, tags=["recognition"])
    async def predict(request: Request, image: Annotated[bool, IMAGE_QUERY] = False) -> Response:
        """Read the image as one digit; the same JSON as `numbre predict --json`."""

        def work(data: bytes) -> dict[str, Any]:
            prediction = recognizer.predict(data)
            answer = prediction.to_dict()
            if image:
                answer["image"] = png_base64(prediction.image)
            return answer

        return await recognised(request, work)

    @app.post("/api/read", response_model=schemas.ReadingOut, responses=schemas.ERRORS,
              openapi_extra=UPLOAD_BODY, tags=["recognition"])
    async def read(request: Request, image: Annotated[bool, IMAGE_QUERY] = False) -> Response:
        """Read the image as one line of written digits; the same JSON as `numbre read --json`."""

        def work(data: bytes) -> dict[str, Any]:
            reading = recognizer.read(data)
            answer = reading.to_dict()
            if image:
                for entry, digit in zip(answer["digits"], reading.digits, strict=True):
                    entry["image"] = png_base64(digit.image)
            return answer

        return await recognised(request, work)

    @app.get("/api/health", response_model=schemas.HealthOut, tags=["server"])
    async def health() -> dict[str, Any]:
        """The server answers and its model is loaded."""
        architecture = str(recognizer.meta.get("architecture", "?"))
        return {"status": "ok", "version": __version__, "model": architecture}

    @app.get("/api/model", response_model=schemas.ModelOut, tags=["server"])
    async def model_info() -> Response:
        """The loaded model's metadata: architecture, classes, training data and recipe, test figures."""
        return JSONResponse(recognizer.meta)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(index, headers={"Content-Security-Policy": PAGE_POLICY,
                                            "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app)
    return app


def app_from_environment() -> FastAPI:
    """`create_app` with NUMBRE_SERVE_MODEL, NUMBRE_SERVE_MAX_BYTES and NUMBRE_SERVE_THREADS.

    Each uvicorn worker process builds its own app from these (`numbre serve --workers N` sets them).
    """
    max_bytes = os.environ.get("NUMBRE_SERVE_MAX_BYTES")
    threads = os.environ.get("NUMBRE_SERVE_THREADS")
    return create_app(model=os.environ.get("NUMBRE_SERVE_MODEL") or None,
                      max_bytes=int(max_bytes) if max_bytes else DEFAULT_MAX_BYTES,
                      threads=int(threads) if threads else None)


def png_base64(image: np.ndarray) -> str:
    """A (28, 28) float image in [0, 1] as a base64 PNG: what the page shows as 'what the network saw'."""
    pixels = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal is `{"error": message}` with its status; a bug is a 500 in the same shape, logged."""

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                             for item in error.errors())
        return _error(422, problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server's log has the details")
