"""The page's in-browser runtime (onnxruntime-web), fetched from an npm registry into the cache.

The fetching code runs against a local registry serving a small tarball laid out as npm's
(package/dist/...), with the pinned integrity hash and file digests swapped for the small tarball's:
a good tarball lands in the cache file by file; a wrong integrity hash, a file that is not the pinned
one, a missing file or a registry that cannot be reached leave nothing behind and say what to do. The
server serves the real runtime (fetched into the test cache by conftest's `_web_runtime`) with the
media types browsers insist on, and says how to get it when it is missing.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import tarfile
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from datahelpers import Response, cache_listing, closed_port, local_server
from numbre.cli import cli
from numbre.errors import DownloadError
from numbre.web import runtime
from numbre.web.app import STATIC, create_app
from webhelpers import live_server

SMALL = {"ort.wasm.min.js": b"var ort = {};\n", "ort-wasm-simd-threaded.mjs": b"export default 1;\n",
         "ort-wasm-simd-threaded.wasm": b"\0asm\1\0\0\0"}


def tarball(files: dict[str, bytes]) -> bytes:
    """An npm tarball (gzipped tar, everything under package/) holding `files` in package/dist/."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        members = {"package.json": b'{"name": "onnxruntime-web"}'}
        members.update({f"dist/{key}": value for key, value in files.items()})
        for name, data in members.items():
            member = tarfile.TarInfo(f"package/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return packed.getvalue()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    """A local npm registry serving the small tarball at the pinned version's path; the module's pins
    are the small tarball's."""
    pins = {name: hashlib.sha256(data).hexdigest() for name, data in SMALL.items()}
    monkeypatch.setattr(runtime, "FILES", pins)
    packed = tarball(SMALL)
    monkeypatch.setattr(runtime, "INTEGRITY", runtime.integrity_of(packed))
    with local_server() as server:
        server.routes[f"/npm/onnxruntime-web/-/onnxruntime-web-{runtime.VERSION}.tgz"] = Response(packed)
        monkeypatch.setenv(runtime.REGISTRY_ENV, f"{server.url}/npm/")
        yield server


def test_a_good_tarball_lands_in_the_cache_file_by_file(registry, tmp_path: Path) -> None:
    folder = runtime.fetch_runtime(quiet=True, folder=tmp_path / "runtime")
    assert cache_listing(folder) == sorted(SMALL)
    assert all((folder / name).read_bytes() == data for name, data in SMALL.items())
    assert runtime.find_runtime(folder) == folder
    assert registry.requests == [f"/npm/onnxruntime-web/-/onnxruntime-web-{runtime.VERSION}.tgz"]


def test_a_damaged_file_in_the_cache_is_fetched_again(registry, tmp_path: Path) -> None:
    folder = runtime.fetch_runtime(quiet=True, folder=tmp_path / "runtime")
    (folder / "ort.wasm.min.js").write_bytes(b"var ort = {}; alert(1);\n")  # edited after the fetch
    assert runtime.find_runtime(folder) is None
    (folder / "ort-wasm-simd-threaded.mjs").unlink()
    assert runtime.find_runtime(folder) is None
    runtime.fetch_runtime(quiet=True, folder=folder)
    assert runtime.find_runtime(folder) == folder
    assert (folder / "ort.wasm.min.js").read_bytes() == SMALL["ort.wasm.min.js"]


def test_the_cli_fetches_into_the_cache_once(registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "cache"))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["data", "fetch", "--web-runtime", "--quiet"])
        assert result.exit_code == 0, result.output
        assert f"onnxruntime-web {runtime.VERSION}: {tmp_path / 'cache' / runtime.runtime_folder().name}" \
            in result.output
    assert len(registry.requests) == 1  # the second run found it in the cache
    result = CliRunner().invoke(cli, ["data", "fetch", "--web-runtime", "--data", "fashion"])
    assert result.exit_code != 0 and "leave out --data" in result.output


