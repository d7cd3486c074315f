"""A full disk while writing the data cache, a model file or a checkpoint: the old file stays; we say so.

The disk fills up partway through a write: `FullDisk` lets a set number of
bytes through and then fails the way the system does, as OSError(ENOSPC)
from Python's file writes and as safetensors' own error ("No space left on
device (os error 28)") from its Rust writer. One test needs no injection:
a child process whose file-size limit (RLIMIT_FSIZE) makes the kernel itself
fail the write, which works unprivileged in any container, unlike mounting a
small file system. Every refusal must leave the earlier file byte for byte,
no temporary file behind, and a message that says what happened.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import numbre.atomic
from conftest import make_dataset, write_idx_folder
from datahelpers import Response, cache_listing, gz, idx_files, local_server, make_arrays, make_spec
from numbre.cli import cli
from numbre.data.dataset import load_cached
from numbre.data.known import IDX_FILES
from numbre.errors import NumbreError
from numbre.model.file import load_model_file, save_model_file
from numbre.training.loop import LAST, MODEL

NO_SPACE = "No space left on device"


class FullDisk:
    """A disk with `free` bytes left, for Python file writes and for safetensors' writer."""

    def __init__(self, monkeypatch, free: int) -> None:
        import safetensors.numpy

        self.free = free
        self.real_open = open
        self.real_save = safetensors.numpy.save_file
        monkeypatch.setattr(numbre.atomic, "open", self.open, raising=False)  # atomic.py's `open`
        monkeypatch.setattr(safetensors.numpy, "save_file", self.save_file)

    def _take(self, size: int) -> int:
        granted = min(size, self.free)
        self.free -= granted
        return granted

    def open(self, path, mode="r", *args, **kwargs):
        stream = self.real_open(path, mode, *args, **kwargs)
        if "w" not in mode:
            return stream
        disk, write = self, stream.write

        def limited_write(data) -> int:
            granted = disk._take(len(data))
            write(bytes(data[:granted]))
            if granted < len(data):
                raise OSError(errno.ENOSPC, NO_SPACE)
            return granted

        stream.write = limited_write
        return stream

    def save_file(self, tensors, filename, metadata=None) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import save

        data = save(tensors, metadata=metadata)
        granted = self._take(len(data))
        Path(filename).write_bytes(data[:granted])
        if granted < len(data):
            raise SafetensorError(f"Error while serializing: I/O error: {NO_SPACE} (os error 28)")


def unchanged_message(path: Path, reason: str = NO_SPACE) -> str:
    return f"could not write {path}: {reason}; the previous file, if any, is unchanged"


# --- model files and checkpoints --------------------------------------------------------------

def tensors(seed: int) -> dict[str, np.ndarray]:
    return {"weight": np.random.default_rng(seed).random((64, 64), dtype=np.float32)}


META = {"architecture": "numbre-mlp", "class_names": [str(digit) for digit in range(10)]}


