"""One record per image: what `numbre predict --json` / `numbre read --json` print, or its error.

The record is built by the Recognizer's own `Prediction.to_dict` / `Reading.to_dict`, so a batch
answers exactly what the one-process commands answer. In Parquet it is stored with a fixed Arrow
schema per mode (a batch that holds only errors still has every column), and `to_record` turns a
stored row back into the JSON shape: keys that `to_dict` leaves out (a reason that is None) are
left out again, and an error row is just its file and error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from numbre.errors import NumbreError
from numbre.reading.recognize import Recognizer

MODES = ("digit", "number")


def arrow_schema(mode: str):
    """The Arrow schema of one mode's rows: the record's fields, plus `error` (None when read)."""
    import pyarrow as pa  # a dependency of the cluster extra, needed only when a batch runs

    if mode == "digit":
        fields = [("digit", pa.int64()), ("confidence", pa.float64()),
                  ("probabilities", pa.list_(pa.float64())), ("reason", pa.string())]
    else:
        digit = pa.struct([("digit", pa.int64()), ("confidence", pa.float64()),
                           ("box", pa.list_(pa.int64())), ("reason", pa.string())])
        fields = [("number", pa.string()), ("digits", pa.list_(digit)), ("reason", pa.string())]
    return pa.schema([("file", pa.string()), *fields, ("error", pa.string())])


def recognise(recognizer: Recognizer, mode: str, file: str, data: bytes) -> dict[str, Any]:
    """The record of one image's bytes: `to_dict` of its prediction (digit) or reading (number).

    Any failure becomes the record's error, never an exception: one odd file in a million must
    neither stop the run nor be lost from its output.
    """
    try:
        result = recognizer.predict(data) if mode == "digit" else recognizer.read(data)
        return {"file": file, **result.to_dict()}
    except NumbreError as error:
        return {"file": file, "error": str(error)}
    except Exception as error:  # a decoder's unforeseen failure: kept as this image's row
        return {"file": file, "error": f"could not read this image ({type(error).__name__}: {error})"}


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the JSON record of `numbre predict --json` / `numbre read --json`."""
    if row.get("error") is not None:
        return {"file": row["file"], "error": row["error"]}
    record = {key: value for key, value in row.items() if key != "error"}
    if record.get("reason") is None:
        record.pop("reason", None)
    if "digits" in record:
        record["digits"] = [{key: value for key, value in digit.items()
                             if key != "reason" or value is not None} for digit in record["digits"]]
    return record


@dataclass
class Tally:
    """What a run did: images read, of which rejected (no answer, with a reason) and unreadable."""

    read: int = 0
    rejected: int = 0
    unreadable: int = 0

    def add(self, rows: Iterable[dict[str, Any]], mode: str) -> None:
        answer = "digit" if mode == "digit" else "number"
        for row in rows:
            self.read += 1
            if row.get("error") is not None:
                self.unreadable += 1
            elif row.get(answer) is None:
                self.rejected += 1
