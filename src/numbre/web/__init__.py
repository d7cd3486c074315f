"""numbre on the web: the drawing page and the JSON API (`numbre serve`).

`numbre.web.app.create_app` builds the ASGI app around one Recognizer; `numbre.web.uploads` takes
images out of requests; `numbre.web.limits` bounds what one server process takes on (body size,
pixels, requests at once, time); `numbre.web.schemas` describes the JSON for /docs; `static/` holds the page
(plain HTML, CSS and JavaScript, nothing fetched from elsewhere, so it works offline).

A front end: it may import reading, insight and the core, and holds no ML logic.
"""
