"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file.

Data goes to a temporary file in the destination folder, is flushed to disk,
and only then renamed over the destination: readers see the old file or the
new one, never a mix. On failure the temporary file is removed and the old
file is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from numbre.errors import NumbreError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_error(path: Path, error: OSError) -> NumbreError:
    return NumbreError(
        f"could not write {path}: {error.strerror or error}; "
        "the previous file, if any, is unchanged"
    )


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` if the block succeeds."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".part", dir=path.parent
        )
    except OSError as error:  # e.g. the parent is a file, or the folder is read-only
        raise _write_error(path, error) from None
    os.close(handle)
    try:
        os.chmod(temp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        yield Path(temp_name)
        with open(temp_name, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise _write_error(path, error) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Open a binary stream whose content replaces `path` when the block ends without error."""
    with _temporary_beside(Path(path)) as temp, open(temp, "wb") as stream:
        yield stream


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_open(path) as stream:
        stream.write(data)


def atomic_save(path: Path, writer: Callable[[Path], None]) -> None:
    """Let `writer` write a temporary path that then atomically replaces `path`.

    For libraries (safetensors, matplotlib) that want a file name, not a stream.
    """
    with _temporary_beside(Path(path)) as temp:
        writer(temp)