def test_a_full_disk_while_writing_a_model_file_keeps_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / MODEL
    save_model_file(path, tensors(0), META)
    before = path.read_bytes()
    FullDisk(monkeypatch, free=len(before) // 2)
    with pytest.raises(NumbreError) as caught:
        save_model_file(path, tensors(1), META)
    assert str(caught.value) == unchanged_message(path)
    assert path.read_bytes() == before
    assert cache_listing(tmp_path) == [MODEL]
    assert np.array_equal(load_model_file(path).tensors["weight"], tensors(0)["weight"])


def test_a_real_failing_write_keeps_the_previous_model_file(tmp_path: Path) -> None:
    """No injection: the kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG), in a child process."""
    path = tmp_path / MODEL
    save_model_file(path, tensors(0), META)
    before = path.read_bytes()
    script = f"""
import resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) // 2}, {len(before) // 2}))
from numbre.errors import NumbreError
from numbre.model.file import save_model_file
try:
    save_model_file({str(path)!r}, {{"weight": np.ones((64, 64), np.float32)}}, {META!r})
except NumbreError as error:
    print(error)
    sys.exit(2)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.strip() == unchanged_message(path, "File too large")
    assert path.read_bytes() == before
    assert cache_listing(tmp_path) == [MODEL]


def train(data: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["train", "--model", "numbre-mlp", "--epochs", "3", "--batch-size", "32",
                                    "--seed", "5", "--threads", "1", "--quiet", "--data", str(data),
                                    "--out", str(out), *extra])


def test_a_full_disk_during_training_stops_it_and_resume_finishes_the_same_run(
        tmp_path: Path, monkeypatch) -> None:
    data = write_idx_folder(make_dataset(), tmp_path / "data")
    reference = train(data, tmp_path / "reference")
    assert reference.exit_code == 0, reference.output
    run = tmp_path / "run"
    checkpoint = run / LAST
    first_checkpoint: list[bytes] = []
    disk = FullDisk(monkeypatch, free=10**9)
    real_save = disk.save_file

    def fill_after_the_first_checkpoint(tensors, filename, metadata=None):
        if Path(filename).name.startswith(f".{LAST}.") and checkpoint.exists():
            first_checkpoint.append(checkpoint.read_bytes())
            disk.free = 1000  # the second checkpoint meets a full disk
        real_save(tensors, filename, metadata)

    import safetensors.numpy

    monkeypatch.setattr(safetensors.numpy, "save_file", fill_after_the_first_checkpoint)
    stopped = train(data, run)
    assert stopped.exit_code == 2, stopped.output
    assert stopped.output.strip() == f"numbre: error: {unchanged_message(checkpoint)}"
    assert checkpoint.read_bytes() == first_checkpoint[0]
    assert load_model_file(checkpoint).meta["position"]["epoch"] == 1
    assert cache_listing(run) == ["config.json", LAST]

    monkeypatch.undo()  # space was freed
    resumed = train(data, run, "--resume")
    assert resumed.exit_code == 0, resumed.output
    expected, final = load_model_file(tmp_path / "reference" / MODEL), load_model_file(run / MODEL)
    for name, array in expected.tensors.items():
        assert np.array_equal(array, final.tensors[name]), name


# --- the data cache -----------------------------------------------------------------------------

def test_a_full_disk_while_refilling_the_cache_keeps_the_good_files_and_says_so(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """Two cached files are damaged (one empty, one cut short): both fail their checksum and are fetched
    again, and the disk fills up during the first rewrite. The good files stay as they were, the user is
    told, and once there is space the next load completes the cache."""
    raw = idx_files(make_arrays(seed=1))
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "numbre-cache"))
    with local_server() as server:
        for name, data in raw.items():
            server.routes[f"/mirror/{name}.gz"] = Response(gz(data))
        spec = make_spec(raw, mirrors=(f"{server.url}/mirror/",))
        cache = tmp_path / "numbre-cache" / "tiny"
        load_cached(spec, quiet=True)
        empty, cut, *good = IDX_FILES
        (cache / empty).write_bytes(b"")
        (cache / cut).write_bytes(raw[cut][: len(raw[cut]) // 3])
        disk = FullDisk(monkeypatch, free=len(raw[empty]) // 2)
        capsys.readouterr()
        with pytest.raises(NumbreError) as caught:
            load_cached(spec, quiet=False)
        assert str(caught.value) == unchanged_message(cache / empty)
        warnings = capsys.readouterr().err
        assert f"numbre: {cache / empty} failed its checksum and was removed; fetching it again" in warnings
        assert f"numbre: {cache / cut} failed its checksum and was removed; fetching it again" in warnings
        assert cache_listing(cache) == sorted(good)  # no half-written file, no temporary file
        assert all((cache / name).read_bytes() == raw[name] for name in good)
        assert disk.free == 0

        monkeypatch.setattr(numbre.atomic, "open", open, raising=False)  # space was freed
        server.requests.clear()
        dataset = load_cached(spec, quiet=True)
        assert sorted(server.requests) == sorted([f"/mirror/{empty}.gz", f"/mirror/{cut}.gz"])
        assert all((cache / name).read_bytes() == raw[name] for name in IDX_FILES)
        assert dataset.file_sha256 == spec.raw_sha256


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path: Path, monkeypatch) -> None:
    """`numbre data fetch` into a full disk: exit status 2 and the message, no traceback."""
    raw = idx_files(make_arrays(seed=2))
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "numbre-cache"))
    with local_server() as server:
        for name, data in raw.items():
            server.routes[f"/mirror/{name}.gz"] = Response(gz(data))
        spec = make_spec(raw, mirrors=(f"{server.url}/mirror/",))
        monkeypatch.setattr("numbre.data.dataset.MNIST", spec)
        FullDisk(monkeypatch, free=0)
        result = CliRunner().invoke(cli, ["data", "fetch", "--quiet"])
    first = tmp_path / "numbre-cache" / "tiny" / IDX_FILES[0]
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"numbre: error: {unchanged_message(first)}"
    assert cache_listing(tmp_path / "numbre-cache" / "tiny") == []
