"""What `numbre batch` reads: INPUTS (folders, globs, list files) as absolute paths, in order.

Paths are made absolute because they are the key of the output: a run resumed from another
folder, or on another machine of the cluster that mounts the same archive at the same place,
must recognise the images it has already read.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from numbre.errors import NumbreError
from numbre.reading.limits import IMAGE_SUFFIXES


@dataclass
class Inputs:
    """The images to read, and the named inputs that are not there (kept as error rows)."""

    paths: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (absolute path, error)


def _image_files(folder: Path) -> list[str]:
    """Every image file below `folder`, at any depth: an archive is usually a tree of folders."""
    found = []
    for root, _dirs, files in os.walk(folder):
        found.extend(os.path.join(root, name) for name in files
                     if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES)
    return sorted(os.path.abspath(item) for item in found)


def _listed(list_file: Path) -> list[str]:
    """The paths a text file names, one a line; blank lines and lines starting with # are skipped.
    Relative paths are taken from the list's own folder, so a list travels with its archive."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise NumbreError(f"cannot read the list of paths {list_file}: {error}; give a UTF-8 text "
                          "file with one image path a line") from None
    base = list_file.parent
    return [os.path.abspath(base / line.strip()) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def expand(arguments: tuple[str, ...] | list[str]) -> Inputs:
    """Every image `arguments` name, each once, in order; a list file's missing entries are kept.

    A folder gives its image files at any depth; a glob its matches; a file with an image suffix
    itself; any other file is a list of paths. Raises `NumbreError` when nothing matched at all.
    """
    result, seen = Inputs(), set()

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            result.paths.append(path)

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            for item in _image_files(path):
                add(item)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            add(os.path.abspath(path))
        elif path.is_file():
            for item in _listed(path):
                if os.path.isfile(item):
                    add(item)
                elif item not in seen:
                    seen.add(item)
                    result.missing.append((item, f"no such file: {item} (listed in {argument})"))
        elif glob.has_magic(argument):
            for match in sorted(glob.glob(argument, recursive=True)):
                if os.path.isfile(match):
                    add(os.path.abspath(match))
    if not result.paths and not result.missing:
        shown = " ".join(arguments)
        raise NumbreError(f"no images matched {shown}; give folders, globs (quoted, such as "
                          "'scans/**/*.png') or a text file listing image paths")
    return result
