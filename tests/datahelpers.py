"""Helpers for the data tests: tiny MNIST-format files, a local HTTP server, a wheel builder.

Nothing here touches the network beyond 127.0.0.1 or the user's cache.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import pickle
import socket
import struct
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from numbre.data import idx
from numbre.data.known import IDX_FILES, DatasetSpec, WheelSpec

TRAIN, TEST = 50, 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gz(data: bytes) -> bytes:
    """Gzip with a fixed timestamp, so the same bytes always give the same digest."""
    return gzip.compress(data, mtime=0)


def make_arrays(train: int = TRAIN, test: int = TEST, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 28x28 images and labels 0-9 (every digit present), keyed by IDX file name."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8)
    y_train = rng.permutation(np.arange(train) % 10).astype(np.uint8)
    y_test = rng.permutation(np.arange(test) % 10).astype(np.uint8)
    return dict(zip(IDX_FILES, (x_train, y_train, x_test, y_test), strict=True))


def idx_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The uncompressed IDX bytes of each array."""
    return {name: idx.encode(array) for name, array in arrays.items()}


def write_mnist_folder(
    folder: Path, arrays: dict[str, np.ndarray], gzipped: bool = True, dotted: bool = False
) -> Path:
    """Write the four IDX files into `folder`, optionally gzipped or as `train-images.idx3-ubyte`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in idx_files(arrays).items():
        file_name = name.replace("-idx", ".idx") if dotted else name
        if gzipped:
            (folder / f"{file_name}.gz").write_bytes(gz(data))
        else:
            (folder / file_name).write_bytes(data)
    return folder


def make_spec(
    raw: dict[str, bytes],
    mirrors: tuple[str, ...] = (),
    gz_digests: bool = True,
    wheel: WheelSpec | None = None,
    name: str = "Tiny",
) -> DatasetSpec:
    """A DatasetSpec whose digests are those of `raw` (and of `gz(raw)` when `gz_digests`)."""
    return DatasetSpec(
        name=name,
        raw_sha256={key: sha256(data) for key, data in raw.items()},
        gz_sha256={key: sha256(gz(data)) for key, data in raw.items()} if gz_digests else {},
        mirrors=mirrors,
        wheel=wheel,
    )


def cache_listing(folder: Path) -> list[str]:
    """Every file name under `folder`, hidden ones (like `.x.part` temporaries) included."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a local HTTP server -------------------------------------------------------------------


@dataclass
class Response:
    """What the server sends for one path.

    `cut_after` sends a Content-Length for the whole body but only that many bytes, then
    closes. `chunked` sends the body with chunked transfer encoding (cut the same way).
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    cut_after: int | None = None
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class LocalServer:
    """An HTTP server on 127.0.0.1 that answers from a dict of routes and logs every request.

    Paths not in `routes` get a 404.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Response] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                response = server.routes.get(self.path.split("#")[0])
                if response is None:
                    self.send_error(404, "Not Found")
                    return
                body = response.body
                sent = body if response.cut_after is None else body[: response.cut_after]
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                # Say the connection closes, so a client never sends its next request down a
                # socket this server is closing (pip with PIP_RETRIES=0 failed on that race).
                self.send_header("Connection", "close")
                for key, value in response.headers.items():
                    self.send_header(key, value)
                if response.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(f"{len(body):x}\r\n".encode() + sent)
                    if response.cut_after is None:
                        self.wfile.write(b"\r\n0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(sent)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        Handler.protocol_version = "HTTP/1.1"  # so chunked responses are legal
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


# --- wheels and pickles --------------------------------------------------------------------


def mnist_parts(arrays: dict[str, np.ndarray], split: int) -> tuple:
    """The classic mnist.pkl layout: ((train), (valid), (test)) pairs of float32 (N, 784) images
    holding uint8/256 and int64 labels; the first `split` training images are `train`."""
    x_train, y_train, x_test, y_test = (arrays[name] for name in IDX_FILES)

    def pair(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = images.reshape(len(images), 784).astype(np.float32) / np.float32(256)
        return flat.astype(np.float32), labels.astype(np.int64)

    return (
        pair(x_train[:split], y_train[:split]),
        pair(x_train[split:], y_train[split:]),
        pair(x_test, y_test),
    )


def pickle_gz(obj: object) -> bytes:
    """gzip of a protocol-2 pickle, as mnist.pkl.gz is."""
    return gz(pickle.dumps(obj, protocol=2))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """Write `name-version-py3-none-any.whl` holding `files` and a minimal valid dist-info."""
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test data\n"
    ).encode()
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: numbre-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def publish_wheel(server: LocalServer, wheel: Path) -> str:
    """Serve `wheel` from a PEP 503 simple index on `server`; return the index URL."""
    project = wheel.name.split("-")[0]
    data = wheel.read_bytes()
    server.routes[f"/packages/{wheel.name}"] = Response(data)
    link = f'<a href="/packages/{wheel.name}#sha256={sha256(data)}">{wheel.name}</a>'
    page = f"<!DOCTYPE html><html><body>\n{link}<br/>\n</body></html>\n"
    server.routes[f"/simple/{project}/"] = Response(page.encode(), content_type="text/html")
    return f"{server.url}/simple/"


@contextlib.contextmanager
def raw_socket_server(reply: bytes) -> Iterator[str]:
    """A 127.0.0.1 TCP server that answers every connection with `reply` (not HTTP); yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    connection.recv(65536)
                    connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _py2_str(data: bytes) -> bytes:
    """A Python 2 `str` as its pickler writes it (SHORT_BINSTRING or BINSTRING)."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<I", len(data)) + data


def _py2_array(array: np.ndarray) -> bytes:
    """The protocol-2 opcodes Python 2 with NumPy 1.x writes for `array`."""
    array = np.ascontiguousarray(array)
    shape = b"(" + b"".join(b"J" + struct.pack("<i", size) for size in array.shape) + b"t"
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(array.dtype.str[1:].encode()) + b"K\x00K\x01\x87R"
        + b"(K\x03" + _py2_str(array.dtype.str[:1].encode())
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
        + b"K\x00\x85" + _py2_str(b"b") + b"\x87R"
        + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(array.tobytes()) + b"tb"
    )


def python2_pickle(parts: tuple) -> bytes:
    """A pickle of a tuple of (images, labels) pairs byte for byte as Python 2 wrote mnist.pkl:
    `numpy.core.multiarray._reconstruct` and the array data as a Python 2 str."""
    body = b"".join(_py2_array(images) + _py2_array(labels) + b"\x86" for images, labels in parts)
    return b"\x80\x02(" + body + b"t."
