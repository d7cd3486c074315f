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


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest folder on `path`'s way that exists as a file, if one does."""
    return next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)


def _write_error(path: Path, error: OSError) -> NumbreError:
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return NumbreError(f"could not write {path}: {blocker} is a file, not a folder; choose another path")
    return NumbreError(
        f"could not write {path}: {error.strerror or error}; "
        "the previous file, if any, is unchanged"
    )


def check_folder_path(folder: Path, option: str) -> None:
    """Refuse an output folder that a file stands in the way of (the folder itself or one above it),
    before any work, without making anything."""
    folder = Path(folder)
    blocker = folder if folder.exists() and not folder.is_dir() else _file_in_the_way(folder)
    if blocker is not None:
        raise NumbreError(f"{option} {folder}: {blocker} is a file, not a folder; choose another path")


def prepare_folder(folder: Path, option: str) -> None:
    """Make the folder an output goes to, now: a path through a file, or a folder that cannot be made,
    is refused before any work instead of when the result is written."""
    folder = Path(folder)
    check_folder_path(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NumbreError(f"{option} {folder}: cannot make that folder ({error.strerror or error}); "
                          "choose another path") from None


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
