"""The web app: a drawing page at `/` and a JSON API over one shared `Recognizer`.

    uvicorn --factory numbre.web.app:app_from_environment      # or: numbre serve

The app only moves bytes: it takes the image out of the request (`numbre.web.uploads`), hands it
to the Recognizer, and sends back `Prediction.to_dict()` / `Reading.to_dict()`, the JSON that
`numbre predict --json` and `numbre read --json` print. Decoding, preprocessing and the model are
the library's.

Recognition is CPU-bound (decode, preprocess, network: about two milliseconds), so it runs on a
fixed pool of worker threads and the event loop stays free to accept and parse other requests. The
Recognizer is safe to share between threads; more threads than cores only queue inside the process.
Most of that time holds the GIL (many small numpy steps), so more requests per second come from
more processes (`numbre serve --workers N`), not more threads. What a process takes on (body
size, pixels, requests at once, time per request) is `numbre.web.limits`.

`/api/health` says the process answers; `/api/ready` says it will take work now: its model was
loaded and passed its self-test (`numbre.web.ready`), and it is not at its limit of requests in
hand. `/metrics` is for Prometheus (`numbre.web.metrics`).
The OpenAPI page at /docs loads Swagger UI from this server (the fastapi-offline package's copy),
so it works without a network, like the drawing page.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from numbre import __version__
from numbre.errors import NumbreError
from numbre.reading.images import Picture, open_image
from numbre.web import schemas
from numbre.web.corrections import corrections_router, store_from_environment
from numbre.web.headers import HostCheck
from numbre.web.limits import (
    RETRY_AFTER,
    Admission,
    QueueFull,
    RequestLimits,
    ServeLimits,
    WorkPool,
    share_the_interpreter,
)
from numbre.web.metrics import RequestMetrics, ServerMetrics
from numbre.web.ready import self_test
from numbre.web.runtime import (
    FILES,
    MEDIA_TYPES,
    PACKAGE,
    STATIC_FOLDER,
    VERSION,
    find_runtime,
    runtime_folder,
)
from numbre.web.uploads import UPLOAD_BODY, UploadError, image_bytes, png_base64

if TYPE_CHECKING:
    from numbre.data.corrections import CorrectionStore
    from numbre.reading.recognize import Recognizer

DOCS_ASSETS = "/docs-assets"  # where Swagger UI's script, style and icon are served from
STATIC = Path(__file__).parent / "static"
log = logging.getLogger("numbre.web")

# The page loads nothing from elsewhere; the 28x28 view and uploads are shown from data: and blob: URLs.
# 'wasm-unsafe-eval' lets it compile WebAssembly (the in-browser reader, static/offline.js), nothing else.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
               "script-src 'self' 'wasm-unsafe-eval'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

IMAGE_QUERY = Query(description="1 adds `image`: the 28x28 input the network saw, as a base64 PNG.")

def _methods_on(app: FastAPI, path: str) -> list[str] | None:
    """The methods the API documents for `path` (a 405's Allow header), or None for a path it does
    not document. Starlette names only the first route's methods, and a path may be served by two."""
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods = {method.upper() for method in operations}
            return sorted(methods | ({"HEAD"} if "GET" in methods else set()))
    return None


def create_app(recognizer: Recognizer | None = None, *, model: Path | str | None = None,
               limits: ServeLimits | None = None, cors_origins: Sequence[str] = (),
               allowed_hosts: Sequence[str] = ("*",), corrections: CorrectionStore | None = None) -> FastAPI:
    """The app around `recognizer`, or around the model at `model` (default: the shipped one).

    The model is loaded and has taken its self-test (`numbre.web.ready`) before this returns, so a
    bad model file fails before the server listens and the first request is not the slow one; a
    model that fails the self-test is served, but /api/ready says 503 with what it misread. `limits` (default:
    `ServeLimits()`) bounds what the process takes on. Browsers on other sites may call the API
    only when their origin is in `cors_origins` ("*" for any); by default none may. Requests
    are answered only for the Host names in `allowed_hosts` ("*" for any; `numbre serve` gives
    the names of the address it listens on), against DNS rebinding (`numbre.web.headers`).
    `corrections`, when given, keeps the page's "that was wrong" drawings (`numbre.web.corrections`).
    It also shortens the process's GIL slices (`numbre.web.limits.share_the_interpreter`): a program
    that embeds the app shares that setting.
    """
    if recognizer is None:
        from numbre.reading.recognize import Recognizer

        recognizer = Recognizer.load(model)
    limits = limits or ServeLimits()
    checked = self_test(recognizer)
    if not checked.passed:
        log.warning("not ready: %s", checked.problem)
    warmup_seconds = checked.seconds
    share_the_interpreter()  # process-wide: the recognition threads share the GIL with the event loop
    pool = WorkPool(limits.recognition_threads, max_queue=limits.max_queue)
    admission = Admission(limits, pool)
    metrics = ServerMetrics(pool, ready=lambda: checked.passed and not admission.full,
                            model=str(recognizer.meta.get("architecture", "?")))
    app = FastAPIOffline(title="numbre", version=__version__, redoc_url=None, static_url=DOCS_ASSETS,
                         description="Reads handwritten digits. Send an image as the multipart field `file` "
                                     "or as the raw request body. The drawing page is at [/](/).")
    app.state.recognizer = recognizer
    app.state.limits = limits
    index = (STATIC / "index.html").read_bytes()

    def decoded(data: bytes) -> Picture:
        """The upload as a checked image: the server's pixel limit applies before the pixels are decoded."""
        return open_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)

    async def recognised(request: Request, work: Callable[[bytes], dict[str, Any]]) -> Response:
        data = await image_bytes(request, limits.max_bytes)
        try:
            answer = await pool.run(work, data)
        except NumbreError as error:
            return _error(422, str(error))
        metrics.answered(request.url.path, answer)
        return Response(json.dumps(answer), media_type="application/json")

    @app.post("/api/predict", response_model=schemas.PredictionOut, responses=schemas.ERRORS,
              openapi_extra=UPLOAD_BODY, tags=["recognition"])
    async def predict(request: Request, image: Annotated[bool, IMAGE_QUERY] = False) -> Response:
        """Read the image as one digit; the same JSON as `numbre predict --json`."""

        def work(data: bytes) -> dict[str, Any]:
            prediction = recognizer.predict(decoded(data))
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
            reading = recognizer.read(decoded(data))
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

    @app.get("/api/ready", response_model=schemas.ReadyOut, responses=schemas.NOT_READY, tags=["server"])
    async def ready() -> JSONResponse:
        """The server takes work now: model loaded and warmed up, not at its limit of requests in hand, and
        its recognition threads not all held by work whose requests ran out of time."""
        if not checked.passed:
            return _error(503, checked.problem)
        if admission.full:
            return _error(503, admission.busy_message(), {"Retry-After": admission.retry_after()})
        return JSONResponse({"status": "ready", "pending": admission.pending,
                             "max_pending": limits.max_pending, "abandoned": pool.abandoned,
                             "warmup_ms": round(warmup_seconds * 1000, 1)})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text(request: Request) -> Response:
        """This process's metrics in Prometheus's text format (`numbre.web.metrics`)."""
        body, content_type = metrics.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    @app.get("/api/model.onnx", include_in_schema=False)
    async def model_file() -> Response:
        """The loaded model's ONNX file: the page reads drawings with it in the browser if the server goes."""
        return Response(recognizer.model.data, media_type="application/octet-stream")

    line_onnx: list[bytes] = []  # the line model's file, once asked for

    @app.get("/api/line-model.onnx", include_in_schema=False)
    def line_model_file() -> Response:  # a plain def: FastAPI runs it in a thread, off the event loop
        """The line model's ONNX file: the page reads whole numbers with it in the browser if the server
        goes (404 when this server reads numbers by cutting alone)."""
        if recognizer.line_model is None:
            return _error(404, "this server reads numbers without a line model: there is no line model file")
        if not line_onnx:  # read once, on first use: most visits never need it
            line_onnx.append(recognizer.line_model.path.read_bytes())
        return Response(line_onnx[0], media_type="application/octet-stream")

    @app.get("/api/model", response_model=schemas.ModelOut, tags=["server"])
    async def model_info() -> Response:
        """The loaded model's metadata: architecture, classes, training data and recipe, test figures."""
        return JSONResponse(recognizer.meta)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(index, headers={"Content-Security-Policy": PAGE_POLICY,
                                            "X-Content-Type-Options": "nosniff"})

    from numbre.web.contest import contest_router  # it imports this module's helpers

    app.include_router(corrections_router(recognizer, corrections, max_bytes=limits.max_bytes,
                                          max_pixels=limits.max_pixels, pool=pool))
    app.include_router(contest_router(recognizer, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                                      pool=pool))
    static_files = StaticFiles(directory=STATIC)
    runtime = runtime_folder()  # the cache as it is now, whatever the environment says later

    @app.get(f"/static/{STATIC_FOLDER}/{{name}}", include_in_schema=False)
    async def runtime_file(name: str, request: Request) -> Response:
        """The in-browser runtime's files come from the cache (`numbre.web.runtime`), its licence
        beside them from the package's static folder."""
        if name not in FILES:
            return await static_files.get_response(f"{STATIC_FOLDER}/{name}", request.scope)
        if find_runtime(runtime) is None:  # missing, or not the pinned files: never served
            return _error(404, f"the page's in-browser runtime ({PACKAGE} {VERSION}) is not in "
                               f"{runtime} (or is damaged): numbre serve fetches it as it starts, or run "
                               "numbre data fetch --web-runtime")
        return FileResponse(runtime / name, media_type=MEDIA_TYPES[Path(name).suffix])

    app.mount("/static", static_files, name="static")
    _add_error_handlers(app)
    app.add_middleware(RequestLimits, admission=admission)
    if cors_origins:  # outermost, so that refusals carry the CORS headers too and a browser can read them
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], max_age=600)
    app.add_middleware(HostCheck, allowed=allowed_hosts)  # outermost: a foreign Host gets nothing else
    app.add_middleware(RequestMetrics, metrics=metrics, router=app.router)  # counts HostCheck's refusals too
    return app


