"""The Ray Data pipeline of `numbre batch`: files read as bytes, recognised by actors, stored.

    read_binary_files(paths, include_paths=True)      # read tasks: bytes and path of each file
      .map_batches(Reader, compute=ActorPoolStrategy)  # actors: each loads the ONNX model once
      .iter_batches()                                  # rows stream back; parts are written whole

Rows come back to the process that started the batch and are written there as part files
(`numbre.batch.store`): the output is small (a few hundred bytes an image), every part is whole,
and the bar counts images as they are stored, so what it shows is what a resumed run would skip.

A killed worker is Ray's to repair: the actors restart without limit (`max_restarts=-1`) and a
batch that was running on one is sent again (`max_task_retries=-1`); read tasks are retried the
same way. Nothing a batch does can fail for one image (`records.recognise` turns every failure
into that image's error row), so a retry is only ever for a lost process. Rows of a file are
stored once even if Ray were to hand a batch back twice.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numbre.batch.inputs import Inputs
from numbre.batch.records import arrow_schema, recognise
from numbre.batch.store import Store
from numbre.errors import NumbreError
from numbre.text import utf8_text

INSTALL = "pip install 'numbre[cluster]'"
# Images per map_batches call. Each call costs the actor and the process that stores the rows an
# Arrow table built and sent; with two workers on two cores that cost competes with the reading
# itself. Side by side on 2 cores (20,000 canvas PNGs, benchmarks/batch_scale.py), 2 workers over 1
# read 1.38x and 1.54x with 64 images a call and 256 files a read; 256 and 1024 against 512 and 2048,
# alternated three times: 1.57x, 1.49x, 1.39x against 1.81x, 1.93x, 1.83x. 512 is half a second of
# work a call: a retried call loses little, and a few thousand images still spread over the workers.
BATCH_IMAGES = 512
# A part file is written every this many rows, or after PART_SECONDS: few enough files for a
# million-image run (about 250 for 1M), little work lost if the process that writes them dies.
PART_ROWS = 4096
PART_SECONDS = 30.0
# Read tasks only move bytes; an actor does the work. Giving reads a tenth of a CPU lets one
# run beside each actor; with whole CPUs the actors would hold every CPU and no file be read.
READ_CPUS = 0.1
FILES_PER_READ = 2048
WORKER_CPUS = 0.9


@dataclass
class Summary:
    """What a run did. `skipped` images were already in OUT and were not read again."""

    read: int = 0
    rejected: int = 0
    unreadable: int = 0
    skipped: int = 0
    seconds: float = 0.0
    startup: float = 0.0  # of `seconds`, until the first rows came back (workers started, model loaded)
    first_rows: int = 0  # the rows that came back then
    parts: int = 0

    @property
    def steady_rate(self) -> float | None:
        """Images per second once the workers were up: the rate the reading itself runs at."""
        reading = self.seconds - self.startup
        later = self.read - self.first_rows
        return later / reading if reading > 0 and later > 0 else None

    def count(self, table, mode: str) -> None:
        import pyarrow.compute as pc

        answer = "digit" if mode == "digit" else "number"
        errors = table.column("error").is_valid()
        self.read += table.num_rows
        self.unreadable += pc.sum(errors).as_py() or 0
        unanswered = pc.and_(pc.invert(errors), table.column(answer).is_null())
        self.rejected += pc.sum(unanswered).as_py() or 0


class Reader:
    """A Ray Data actor: loads the model once, then turns batches of file bytes into rows."""

    def __init__(self, model: str, lines: str | None, mode: str) -> None:
        from numbre.reading.recognize import Recognizer

        # One thread: one actor per CPU is the parallelism; more threads would fight over cores.
        self.recognizer = Recognizer.load(model, threads=1, lines=lines if lines is not None else False)
        self.mode = mode
        self.schema = arrow_schema(mode)

    def __call__(self, batch) -> Any:
        import pyarrow as pa

        rows = [recognise(self.recognizer, self.mode, utf8_text(path), data)
                for path, data in zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist(),
                                      strict=True)]
        return pa.Table.from_pylist(rows, schema=self.schema)


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise NumbreError(f"numbre batch needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _quiet() -> None:
    """Ray's own progress bars and start-up lines stay out of the way of numbre's bar."""
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)


def connect(address: str | None, workers: int | None) -> bool:
    """Join the cluster at `address`, or start a local Ray of `workers` CPUs; True when started here
    (and so to be shut down at the end). A Ray already running in this process is used as it is."""
    ray = _import_ray()
    _quiet()
    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=True)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NumbreError(f"cannot start or join {where}: {first}; check the address "
                          "(auto, or ray://HOST:10001 of the head node) and that the cluster is up") from None
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().print_on_execution_start = False
    return True


def run_batch(inputs: Inputs, out: Path, *, mode: str = "digit", model: Path | str | None = None,
              lines: Path | str | bool | None = None,
              address: str | None = None, workers: int | None = None, format: str = "parquet",
              part_rows: int = PART_ROWS, progress: bool = True,
              on_part: Callable[[Path], None] | None = None) -> Summary:
    """Read every image of `inputs` not yet in `out` on Ray and store its record there.

    `model` and `lines` are `Recognizer.load`'s: a batch reads each image as `numbre read` would.
    """
    from numbre.reading.recognize import Recognizer, line_model_path, resolve_onnx

    try:
        import pyarrow  # noqa: F401  (the cluster extra's: Parquet parts, and Ray Data's blocks)
    except ImportError:
        raise NumbreError(f"numbre batch needs Ray and pyarrow, which are not installed: {INSTALL}") from None
    store = Store.open(out, mode, format)
    done = store.done()
    summary = Summary()
    todo = [path for path in inputs.paths if utf8_text(path) not in done]
    missing = [(utf8_text(path), error) for path, error in inputs.missing if utf8_text(path) not in done]
    summary.skipped = len(inputs.paths) + len(inputs.missing) - len(todo) - len(missing)
    if missing:
        import pyarrow as pa

        table = pa.Table.from_pylist([{"file": file, "error": error} for file, error in missing],
                                     schema=arrow_schema(mode))
        store.write(table)
        summary.count(table, mode)
    if not todo:
        summary.parts = store.parts_written
        return summary
    model_path = str(resolve_onnx(model).resolve())
    where = line_model_path(model, lines)
    line_path = str(where.resolve()) if where is not None else None
    # A model that cannot load is one clear error here, not failing workers.
    Recognizer.load(model_path, lines=line_path if line_path is not None else False)
    started = connect(address, workers)
    ray = _import_ray()
    begin = time.perf_counter()
    try:
        _stream(ray, todo, store, summary, begin, mode=mode, model=model_path, lines=line_path,
                workers=workers, part_rows=part_rows, progress=progress, on_part=on_part)
    except ray.exceptions.RayError as error:  # the cluster went away, or gave up on a task
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NumbreError(f"the Ray run stopped ({type(error).__name__}: {first}); {summary.read} images "
                          f"are stored in {out}: run the same command again to read the rest") from None
    finally:
        summary.seconds = time.perf_counter() - begin
        summary.parts = store.parts_written
        if started:
            ray.shutdown()
    return summary


def _stream(ray, todo: list[str], store: Store, summary: Summary, begin: float, *, mode: str, model: str,
            lines: str | None, workers: int | None, part_rows: int, progress: bool,
            on_part: Callable[[Path], None] | None) -> None:
    import pyarrow as pa
    from tqdm import tqdm

    if workers:
        pool = ray.data.ActorPoolStrategy(size=workers)
    else:  # as many as the cluster has CPUs for, starting with one
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus / (WORKER_CPUS + READ_CPUS))))
    # Read tasks of about FILES_PER_READ files, and at least a few per worker so all start at once.
    blocks = max(4 * (workers or 1), -(-len(todo) // FILES_PER_READ))
    with warnings.catch_warnings():  # Ray 2.60 calls max_restarts a "ray_remote_args" and warns; it is
        warnings.simplefilter("ignore")  # still how an actor's restarts are set
        dataset = (ray.data.read_binary_files(todo, include_paths=True, num_cpus=READ_CPUS,
                                              override_num_blocks=min(blocks, len(todo)))
                   .map_batches(Reader, fn_constructor_kwargs={"model": model, "lines": lines, "mode": mode},
                                batch_size=BATCH_IMAGES, batch_format="pyarrow", compute=pool,
                                num_cpus=WORKER_CPUS, max_restarts=-1, max_task_retries=-1))
    written: set[str] = set()
    pending: list = []
    pending_rows, last_write = 0, time.monotonic()

    def flush() -> None:
        nonlocal pending, pending_rows, last_write
        if pending_rows:
            table = pa.concat_tables(pending)
            part = store.write(table)
            summary.count(table, mode)
            if on_part is not None:
                on_part(part)
        pending, pending_rows, last_write = [], 0, time.monotonic()

    bar = tqdm(total=len(todo), unit="img", desc="numbre batch", disable=not progress, smoothing=0.1)
    try:
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            if not summary.startup:  # the first rows: the workers are up and the model loaded
                summary.startup, summary.first_rows = time.perf_counter() - begin, table.num_rows
            files = table.column("file").to_pylist()
            fresh = [file not in written for file in files]
            if not all(fresh):  # a batch handed back twice: its rows are stored once
                table = table.filter(pa.array(fresh))
            written.update(files)
            if table.num_rows:
                pending.append(table)
                pending_rows += table.num_rows
                bar.update(table.num_rows)
            if pending_rows >= part_rows or time.monotonic() - last_write >= PART_SECONDS:
                flush()
    finally:  # Ctrl-C or a failed run keeps every row already recognised
        flush()
        bar.close()
