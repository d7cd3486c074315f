"""`numbre serve`: the drawing page and the HTTP API on uvicorn.

Listens on 127.0.0.1 unless told otherwise: the API reads whatever it is sent, so opening it to a
network is a choice to make with `--host 0.0.0.0`. The model is loaded before the port is opened, so
a bad `--model` fails with a one-line error instead of a server that answers 500.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from numbre.cli.predict_cmd import model_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 opens the server to the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port.")
@model_option
@click.option("--max-bytes", default=8_000_000, show_default=True, type=click.IntRange(1),
              help="Largest upload accepted, in bytes; larger ones get 413.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Server processes, each with its own model; one per core gives the most requests/s.")
@click.option("--threads", default=None, type=click.IntRange(1),
              help="Recognitions run at once per process (default: the number of cores).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request.")
def serve(host: str, port: int, model: Path | None, max_bytes: int, workers: int, threads: int | None,
          access_log: bool) -> None:
    """Serve the drawing page at / and the API at /api (documented at /docs)."""
    import uvicorn

    from numbre.web.app import create_app

    app = create_app(model=model, max_bytes=max_bytes, threads=threads)  # fails here, cleanly, on a bad model
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"numbre: serving {app.state.recognizer.meta.get('architecture', 'the model')} "
               f"on http://{shown}:{port}/ (API docs at /docs; Ctrl+C stops)", err=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
        return
    # Each worker process builds its own app from the environment: an app object cannot cross processes.
    os.environ["NUMBRE_SERVE_MODEL"] = str(model) if model is not None else ""
    os.environ["NUMBRE_SERVE_MAX_BYTES"] = str(max_bytes)
    os.environ["NUMBRE_SERVE_THREADS"] = str(threads) if threads else ""
    uvicorn.run("numbre.web.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, log_level="info")
