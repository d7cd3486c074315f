"""`numbre serve`: the drawing page and the HTTP API on uvicorn.

Listens on 127.0.0.1 unless told otherwise: the API reads whatever it is sent, so opening it to a
network is a choice to make with `--host 0.0.0.0`. The model is loaded before the port is opened, so
a bad `--model` fails with a one-line error instead of a server that answers 500. Every option also
comes from an environment variable, NUMBRE_SERVE_<OPTION> (shown in --help).

On SIGTERM (or Ctrl+C) the server stops taking connections, finishes the requests in flight (for
up to --graceful-timeout seconds) and exits with status 0.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from numbre.cli.predict_cmd import model_option
from numbre.data.corrections import CorrectionLimits
from numbre.web.settings import ServeLimits

DEFAULTS = ServeLimits()
CORRECTION_DEFAULTS = CorrectionLimits()


def _option(*names: str, **settings):
    """A click option that shows its default and its NUMBRE_SERVE_* variable in --help."""
    return click.option(*names, show_envvar=True, **{"show_default": True, **settings})


@click.command()
@_option("--host", default="127.0.0.1",
         help="Interface to listen on; 0.0.0.0 opens the server to the network.")
@_option("--port", default=8000, type=click.IntRange(0, 65535), help="TCP port; 0 picks a free one.")
@model_option
@_option("--workers", default=1, type=click.IntRange(1),
         help="Server processes, each with its own model; one per core gives the most requests/s.")
@_option("--threads", default=DEFAULTS.threads, type=click.IntRange(0),
         help="Recognitions run at once per process; 0: one per core.")
@_option("--max-bytes", default=DEFAULTS.max_bytes, type=click.IntRange(1),
         help="Largest upload accepted, in bytes; larger ones get 413.")
@_option("--max-pixels", default=DEFAULTS.max_pixels, type=click.IntRange(1),
         help="Largest image accepted, in pixels (width x height); larger ones get 422 before decoding.")
@_option("--max-pending", default=DEFAULTS.max_pending, type=click.IntRange(1),
         help="POST requests a process takes at once (read, queued or running); more get 503 with "
              "Retry-After.")
@_option("--max-queue", default=DEFAULTS.max_queue, type=click.IntRange(1),
         help="Recognitions that may wait for a thread in a process; more get 503 with Retry-After at once, "
              "so no request waits behind more than this many.")
@_option("--timeout", default=DEFAULTS.timeout, type=click.FloatRange(0, min_open=True),
         help="Seconds for a POST request from its first byte to its answer; later ones get 408 (body still "
              "arriving) or 504.")
@_option("--header-timeout", default=DEFAULTS.header_timeout, type=click.FloatRange(0, min_open=True),
         help="Seconds from a request's first byte to the end of its headers; slower ones get 408 and are "
              "closed.")
@_option("--idle-timeout", default=DEFAULTS.idle_timeout, type=click.FloatRange(0, min_open=True),
         help="Seconds a connection may stay open sending nothing, new or between requests, before it is "
              "closed.")
@_option("--max-header-bytes", default=DEFAULTS.max_header_bytes, type=click.IntRange(1),
         help="Largest request line and headers, in bytes; larger get 431.")
@_option("--max-headers", default=DEFAULTS.max_headers, type=click.IntRange(1),
         help="Most header lines in a request; more get 431.")
@_option("--client-pending", default=DEFAULTS.client_pending, type=click.IntRange(1),
         help="POST requests one client address may have in hand; more get 429 with Retry-After.")
@_option("--client-body-bytes", default=DEFAULTS.client_body_bytes, type=click.IntRange(1),
         help="Upload bytes one client address may have in hand; more get 429 with Retry-After.")
@_option("--body-memory", default=DEFAULTS.body_memory, type=click.IntRange(1),
         help="Upload bytes all requests in hand may hold together; more get 503 with Retry-After.")
@_option("--graceful-timeout", default=30, type=click.IntRange(0),
         help="On SIGTERM, seconds to let requests in flight finish before closing them.")
@_option("--max-connections", default=DEFAULTS.max_connections, type=click.IntRange(1),
         help="Open connections a process keeps; past that the longest-idle one is closed to make room, and "
              "when all have requests in hand new ones get 503 with Retry-After (health and readiness are "
              "still answered).")
@_option("--allowed-host", multiple=True, default=(), show_default=False,
         help="A Host name the server answers to besides the --host address, localhost, 127.0.0.1 and ::1 "
              "(repeat for several; * for any); others get 421, against DNS rebinding. With --host 0.0.0.0 "
              "or :: and no --allowed-host, any.")
@_option("--cors-origin", multiple=True, default=(), show_default=False,
         help="Let pages from this origin (https://example.org, or * for any) call the API from a "
              "browser; repeat for several. By default no other site may (CORS off).")
@_option("--access-log/--no-access-log", default=True, help="Log one line per request.")
@_option("--listen-first", is_flag=True, default=False,
         help="Open the port before loading the model: /api/health answers at once and /api/ready is 503 "
              "until the model has loaded and passed its self-test (for orchestrators probing a starting "
              "replica). A model that fails to load then stops the server with status 2. One process only.")
@_option("--corrections", type=click.Path(file_okay=False, path_type=Path), default=None, show_default=False,
         help="Keep the page's \"That was wrong, it is a ...\" drawings in this folder, to train on with "
              "`numbre train --extra DIR` (default: off, the page does not offer it).")
@_option("--corrections-max-count", default=CORRECTION_DEFAULTS.max_count, type=click.IntRange(1),
         help="Most corrections the folder takes; more get 507.")
@_option("--corrections-max-bytes", default=CORRECTION_DEFAULTS.max_bytes, type=click.IntRange(1),
         help="Most bytes of files the corrections folder takes; more get 507.")
def serve(host: str, port: int, model: Path | None, workers: int, threads: int, max_bytes: int,
          max_pixels: int, max_pending: int, timeout: float, header_timeout: float, idle_timeout: float,
          max_header_bytes: int, max_headers: int, client_pending: int, client_body_bytes: int,
          body_memory: int, graceful_timeout: int, max_connections: int, allowed_host: tuple[str, ...],
          cors_origin: tuple[str, ...], access_log: bool, corrections: Path | None,
          corrections_max_count: int, corrections_max_bytes: int, max_queue: int = DEFAULTS.max_queue,
          listen_first: bool = False) -> None:
    """Serve the drawing page at / and the API at /api (documented at /docs)."""
    import uvicorn

    from numbre.web.app import create_app
    from numbre.web.connections import GuardedProtocol
    from numbre.web.corrections import store_environment
    from numbre.web.headers import allowed_hosts as hosts_to_answer
    from numbre.web.ready import Starting

    for origin in cors_origin:
        check_origin(origin)
    if listen_first and workers > 1:
        from numbre.errors import NumbreError

        raise NumbreError("--listen-first serves one process: worker processes share one port, and one "
                          "still loading would take requests the others could answer; drop --workers or "
                          "--listen-first")
    allowed_hosts = hosts_to_answer(host, tuple(name for value in allowed_host for name in value.split()))
    check_can_listen(host, port)
    store = None
    if corrections is not None:
        from numbre.atomic import prepare_folder
        from numbre.data.corrections import CorrectionStore

        prepare_folder(corrections, "--corrections")  # a folder that cannot be made fails now, not later
        store = CorrectionStore(corrections.resolve(), CorrectionLimits(corrections_max_count,
                                                                        corrections_max_bytes))
    limits = ServeLimits(max_bytes=max_bytes, max_pixels=max_pixels, threads=threads, max_pending=max_pending,
                         max_queue=max_queue,
                         timeout=timeout, header_timeout=header_timeout, idle_timeout=idle_timeout,
                         max_connections=max_connections, max_header_bytes=max_header_bytes,
                         max_headers=max_headers, client_pending=client_pending,
                         client_body_bytes=client_body_bytes, body_memory=body_memory)

    def build() -> Any:
        return create_app(model=model, limits=limits, cors_origins=cors_origin, allowed_hosts=allowed_hosts,
                          corrections=store)

    from numbre.web.runtime import fetch_in_background

    # The page's offline reader needs onnxruntime-web in the cache; the server does not wait for it.
    fetch_in_background(lambda message: click.echo(f"numbre: {message}", err=True))
    # Built here even with several workers: a bad model fails now, cleanly, before any port is opened;
    # with --listen-first it is built on a thread while the port already answers (numbre.web.ready).
    app = Starting(build) if listen_first else build()
    shown = f"[{host}]" if ":" in host else host
    served = ("the model (loading)" if listen_first
              else app.state.recognizer.meta.get("architecture", "the model"))
    click.echo(f"numbre: serving {served} "
               f"on http://{shown}:{port}/ (API docs at /docs; Ctrl+C stops)", err=True)
    click.echo(f"numbre: {workers} process(es); {limits.describe()}; "
               f"CORS {'for ' + ' '.join(cors_origin) if cors_origin else 'off'}; "
               f"answers to host {'any' if '*' in allowed_hosts else ' '.join(allowed_hosts)}; "
               f"{store.describe() if store else 'corrections off (--corrections DIR keeps them)'}", err=True)
    # uvicorn finishes the requests in flight, then raises the stop signal again so the default
    # action ends the process with it; a stop that was asked for is a clean exit, as service
    # managers expect, so the second delivery lands here instead.
    signal.signal(signal.SIGTERM, _stopped)
    # The connection limit, the idle and header timeouts and the head limits are GuardedProtocol's
    # (numbre.web.connections), not uvicorn's limit_concurrency, whose plain-text 503 counts idle
    # connections; no `server: uvicorn` banner.
    GuardedProtocol.limits = limits
    options = dict(host=host, port=port, access_log=access_log, log_level="info", http=GuardedProtocol,
                   timeout_graceful_shutdown=graceful_timeout, timeout_keep_alive=idle_timeout,
                   server_header=False)
    if workers == 1 and isinstance(app, Starting):
        # A model that fails to load stops the server (a clean shutdown), then says why with status 2.
        server = uvicorn.Server(uvicorn.Config(app, **options))
        app.failed = lambda problem: setattr(server, "should_exit", True)
        if app.problem:  # it failed before the line above
            server.should_exit = True
        server.run()
        if app.problem:
            from numbre.errors import NumbreError

            raise NumbreError(app.problem)
        return
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Each worker process builds its own app from the environment: an app object cannot cross processes.
    os.environ.update(limits.environment(), NUMBRE_SERVE_MODEL=str(model) if model is not None else "",
                      NUMBRE_SERVE_CORS_ORIGIN=" ".join(cors_origin),
                      NUMBRE_SERVE_ALLOWED_HOST=" ".join(allowed_hosts), **store_environment(store))
    options["http"] = "numbre.web.connections:GuardedProtocol"
    uvicorn.run("numbre.web.app:app_from_environment", factory=True, workers=workers, **options)


def check_origin(origin: str) -> None:
    """An origin as browsers send it: scheme://host[:port], nothing after; or * for any."""
    from urllib.parse import urlsplit

    from numbre.errors import NumbreError

    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
        sound = origin == "*" or (parts.scheme in ("http", "https") and bool(parts.hostname)
                                  and parts.path == "" and not parts.query and not parts.fragment)
    except ValueError:
        sound = False
    if not sound:
        raise NumbreError(f"--cors-origin {origin!r} is not an origin; give one as a browser sends it, "
                          "such as https://example.org or http://localhost:3000 (no path), or * for any")


def check_can_listen(host: str, port: int) -> None:
    """Bind (host, port) once and let go, so that a taken port or a foreign address is a one-line error
    before the server starts, instead of uvicorn's log after a banner that says it is serving."""
    import errno
    import socket

    from numbre.errors import NumbreError

    advice = {errno.EADDRINUSE: "another program listens there; choose another --port (0 picks a free one)",
              errno.EADDRNOTAVAIL: f"{host} is not an address of this machine; give one that is, "
                                   "such as 127.0.0.1, or 0.0.0.0 for every interface",
              errno.EACCES: "ports below 1024 need privileges; choose a higher --port"}
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise NumbreError(f"--host {host}: {error.strerror}; give a name or address of this machine, "
                              "such as 127.0.0.1, or 0.0.0.0 for every interface") from None
        except OSError as error:
            shown = f"[{host}]" if ":" in host else host
            raise NumbreError(f"cannot listen on {shown}:{port}: {error.strerror}; "
                              f"{advice.get(error.errno, 'choose another --host or --port')}") from None


def _stopped(signal_number: int, frame: object) -> None:
    raise SystemExit(0)
