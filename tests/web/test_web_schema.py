"""The HTTP API against its own OpenAPI schema, with property-based tests.

Schemathesis reads /openapi.json from the app (in-process, ASGI) and, for every operation, makes
requests from the schema: valid ones, and ones that break it (wrong types, missing fields, odd
bodies, methods the path does not take). Every answer must be documented for its operation (status,
content type, headers) and match its documented schema, and none may be a server error.

One of schemathesis's checks is left out, "schema-valid data is accepted": an upload's schema is
"binary", which cannot say "an image", so a PDF's bytes are schema-valid yet rightly refused (415).
That property is tested here instead with Hypothesis-drawn images: any PNG, JPEG, GIF, BMP, TIFF or
WebP of any size, shape and colour mode that the server's limits allow (pixels; no side more than
20 times the other), sent raw or as a form, must be read (200) and answered in the documented shape.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from schemathesis.checks import positive_data_acceptance

from numbre.reading.recognize import Recognizer
from numbre.web import schemas
from numbre.web.app import create_app
from webhelpers import live_server

APP = create_app(Recognizer.load())  # built at import: schemathesis makes one test per operation from it
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
EXAMPLES = 40  # per operation: about 10 s for the whole API on a 2-core machine


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
def test_every_operation_keeps_to_its_schema(case) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_the_schema_documents_every_refusal_the_limits_make() -> None:
    spec = APP.openapi()
    for path in ("/api/predict", "/api/read"):
        documented = set(spec["paths"][path]["post"]["responses"])
        assert {"200", "408", "413", "415", "422", "503", "504"} <= documented, (path, documented)
    assert {"200", "503"} <= set(spec["paths"]["/api/ready"]["get"]["responses"])


# --- images the API must read -----------------------------------------------------------------------

FORMATS = {"PNG": ("L", "RGB", "RGBA", "P", "LA", "1", "I;16"), "JPEG": ("L", "RGB", "CMYK"),
           "GIF": ("L", "P"), "BMP": ("L", "RGB", "1"), "TIFF": ("L", "RGB", "RGBA"), "WEBP": ("RGB", "RGBA")}


@st.composite
def images(draw) -> tuple[bytes, str]:
    """(file bytes, format name): a few random strokes on a random background, in a random format."""
    image_format = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[image_format]))
    width = draw(st.integers(8, 900))
    height = draw(st.integers(max(8, width // 20), min(900, width * 20)))  # the decoder refuses slivers
    paper, ink = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    picture = Image.new("L", (width, height), paper)
    pen = ImageDraw.Draw(picture)
    for _ in range(draw(st.integers(0, 4))):
        point = st.tuples(st.integers(0, width), st.integers(0, height))
        points = draw(st.lists(point, min_size=2, max_size=6))
        pen.line(points, fill=ink, width=draw(st.integers(1, max(1, min(width, height) // 8))))
    if mode == "I;16":
        picture = Image.frombytes("I;16", picture.size, (bytes(picture.tobytes()) * 2)[:width * height * 2])
    elif mode != "L":
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, image_format)
    return buffer.getvalue(), image_format


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with live_server(APP) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(image=images(), endpoint=st.sampled_from(["/api/predict", "/api/read"]), as_form=st.booleans())
def test_any_image_within_the_limits_is_read(client: httpx.Client, image: tuple[bytes, str], endpoint: str,
                                             as_form: bool) -> None:
    data, image_format = image
    if as_form:
        response = client.post(endpoint, files={"file": (f"drawing.{image_format.lower()}", data)})
    else:
        label = {"Content-Type": f"image/{image_format.lower()}"}
        response = client.post(endpoint, content=data, headers=label)
    assert response.status_code == 200, (image_format, len(data), response.text)
    answer = response.json()
    if endpoint == "/api/predict":
        schemas.PredictionOut.model_validate(answer)
        assert (answer["digit"] is None) == ("reason" in answer)
        assert answer["digit"] is None or 0 <= answer["digit"] <= 9
    else:
        schemas.ReadingOut.model_validate(answer)
        assert (answer["number"] is None) == ("reason" in answer)
