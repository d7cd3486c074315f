"""Getting an uploaded image's bytes out of an HTTP request, or a refusal with the right status.

The API takes an image as the multipart field `file` (an HTML form, `curl -F file=@digit.png`) or
as the raw request body (`fetch(url, {body: blob})`). This module only finds the bytes and judges
whether they can be an image at all; decoding them is `numbre.reading.images`' job, so the API refuses
exactly what the command line refuses.

Headers are hints, not facts: `curl --data-binary @digit.png` labels a PNG as a form, and a file
picker labels by file name. So a body that starts with an image format's signature is accepted
whatever it is labelled, and a body labelled as an image that is recognisably something else (a
PDF, a ZIP archive, text) is refused as the wrong type (415). Unknown bytes labelled as an image
go to the decoder, which refuses them with a reason (422).

Sizes are checked before the bytes are kept: the declared Content-Length first, then the bytes
as they arrive, so a lying or chunked request cannot make the server hold more than the limit.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

FIELD = "file"
MULTIPART = "multipart/form-data"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file, in bytes
RAW_TYPES = ("application/octet-stream", "")  # besides image/*: what a raw image body may be labelled
HOW = (f"send an image (PNG, JPEG, GIF, BMP, TIFF or WebP) as the multipart field '{FIELD}' "
       "or as the request body")

# The first bytes of every format numbre.reading.images decodes (Pillow's common formats).
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
    b"\x00\x00\x01\x00",  # ICO
    b"P1", b"P2", b"P3", b"P4", b"P5", b"P6",  # PBM, PGM, PPM
)


class UploadError(Exception):
    """A request that holds no usable image; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def image_bytes(request: Request, max_bytes: int) -> bytes:
    """The uploaded image's bytes, from the multipart field `file` or the raw body."""
    media = media_type(request.headers.get("content-type"))
    multipart = media == MULTIPART
    limit = max_bytes + MULTIPART_OVERHEAD if multipart else max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), max_bytes)
    body = await _read_capped(request.stream(), limit, max_bytes)
    if multipart:
        body, media = await _file_field(request.headers, body)
        if len(body) > max_bytes:
            raise too_large(len(body), max_bytes)
    if not body:
        raise UploadError(422, f"the request holds no image (0 bytes); {HOW}")
    check_type(body, media)
    return body


def media_type(header: str | None) -> str:
    """'image/png' from 'image/PNG; charset=x'; '' when there is no header."""
    return (header or "").split(";", 1)[0].strip().lower()


def check_type(data: bytes, media: str) -> None:
    """Refuse (415) bytes that are not an image by their signature or, failing that, by their label."""
    if looks_like_image(data):
        return
    what = recognisably_not_image(data)
    if what is not None:
        raise UploadError(415, f"the upload is {what}, not an image; {HOW}")
    if not (media.startswith("image/") or media in RAW_TYPES):
        raise UploadError(415, f"the upload is labelled {media}, not an image type; {HOW}")


def looks_like_image(data: bytes) -> bool:
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        return head[2:3] in (b" ", b"\t", b"\r", b"\n", b"#")  # 'P5' alone begins too much text
    return head.startswith(IMAGE_SIGNATURES)


def recognisably_not_image(data: bytes) -> str | None:
    """What the bytes are when they are clearly another kind of file, else None."""
    head = data[:512].lstrip()
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (or an Office document)"
    if head.startswith(b"<svg") or b"<svg" in head[:256]:
        return "an SVG drawing (vector images are not read; export it as PNG)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None  # binary of unknown kind: the decoder will say what is wrong with it
    if text and all(character.isprintable() or character in "\t\r\n" for character in text):
        return "text"
    return None


def too_large(size: int, max_bytes: int) -> UploadError:
    return UploadError(413, f"the upload is over the {max_bytes:,} byte limit ({size:,} bytes or more); "
                            "crop or shrink the picture to the digits first")


async def _read_capped(stream: AsyncIterator[bytes], limit: int, max_bytes: int) -> bytes:
    chunks, size = [], 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise too_large(size, max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise UploadError(400, "the client closed the connection before sending the whole image") from None
    return b"".join(chunks)


async def _file_field(headers: Headers, body: bytes) -> tuple[bytes, str]:
    """(bytes, declared media type) of the multipart field `file`, parsed from the already-capped body."""

    async def replay() -> AsyncIterator[bytes]:
        yield body
        yield b""

    try:
        form = await MultiPartParser(headers, replay(), max_files=4, max_fields=16).parse()
    except MultiPartException as error:
        raise UploadError(422, f"the multipart form cannot be read ({error}); {HOW}") from None
    try:
        field = form.get(FIELD)
        if not isinstance(field, UploadFile):
            names = ", ".join(sorted(set(form.keys()))) or "none"
            raise UploadError(422, f"the multipart form has no file field '{FIELD}' (fields: {names}); {HOW}")
        return await field.read(), media_type(field.content_type)
    finally:
        await form.close()


# /docs lets people try the API: one upload field, or a raw image body.
UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": [FIELD],
                                       "properties": {FIELD: {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


def png_base64(image: np.ndarray) -> str:
    """A (28, 28) float image in [0, 1] as a base64 PNG: what the page shows as 'what the network saw'."""
    return pixels_png_base64((np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))


def pixels_png_base64(pixels: np.ndarray) -> str:
    """uint8 (H, W) grey or (H, W, 4) RGBA pixels as a base64 PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA" if pixels.ndim == 3 else "L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
