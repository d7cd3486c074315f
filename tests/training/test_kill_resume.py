"""`numbre train` under faults: killed at random points and resumed, and stopped by a diverging loss.

The kill test runs the real command in child processes and ends each one with
SIGKILL, which no handler sees: in the middle of an epoch, and the moment a
checkpoint's or the model file's temporary file appears (inotify reports its
creation; the kill lands while it is written and flushed). After every kill,
each file in the run folder must load whole; the run is then resumed with the
same command plus `--resume` (or started again when no checkpoint was written
yet) until it finishes, and its model must hold exactly the weights of a run
that was never interrupted.

A kill aimed at a write can land after the write has finished when the test
process waits for a core (the killed process runs at a lower priority to make
that rare): such a kill missed its aim, so the run folder is put back byte for
byte as it was before that attempt and the kill is aimed again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import make_dataset, write_idx_folder
from numbre.cli import cli
from numbre.errors import ModelFileError
from numbre.model.file import load_model_file
from numbre.training.loop import LAST, MODEL

SEED = 11
OPTIONS = ["--model", "seed-cnn-a", "--epochs", "3", "--batch-size", "32", "--lr", "0.003", "--val-split",
           "0.2", "--augment", "--seed", "3", "--threads", "1", "--quiet"]
IN_CREATE, IN_MOVED_TO = 0x100, 0x80


class FolderWatch:
    """Names of files created in or renamed into a folder, as inotify reports them (Linux)."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, f"inotify_init1 failed: errno {ctypes.get_errno()}"
        assert libc.inotify_add_watch(self.fd, str(folder).encode(), IN_CREATE | IN_MOVED_TO) >= 0

    def wait_for(self, wanted, process: subprocess.Popen, timeout: float = 120) -> str | None:
        """The first new name for which `wanted(name)` holds; None if `process` ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            data = os.read(self.fd, 65536)
            while data:
                _, _, _, length = struct.unpack("iIII", data[:16])
                name = data[16:16 + length].rstrip(b"\0").decode()
                data = data[16 + length:]
                if wanted(name):
                    return name
        assert process.poll() is not None, f"nothing wanted appeared in {timeout} s"
        return None

    def drain(self) -> None:
        """Forget the names reported so far (a killed process's later files, a restore's)."""
        while select.select([self.fd], [], [], 0)[0]:
            os.read(self.fd, 65536)

    def close(self) -> None:
        os.close(self.fd)


def train_command(data: Path, out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "numbre", "train", *OPTIONS, "--data", str(data), "--out", str(out),
            *(["--resume"] if resume else [])]


def start(data: Path, out: Path, niceness: int = 0) -> subprocess.Popen:
    resume = (out / LAST).is_file()  # nothing to resume before the first checkpoint: start again
    return subprocess.Popen(train_command(data, out, resume), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=(lambda: os.nice(niceness)) if niceness else None)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def restore(folder: Path, files: dict[str, bytes]) -> None:
    """Put `folder` back exactly as `snapshot` saw it."""
    for path in folder.iterdir():
        if path.name not in files:
            path.unlink()
    for name, content in files.items():
        (folder / name).write_bytes(content)


def assert_whole(folder: Path) -> dict[str, int]:
    """Every model file in `folder` loads and verifies; returns each one's recorded epoch."""
    epochs = {}
    for path in sorted(folder.glob("*.safetensors")):
        meta = load_model_file(path).meta  # raises on a half-written or damaged file
        epochs[path.name] = meta.get("position", {}).get("epoch", -1)
    return epochs


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    data = write_idx_folder(make_dataset(), tmp_path / "data")
    reference = subprocess.Popen(train_command(data, tmp_path / "reference", False),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # runs alongside the kills
    run = tmp_path / "run"
    run.mkdir()
    rng = random.Random(SEED)
    watch = FolderWatch(run)
    # (when to kill, the new file name that starts the countdown, random delay in seconds, the file
    # whose write the kill is aimed at or None)
    plan = [("mid-epoch after the first checkpoint", LAST, rng.uniform(0.0, 0.3), None),
            ("writing a checkpoint", f".{LAST}.", 0.0, LAST),
            ("writing the model file", f".{MODEL}.", 0.0, MODEL)]
    record, missed = [], []
    try:
        for what, trigger, delay, aimed_at in plan:
            before = snapshot(run)
            for _attempt in range(5):
                watch.drain()
                process = start(data, run, niceness=10)
                if watch.wait_for(lambda name, trigger=trigger: name.startswith(trigger), process) is None:
                    out = process.communicate()
                    pytest.fail(f"the run ended before '{what}': {process.returncode} {out[1][-2000:]}")
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                out = process.communicate(timeout=30)
                assert process.returncode in (-signal.SIGKILL, 0), out[1][-2000:]
                whole = assert_whole(run)  # after every kill, aimed well or not
                if process.returncode == -signal.SIGKILL and (
                        aimed_at is None or snapshot(run).get(aimed_at) == before.get(aimed_at)):
                    break
                # the write it was aimed at had finished (or the whole run had): put the folder back
                missed.append(what)
                restore(run, before)
            else:
                pytest.fail(f"5 kills aimed at '{what}' all landed after the write: {missed}")
            partial = sorted(path.name for path in run.glob(".*.part"))
            record.append((what, whole, partial))
        final = start(data, run)
        stdout, stderr = final.communicate(timeout=300)
    finally:
        watch.close()
    assert final.returncode == 0, stderr.decode()[-3000:]
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()[-3000:]
    assert "test accuracy" in stdout.decode()
    assert not list(run.glob(".*.part")), "a killed write's temporary file was left behind"
    expected = load_model_file(tmp_path / "reference" / MODEL).tensors
    resumed = load_model_file(run / MODEL).tensors
    assert expected.keys() == resumed.keys()
    for name, array in expected.items():
        assert np.array_equal(array, resumed[name]), name
    # The kills landed where they were aimed: a write was cut short, and the checkpoint stayed the last
    # whole one each time (the resumed process was killed writing the next one).
    (_, first, _), (_, second, _), (_, third, _) = record
    assert first[LAST] >= 1 and second[LAST] == first[LAST] and third[LAST] == 3, record
    assert MODEL not in third, record
    assert any(partial for _, _, partial in record[1:]), record
    for what, files, partial in record:
        print(f"\nkilled {what}: whole files {files}, unfinished writes {partial}", end="")
    print(f"\nkills that landed after the write they were aimed at, aimed again: {missed}", end="")


# --- a diverging loss ----------------------------------------------------------------------------

def test_a_diverging_run_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    """SGD at lr 100 makes numbre-fast's weights infinite during epoch 2, while its loss is still finite."""
    data = write_idx_folder(make_dataset(), tmp_path / "data")
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--model", "numbre-fast", "--optimizer", "sgd", "--lr", "100",
                                      "--epochs", "4", "--batch-size", "128", "--threads", "1", "--quiet",
                                      "--data", str(data),
                                      "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("numbre: error: the weight ") and "Traceback" not in message, message
    assert "became NaN or infinite in epoch 2" in message and "lower --lr" in message, message
    assert f"The last good checkpoint, {out / LAST}, is kept" in message, message
    kept = load_model_file(out / LAST)
    assert kept.meta["position"]["epoch"] == 1
    assert all(np.isfinite(array).all() for array in kept.tensors.values())
    assert not (out / MODEL).exists()


def test_a_nan_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path: Path) -> None:
    data = write_idx_folder(make_dataset(), tmp_path / "data")
    result = CliRunner().invoke(cli, ["train", "--model", "numbre-mlp", "--lr", "1e30", "--epochs", "2",
                                      "--threads", "1", "--quiet", "--data", str(data),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("numbre: error: the loss became nan at epoch 1, step ")
    assert "lower --lr. No checkpoint was written before it" in result.output
    assert not (tmp_path / "run" / LAST).exists()


def test_a_checkpoint_with_infinite_weights_is_never_written(tmp_path: Path) -> None:
    """The guard below the loop: save_checkpoint itself refuses, and the previous file stays byte for byte."""
    import torch

    from numbre.errors import TrainingError
    from numbre.model.zoo import create_model
    from numbre.training.checkpoint import save_checkpoint

    model = create_model("numbre-mlp")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    position = {"config": {"model": "numbre-mlp"}, "class_names": [str(digit) for digit in range(10)]}
    path = tmp_path / LAST
    save_checkpoint(path, model, optimizer, position)
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    with pytest.raises(TrainingError, match=r"not writing .*holds NaN or infinite values.*lower --lr"):
        save_checkpoint(path, model, optimizer, position)
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == [LAST]


def test_a_checkpoint_with_well_formed_but_wrong_contents_is_refused(tmp_path: Path) -> None:
    """A file with correct digests whose state does not fit: a ModelFileError, not a KeyError."""
    import torch

    from numbre.model.file import save_model_file
    from numbre.model.network import state_to_numpy
    from numbre.model.zoo import create_model
    from numbre.training.checkpoint import load_checkpoint

    model = create_model("numbre-mlp")
    path = tmp_path / LAST
    save_model_file(path, {f"model.{name}": array for name, array in state_to_numpy(model).items()},
                    {"kind": "checkpoint", "architecture": "numbre-mlp",
                     "class_names": [str(digit) for digit in range(10)], "position": {"epoch": 1}})
    with pytest.raises(ModelFileError, match="is not a usable checkpoint"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))
