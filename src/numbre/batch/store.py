"""The output folder of `numbre batch`: part files written whole, read back to resume.

OUT holds `part-<run>-<n>.parquet` (or `.jsonl`) files and `_numbre_batch.json`, which records
the mode and format the folder was started with. Every part is written to a temporary file and
renamed into place (`numbre.atomic`), so a crash, a kill or Ctrl-C leaves whole parts only; the
rows already written are the images that are done, and a run with the same OUT reads the rest.
Readers that open the folder as one dataset (pyarrow, pandas, Spark, DuckDB) skip the names
starting with "." or "_": the temporary files and the manifest.

An image is in OUT at most once as the store hands it out: `read_rows` keeps the first row of
each file, in part order, should a part ever repeat one (two runs started at once on one OUT).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numbre.atomic import atomic_save, atomic_write, prepare_folder
from numbre.batch.records import to_record
from numbre.errors import NumbreError

FORMATS = ("parquet", "jsonl")
MANIFEST = "_numbre_batch.json"


class Store:
    """One OUT folder, in one mode and format."""

    def __init__(self, folder: Path, mode: str, format: str) -> None:
        self.folder, self.mode, self.format = Path(folder), mode, format
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.parts_written = 0

    @classmethod
    def open(cls, folder: Path, mode: str, format: str) -> Store:
        """The store at `folder`, made if new; refused (before any work) when it cannot be written or
        was started in another mode or format."""
        folder = Path(folder)
        prepare_folder(folder, "-o")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise NumbreError(f"-o {folder}: cannot write there ({error.strerror or error}); "
                              "choose a folder you can write to") from None
        manifest = folder / MANIFEST
        wanted = {"mode": mode, "format": format}
        if manifest.is_file():
            try:
                found = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found = None
            if not isinstance(found, dict) or {key: found.get(key) for key in wanted} != wanted:
                raise NumbreError(f"-o {folder} holds a batch of another kind ({found}); resume it with the "
                                  f"same --mode and --format, or write {mode}/{format} to another folder")
        else:
            if any(folder.glob("part-*")):
                raise NumbreError(f"-o {folder} holds part files but no {MANIFEST}; choose an empty folder")
            atomic_write(manifest, json.dumps(wanted).encode() + b"\n")
        return cls(folder, mode, format)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob(f"part-*.{self.format}"))

    def _rows(self, part: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                return pq.read_table(part, columns=columns).to_pylist()
            rows = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line]
            return [{key: row.get(key) for key in columns} for row in rows] if columns else rows
        except Exception as error:  # a part changed by hand; numbre's own are written whole
            raise NumbreError(f"cannot read {part} ({type(error).__name__}: {error}); delete it and run "
                              "again to read its images anew") from None

    def done(self) -> set[str]:
        """The files that already have a row (read or not), as stored."""
        return {row["file"] for part in self.parts() for row in self._rows(part, ["file"])}

    def read_rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row, one per file (the first, in part order)."""
        seen: set[str] = set()
        for part in self.parts():
            for row in self._rows(part):
                if row["file"] not in seen:
                    seen.add(row["file"])
                    yield row

    def write(self, table) -> Path:
        """Write an Arrow table of rows as the next part, whole or not at all."""
        self.parts_written += 1
        target = self.folder / f"part-{self.run}-{self.parts_written:06d}.{self.format}"
        if self.format == "parquet":
            import pyarrow.parquet as pq

            atomic_save(target, lambda path: pq.write_table(table, path))
        else:  # allow_nan=False: a non-finite number is a bug to report, never bare NaN
            lines = (json.dumps(to_record(row), allow_nan=False) for row in table.to_pylist())
            atomic_write(target, "".join(line + "\n" for line in lines).encode("utf-8"))
        return target


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records of a `numbre batch` output folder, one per image, in the JSON shape of
    `numbre predict --json` / `numbre read --json`."""
    manifest = Path(folder) / MANIFEST
    try:
        kind = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NumbreError(f"{folder} is not a numbre batch output (no readable {MANIFEST})") from None
    store = Store(Path(folder), kind["mode"], kind["format"])
    return [to_record(row) for row in store.read_rows()]
