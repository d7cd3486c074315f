# The torch-free server, `numbre serve` with the shipped model, as one replica of a fleet.
#
#   docker build -t numbre-serve .
#   docker run --rm -p 8000:8000 numbre-serve                # then open http://localhost:8000/
#
# Probes (docs/scale-out.md): liveness GET /api/health (the HEALTHCHECK below); readiness GET /api/ready,
# 503 until the model has loaded and read its built-in digits right, and while the process is at its
# limits; Prometheus scrapes GET /metrics. One server process per container: scale with replicas.
# Settings come from NUMBRE_SERVE_* variables (numbre serve --help), e.g. -e NUMBRE_SERVE_MAX_QUEUE=32.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# Only numbre's own wheel is built here; its dependencies come pinned and hashed in the next stage.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/serve.lock /tmp/serve.lock
RUN pip install --require-hashes -r /tmp/serve.lock && rm /tmp/serve.lock
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
RUN useradd --create-home --uid 10001 numbre
USER numbre
WORKDIR /home/numbre
# The page's in-browser runtime, fetched into the image (checked against the npm registry's integrity
# hash): a replica then reads offline without reaching the registry.
RUN numbre data fetch --web-runtime --quiet
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"]
# --listen-first: the port answers /api/health at once and /api/ready once the model is checked.
CMD ["numbre", "serve", "--host", "0.0.0.0", "--port", "8000", "--listen-first"]