def app_from_environment() -> FastAPI:
    """`create_app` configured by NUMBRE_SERVE_MODEL, NUMBRE_SERVE_CORS_ORIGIN and
    NUMBRE_SERVE_ALLOWED_HOST (space-separated; any host when unset) and the NUMBRE_SERVE_* limits
    (`ServeLimits.from_environment`), and the corrections folder NUMBRE_SERVE_CORRECTIONS
    (`numbre.web.corrections.store_from_environment`).

    Each uvicorn worker process builds its own app from these (`numbre serve --workers N` sets them).
    """
    return create_app(model=os.environ.get("NUMBRE_SERVE_MODEL") or None,
                      limits=ServeLimits.from_environment(),
                      cors_origins=os.environ.get("NUMBRE_SERVE_CORS_ORIGIN", "").split(),
                      allowed_hosts=os.environ.get("NUMBRE_SERVE_ALLOWED_HOST", "").split() or ("*",),
                      corrections=store_from_environment())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


BODY_NOT_PARSED = "There was an error parsing the body"  # FastAPI's 400 for a JSON body it cannot read


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal is `{"error": message}` with its status; a bug is a 500 in the same shape, logged."""

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, error: QueueFull) -> JSONResponse:
        return _error(503, str(error), {"Retry-After": RETRY_AFTER})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == BODY_NOT_PARSED:  # bytes that are not JSON text
            return _error(422, "the request body is not JSON text (UTF-8); send a JSON object")
        headers = error.headers
        if error.status_code == 405:
            # Starlette names the methods of the first route on this path only; a path served by two
            # routes (GET and POST /api/corrections) must list both.
            methods = _methods_on(request.app, request.url.path)
            if methods:
                headers = {**(headers or {}), "Allow": ", ".join(methods)}
        return _error(error.status_code, str(error.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                             for item in error.errors())
        return _error(422, problems)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; the server's log has the details")