def test_a_tarball_that_is_not_the_pinned_one_leaves_nothing(registry, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "runtime"
    monkeypatch.setattr(runtime, "INTEGRITY", runtime.integrity_of(b"another release"))
    with pytest.raises(DownloadError, match="does not match the registry's integrity hash"):
        runtime.fetch_runtime(quiet=True, folder=folder)
    assert cache_listing(folder) == []


@pytest.mark.parametrize("change", ["wrong file", "missing file", "not a tarball"])
def test_a_bad_file_inside_leaves_nothing(registry, tmp_path: Path, monkeypatch, change: str) -> None:
    files = dict(SMALL)
    if change == "wrong file":
        files["ort-wasm-simd-threaded.wasm"] = b"\0asm\1\0\0\0 and more"
    elif change == "missing file":
        del files["ort-wasm-simd-threaded.mjs"]
    packed = tarball(files) if change != "not a tarball" else b"<html>not found</html>"
    registry.routes[f"/npm/onnxruntime-web/-/onnxruntime-web-{runtime.VERSION}.tgz"] = Response(packed)
    monkeypatch.setattr(runtime, "INTEGRITY", runtime.integrity_of(packed))  # a registry that vouches for it
    expected = {"wrong file": "ort-wasm-simd-threaded.wasm has SHA-256",
                "missing file": "has no package/dist/ort-wasm-simd-threaded.mjs",
                "not a tarball": "is not a readable npm tarball"}[change]
    folder = tmp_path / "runtime"
    with pytest.raises(DownloadError, match=expected):
        runtime.fetch_runtime(quiet=True, folder=folder)
    assert cache_listing(folder) == []


def test_an_unreachable_registry_says_how_to_name_a_mirror(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(runtime.REGISTRY_ENV, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(DownloadError) as raised:
        runtime.fetch_runtime(quiet=True, folder=tmp_path / "runtime")
    message = str(raised.value)
    assert "could not fetch onnxruntime-web" in message and runtime.REGISTRY_ENV in message
    messages: list[str] = []
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "empty-cache"))
    thread = runtime.fetch_in_background(messages.append)
    assert thread is not None
    thread.join(timeout=30)
    assert messages[0].startswith("fetching onnxruntime-web") and messages[1].startswith(
        "the page cannot read offline: could not fetch onnxruntime-web"), messages
    result = CliRunner().invoke(cli, ["export", "--web", str(tmp_path / "site")])
    assert result.exit_code != 0 and runtime.REGISTRY_ENV in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "site").exists()


def test_the_server_serves_the_runtime_and_its_licence() -> None:
    assert runtime.fetch_in_background(lambda message: None) is None  # in the (test) cache already
    with live_server(create_app()) as url:
        for name, digest in runtime.FILES.items():
            answer = httpx.get(f"{url}/static/vendor/onnxruntime-web/{name}")
            assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == digest
            # Browsers compile WebAssembly streamed only as application/wasm, and load modules as JavaScript.
            assert answer.headers["content-type"].split(";")[0] == runtime.MEDIA_TYPES[Path(name).suffix]
        licence = httpx.get(f"{url}/static/vendor/onnxruntime-web/LICENSE")
        assert licence.status_code == 200
        assert licence.content == (STATIC / "vendor/onnxruntime-web/LICENSE").read_bytes()
        assert httpx.get(f"{url}/static/vendor/onnxruntime-web/nothing.js").status_code == 404
        # Names that climb out of the folder reach nothing beyond the page's static files.
        host, port = url.removeprefix("http://").split(":")
        for climb in ("../../../app.py", "%2e%2e%2f%2e%2e%2f%2e%2e%2fapp.py", "..%2f..%2f..%2fapp.py", ".."):
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", f"/static/vendor/onnxruntime-web/{climb}")  # sent as written
            assert connection.getresponse().status == 404, climb
            connection.close()


@pytest.mark.parametrize("cache", ["empty", "damaged"])
def test_a_server_without_the_runtime_says_how_to_fetch_it(tmp_path: Path, monkeypatch, cache: str) -> None:
    real = runtime.find_runtime()  # the test cache's (conftest)
    assert real is not None
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path))
    if cache == "damaged":  # a copy of the real runtime whose module was edited
        folder = runtime.runtime_folder()
        folder.mkdir(parents=True)
        for name in runtime.FILES:
            (folder / name).write_bytes(b"edited" if name.endswith(".mjs") else (real / name).read_bytes())
    with live_server(create_app()) as url:
        answer = httpx.get(f"{url}/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm")
        assert answer.status_code == 404
        assert "numbre data fetch --web-runtime" in answer.json()["error"]
        assert httpx.get(f"{url}/").status_code == 200  # the page itself answers from the server meanwhile
