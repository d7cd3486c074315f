"""`/api/corrections`: "that was wrong, it is a ..." from the drawing page, kept to train on later.

    POST /api/corrections?label=1     the drawing (a PNG body, or the multipart field `file`)
    GET  /api/corrections             whether this server keeps corrections, and how full it is

Off unless the server was started with a folder (`numbre serve --corrections DIR`): a public server
should not fill its disk with strangers' drawings by default, so then POST answers 403 saying how to
turn it on, and GET says `enabled: false` (the page hides its "That was wrong" control).

The client sends only the drawing and the digit it is. The server reads the drawing itself, so the
28x28 image kept is the one its own pipeline makes, and names the files itself
(`numbre.data.corrections`): nothing in the request becomes a path. Saving is atomic and bounded by
the folder's limits (count and bytes): a full folder answers 507 with what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from numbre.data.corrections import (
    CorrectionLimits,
    CorrectionNotSaved,
    CorrectionsFull,
    CorrectionStore,
    model_label,
)
from numbre.errors import NumbreError
from numbre.reading.images import grey_pixels, open_image
from numbre.web.limits import WorkPool
from numbre.web.schemas import ERRORS, ErrorOut
from numbre.web.uploads import UPLOAD_BODY, image_bytes

if TYPE_CHECKING:
    from numbre.reading.recognize import Recognizer

OFF = ("this server does not keep corrections; its operator can turn them on with "
       "`numbre serve --corrections DIR` (or NUMBRE_SERVE_CORRECTIONS=DIR)")
LABEL_QUERY = Query(ge=0, le=9, description="The digit the drawing really is, 0-9.")


class CorrectionOut(BaseModel):
    """A correction kept."""

    name: str = Field(description="The name the server gave its files.")
    label: int = Field(description="The digit the drawing is, as sent.")
    read_as: int | None = Field(description="What the model reads the drawing as (null: not a digit, empty).")
    count: int = Field(description="Corrections the folder holds now.")
    max_count: int = Field(description="The most it takes.")


class CorrectionsStatusOut(BaseModel):
    """Whether this server keeps corrections, and how full its folder is."""

    enabled: bool
    count: int | None = Field(None, description="Corrections kept (only when enabled).")
    max_count: int | None = Field(None, description="The most it takes (only when enabled).")
    bytes: int | None = Field(None, description="Bytes of the folder's files (only when enabled).")
    max_bytes: int | None = Field(None, description="The most it takes (only when enabled).")
    message: str | None = Field(None, description="How to turn corrections on (only when disabled).")


CORRECTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"model": ErrorOut, "description": "Corrections are off (start the server with --corrections)."},
    507: {"model": ErrorOut, "description": "The corrections folder is at its limit of count or bytes."},
}


def store_from_environment(environment: Mapping[str, str] | None = None) -> CorrectionStore | None:
    """The store NUMBRE_SERVE_CORRECTIONS names (with NUMBRE_SERVE_CORRECTIONS_MAX_COUNT and
    NUMBRE_SERVE_CORRECTIONS_MAX_BYTES), as `numbre serve --workers N` hands it to its workers;
    None when unset."""
    from pathlib import Path

    environment = os.environ if environment is None else environment
    folder = environment.get("NUMBRE_SERVE_CORRECTIONS", "").strip()
    if not folder:
        return None
    defaults = CorrectionLimits()
    values = {}
    for name in ("max_count", "max_bytes"):
        variable = f"NUMBRE_SERVE_CORRECTIONS_{name.upper()}"
        text = environment.get(variable, "").strip() or str(getattr(defaults, name))
        if not text.isdigit():
            raise NumbreError(f"{variable}={text!r} is not a whole number; unset it or give one")
        values[name] = int(text)
    return CorrectionStore(Path(folder), CorrectionLimits(**values))


def store_environment(store: CorrectionStore | None) -> dict[str, str]:
    """`store` as the NUMBRE_SERVE_CORRECTIONS* variables `store_from_environment` reads."""
    if store is None:
        return {"NUMBRE_SERVE_CORRECTIONS": ""}
    return {"NUMBRE_SERVE_CORRECTIONS": str(store.folder),
            "NUMBRE_SERVE_CORRECTIONS_MAX_COUNT": str(store.limits.max_count),
            "NUMBRE_SERVE_CORRECTIONS_MAX_BYTES": str(store.limits.max_bytes)}


def corrections_router(recognizer: Recognizer, store: CorrectionStore | None, *, max_bytes: int,
                       max_pixels: int, pool: WorkPool) -> APIRouter:
    """The corrections routes over `store` (None: corrections are off)."""
    router = APIRouter(tags=["corrections"])

    @router.get("/api/corrections", response_model=CorrectionsStatusOut)
    async def status() -> JSONResponse:
        """Whether this server keeps corrections; when it does, how many it holds and may hold."""
        if store is None:
            return JSONResponse({"enabled": False, "message": OFF})
        usage = await pool.run(store.usage)
        return JSONResponse({"enabled": True, "count": usage.count, "max_count": store.limits.max_count,
                             "bytes": usage.bytes, "max_bytes": store.limits.max_bytes})

    @router.post("/api/corrections", status_code=201, response_model=CorrectionOut,
                 responses=CORRECTION_ERRORS, openapi_extra=UPLOAD_BODY)
    async def correct(request: Request, label: Annotated[int, LABEL_QUERY]) -> JSONResponse:
        """Keep a drawing the model read wrong with the digit it really is, to train on later
        (`numbre train --extra DIR`)."""
        if store is None:
            return JSONResponse({"error": OFF}, status_code=403)
        data = await image_bytes(request, max_bytes)

        def work() -> dict[str, Any]:
            picture = open_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
            prediction = recognizer.predict(picture)
            drawn = grey_pixels(picture)
            saved = store.save(drawn, prediction.image, label, read_as=prediction.digit,
                               confidence=prediction.confidence, source="web page",
                               model=model_label(recognizer.meta))
            return {"name": saved.name, "label": saved.label, "read_as": saved.read_as,
                    "count": store.usage().count, "max_count": store.limits.max_count}

        try:
            answer = await pool.run(work)
        except CorrectionsFull as error:
            return JSONResponse({"error": str(error)}, status_code=507)
        except CorrectionNotSaved as error:
            return JSONResponse({"error": f"the server could not keep the correction ({error}); its "
                                          "operator should check the corrections folder"}, status_code=500)
        except NumbreError as error:  # the drawing cannot be read
            return JSONResponse({"error": str(error)}, status_code=422)
        return JSONResponse(answer, status_code=201)

    return router


def describe(store: CorrectionStore | None) -> str:
    """For the server's start-up line."""
    return store.describe() if store is not None else "corrections off"

