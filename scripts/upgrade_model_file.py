"""Rewrite a numbre model file of an older format version in the current one, weights unchanged.

    python scripts/upgrade_model_file.py runs/old/model.safetensors [more files...]

Format version 2 adds a digest of the metadata, so a file changed anywhere after it
was written is refused (version 1 files only protect their weights). The weights,
and their digest, stay exactly as they were; the file is replaced atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

from numbre.errors import NumbreError
from numbre.model.file import FORMAT_VERSION, META_DIGEST, load_model_file, save_model_file


def upgrade(path: Path) -> str:
    model_file = load_model_file(path)
    before = model_file.meta.get("format_version")
    if before == FORMAT_VERSION and META_DIGEST in model_file.meta:
        return f"{path}: already format version {FORMAT_VERSION}"
    save_model_file(path, model_file.tensors, model_file.meta)
    after = load_model_file(path)
    assert after.meta["weights_sha256"] == model_file.meta["weights_sha256"]
    return f"{path}: format version {before} -> {FORMAT_VERSION}, weights unchanged"


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    try:
        for name in sys.argv[1:]:
            print(upgrade(Path(name)))
    except NumbreError as error:
        sys.exit(f"upgrade_model_file: {error}")


if __name__ == "__main__":
    main()
