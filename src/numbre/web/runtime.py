"""The in-browser runtime: onnxruntime-web's WebAssembly build, which static/offline.js reads with.

Its three files (15 MB, nearly all of it the .wasm) come from the npm registry's tarball of one pinned
version, checked against the registry's integrity hash (SHA-512 of the tarball) and then against each
file's own SHA-256, and are kept in numbre's cache (`cache_root()`), not in the package: `numbre
serve` fetches them in the background when they are missing, `numbre export --web` and `numbre data
fetch --web-runtime` before they run. Files are written atomically, so an interrupted or poisoned
download never reaches the cache. A mirror of the registry (or a folder laid out like one, as a
file:// URL) is named by NUMBRE_NPM_REGISTRY, for machines that cannot reach registry.npmjs.org.

The licence (MIT) and a note on what these files are stay in the package, in static/vendor/
onnxruntime-web/, which the server serves and the export copies beside the fetched files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import io
import os
import tarfile
import threading
import urllib.error
from collections.abc import Callable
from pathlib import Path

from numbre.atomic import atomic_write
from numbre.data.dataset import cache_root
from numbre.errors import DataError, DownloadError, NumbreError

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
REGISTRY = "https://registry.npmjs.org"
REGISTRY_ENV = "NUMBRE_NPM_REGISTRY"
# `npm view onnxruntime-web@1.31.1 dist.integrity`: the SHA-512 of the tarball, as npm itself checks it.
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
TARBALL_BYTES = 34_586_352
# The files offline.js loads (the wasm-only bundle and its module), each with its SHA-256.
FILES = {
    "ort.wasm.min.js": "b8a78c408c40da65fdc8ba0846f7b2948e92a4c6d6b23cc8e4165e428ad95443",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
STATIC_FOLDER = "vendor/onnxruntime-web"  # under static/: where offline.js loads them from, with the licence
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def runtime_folder() -> Path:
    """Where the runtime's files are kept: one folder per version in numbre's cache."""
    return cache_root() / f"{PACKAGE}-{VERSION}"


def tarball_url() -> str:
    registry = os.environ.get(REGISTRY_ENV) or REGISTRY
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def find_runtime(folder: Path | None = None) -> Path | None:
    """The folder holding all the runtime's files, each with its pinned SHA-256, or None when any is
    missing or differs (a damaged or edited cache is fetched again rather than served to browsers).

    A file is hashed once per process for each size and modification time it has (15 MB, about 30 ms).
    """
    folder = folder or runtime_folder()
    for name, digest in FILES.items():
        try:
            state = (folder / name).stat()
        except OSError:
            return None
        if _sha256_of(folder / name, state.st_size, state.st_mtime_ns) != digest:
            return None
    return folder


@functools.lru_cache(maxsize=16)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str | None:
    """The file's SHA-256 (None if it cannot be read); `size` and `mtime_ns` key the cache."""
    try:
        with open(path, "rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError:
        return None


def integrity_of(data: bytes) -> str:
    """`data`'s integrity string as npm writes it (Subresource Integrity form, SHA-512)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def unpack(tarball: bytes, source: str) -> dict[str, bytes]:
    """The runtime's files out of the npm tarball, each checked against its SHA-256.

    Members are read by name into memory; nothing in the archive is ever extracted onto the disk,
    so paths in it cannot escape anywhere.
    """
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for name, digest in FILES.items():
                try:
                    member = archive.extractfile(f"package/dist/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DownloadError(f"{source} has no package/dist/{name}: not {PACKAGE} {VERSION}")
                data = member.read()
                if (actual := hashlib.sha256(data).hexdigest()) != digest:
                    raise DownloadError(f"{source}: {name} has SHA-256 {actual[:16]}..., expected "
                                        f"{digest[:16]}...: not the file of {PACKAGE} {VERSION}")
                found[name] = data
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DownloadError(f"{source} is not a readable npm tarball: {error}") from None
    return found


def fetch_runtime(quiet: bool = False, *, folder: Path | None = None) -> Path:
    """Download the tarball, check it and write the runtime's files into `folder` (default: the cache).

    Raises DownloadError saying what failed and what to do; then nothing has been written.
    """
    from numbre.data.fetch import download

    folder = folder or runtime_folder()
    url = tarball_url()
    try:
        tarball = download(url, quiet, limit=2 * TARBALL_BYTES, expected=f"the {PACKAGE} {VERSION} tarball")
    except (OSError, urllib.error.URLError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(
            f"could not fetch {PACKAGE} {VERSION} (the page's in-browser runtime) from {url}: {reason}; "
            f"with no way to registry.npmjs.org, set {REGISTRY_ENV} to an npm registry mirror") from None
    except DataError as error:  # too big, cut off
        raise DownloadError(f"could not fetch {PACKAGE} {VERSION}: {error}") from None
    if (actual := integrity_of(tarball)) != INTEGRITY:
        raise DownloadError(f"{url} does not match the registry's integrity hash ({actual[:24]}..., expected "
                            f"{INTEGRITY[:24]}...): the download is corrupt or not {PACKAGE} {VERSION}")
    for name, data in unpack(tarball, url).items():
        atomic_write(folder / name, data)
    return folder


def ensure_runtime(quiet: bool = False) -> Path:
    """The runtime's folder, fetched first when it is not in the cache."""
    return find_runtime() or fetch_runtime(quiet)


def fetch_in_background(say: Callable[[str], None]) -> threading.Thread | None:
    """Start fetching the runtime on a thread when it is missing, telling `say` how it went (for `numbre
    serve`: the page answers from the server meanwhile, and only its offline reader waits); None when
    it is already there."""
    if find_runtime() is not None:
        return None

    def fetch() -> None:
        try:
            folder = fetch_runtime(quiet=True)
        except NumbreError as error:  # a failed download, or a cache that cannot be written
            say(f"the page cannot read offline: {error}")
        else:
            say(f"fetched {PACKAGE} {VERSION} into {folder}: the page can read offline")

    say(f"fetching {PACKAGE} {VERSION} ({TARBALL_BYTES / 1e6:.0f} MB, once) for the page's offline reader")
    thread = threading.Thread(target=fetch, name="numbre-runtime-fetch", daemon=True)
    thread.start()
    return thread
