"""`numbre train --nproc 2`: DistributedDataParallel over two CPU processes (gloo).

The runs train numbre-fast for 2 epochs on the first 3,000 MNIST images, as real command lines in
child processes. Two-process runs must reach the one-process accuracy, repeat to the bit with the
same seed, leave every file to rank 0 (an audit hook in each process records what it writes), and
come back from a killed rank or a Ctrl-C with `--resume` to exactly the weights of a run that was
never stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

from conftest import real_cache
from numbre.cli import cli
from numbre.errors import TrainingError
from numbre.model.file import load_model_file
from numbre.training import distributed
from numbre.training.loop import LAST, MODEL

OPTIONS = ["--model", "numbre-fast", "--epochs", "2", "--max-train", "3000", "--threads", "1", "--seed", "5",
           "--quiet"]
# Imported by every Python process that finds it on PYTHONPATH: records the files each one opens for
# writing or renames into the watched folder, with the rank it runs as.
AUDIT = '''
import os, sys
LOG, WATCH = os.environ.get("WRITES_LOG"), os.environ.get("WRITES_WATCH")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        path, mode, flags = args[0], args[1], args[2]
        if not ((isinstance(mode, str) and set(mode) & set("wax+")) or (flags or 0) & WRITE_FLAGS):
            return
    elif event == "os.rename":
        path = str(args[1])
    else:
        return
    if str(path).startswith(WATCH):
        line = f"{os.environ.get('RANK', 'launcher')} {event} {os.path.basename(path)}\\n"
        descriptor = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(descriptor, line.encode())
        os.close(descriptor)

if LOG and WATCH:
    sys.addaudithook(hook)
'''


# Holds rank 0 just before its first checkpoint replaces LAST (the end of epoch 1), until the test
# has stopped the run: the stop then lands at the same place on any machine, however fast.
PAUSE = '''
import os, sys, time
HELD, GO = os.environ.get("PAUSE_HELD"), os.environ.get("PAUSE_GO")
def hook(event, args):
    if event == "os.rename" and os.environ.get("RANK") == "0" and str(args[1]).endswith("%s"):
        if not os.path.exists(HELD):
            open(HELD, "w").close()
            deadline = time.monotonic() + 120
            while not os.path.exists(GO) and time.monotonic() < deadline:
                time.sleep(0.01)
if HELD and GO:
    sys.addaudithook(hook)
'''


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBRE_")}
    return {**env, "NUMBRE_CACHE": real_cache(), **extra}


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "numbre", "train", *OPTIONS, "--out", str(out), *extra]


def train(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command(out, *extra), env=env or environment(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def accuracy(result: subprocess.CompletedProcess) -> float:
    line = next(line for line in result.stdout.splitlines() if line.startswith("test accuracy"))
    return float(line.split()[2].rstrip("%")) / 100


def weights(run: Path) -> dict[str, np.ndarray]:
    return load_model_file(run / MODEL).tensors


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    different = [name for name in a if not np.array_equal(a[name], b[name])]
    assert not different, f"{first} and {second} differ in {different}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist) -> dict:
    """One one-process run and two two-process runs with the same seed (the first one audited)."""
    folder = tmp_path_factory.mktemp("distributed")
    hook = folder / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    log = folder / "writes.log"
    one = train(folder / "one")
    audited = environment(PYTHONPATH=str(hook), WRITES_LOG=str(log), WRITES_WATCH=str(folder / "two-a"))
    two_a = train(folder / "two-a", "--nproc", "2", env=audited)
    two_b = train(folder / "two-b", "--nproc", "2")
    return {"folder": folder, "one": one, "two_a": two_a, "two_b": two_b,
            "writes": log.read_text().splitlines() if log.exists() else []}


def test_two_processes_reach_the_one_process_accuracy(runs) -> None:
    one, two = accuracy(runs["one"]), accuracy(runs["two_a"])
    # 3,000 images, 2 epochs: about 96% either way; seeds alone move it by a few tenths of a point.
    assert one > 0.9 and two > 0.9, (one, two)
    assert abs(one - two) < 0.015, (one, two)
    history = (runs["folder"] / "two-a" / "history.csv").read_text().splitlines()
    assert len(history) == 3  # a header and the 2 epochs, with every rank's images in the training loss


def test_two_process_runs_with_one_seed_give_identical_weights(runs) -> None:
    folder = runs["folder"]
    assert_same_weights(folder / "two-a", folder / "two-b")
    one, two = weights(folder / "one"), weights(folder / "two-a")
    assert any(not np.array_equal(one[name], two[name]) for name in one)  # it did train differently


def test_only_rank_0_writes_files(runs) -> None:
    writes = runs["writes"]
    written = {line.split()[2] for line in writes if line.split()[1] == "os.rename"}
    assert {LAST, MODEL, "history.json", "metrics.json", "config.json"} <= written, writes
    assert {line.split()[0] for line in writes} == {"0"}, writes


def rank_processes(launcher: subprocess.Popen, count: int = 2,
                   timeout: float = 120) -> dict[int, psutil.Process]:
    """The launcher's rank processes, by rank, once all have started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and launcher.poll() is None:
        found = {}
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                rank = child.environ().get("RANK")
            except psutil.Error:
                continue
            if rank is not None:
                found[int(rank)] = child
        if len(found) == count:
            return found
        time.sleep(0.05)
    pytest.fail(f"the ranks did not start: {launcher.communicate()[1][-2000:]}")


def wait_for(path: Path, launcher: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert launcher.poll() is None, f"the run ended first: {launcher.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {path} in {timeout} s"
        time.sleep(0.01)


def stop_while_training(out: Path, stop, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Start a two-process run, hold rank 0 as it writes its first checkpoint, call
    `stop(launcher, ranks)`, let rank 0 go on, and return how the launcher ended and the position of
    the checkpoint it left."""
    hook = tmp_path / "pause"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE % LAST)
    held, go = tmp_path / "held", tmp_path / "go"
    env = environment(PYTHONPATH=str(hook), PAUSE_HELD=str(held), PAUSE_GO=str(go))
    launcher = subprocess.Popen(command(out, "--nproc", "2"), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        ranks = rank_processes(launcher)
        wait_for(held, launcher)
        stop(launcher, ranks)
        time.sleep(0.2)  # the stop reaches the ranks while rank 0 is held
        go.touch()
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    _, alive = psutil.wait_procs(list(ranks.values()), timeout=10)
    assert not alive, f"ranks still running: {alive}"
    position = load_model_file(out / LAST).meta["position"]  # loads whole, or raises
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr), position


def test_a_killed_rank_stops_every_rank_and_resume_completes_the_run(runs, tmp_path) -> None:
    out = tmp_path / "killed"
    ended, position = stop_while_training(out, lambda launcher, ranks: ranks[1].send_signal(signal.SIGKILL),
                                          tmp_path)
    assert ended.returncode == 2, ended.stderr[-2000:]
    assert ended.stderr.strip() == (
        f"numbre: error: training process 1 of 2 was killed by SIGKILL, so all stopped; the last good "
        f"checkpoint, {out / LAST}, is kept. Continue with the same command plus --resume"), ended.stderr
    assert position["epoch"] == 1 and not (out / MODEL).exists(), position
    train(out, "--nproc", "2", "--resume")
    assert_same_weights(out, runs["folder"] / "two-a")


def test_ctrl_c_stops_every_rank_with_a_checkpoint_and_resume_completes_the_run(runs, tmp_path) -> None:
    out = tmp_path / "interrupted"

    def interrupt(launcher, ranks) -> None:
        launcher.send_signal(signal.SIGINT)

    ended, position = stop_while_training(out, interrupt, tmp_path)
    assert ended.returncode == 2, ended.stderr[-2000:]
    assert ended.stderr.strip() == (f"numbre: error: interrupted; checkpoint written to {out / LAST}. "
                                    "Continue with the same command plus --resume"), ended.stderr
    assert position["epoch"] == 1 and not (out / MODEL).exists(), position
    train(out, "--nproc", "2", "--resume")
    assert_same_weights(out, runs["folder"] / "two-a")


def test_each_rank_mixes_its_share_of_synthesised_digits(tiny_folder, tmp_path) -> None:
    out = tmp_path / "synthetic"
    result = subprocess.run([sys.executable, "-m", "numbre", "train", "-m", "numbre-fast", "--epochs", "1",
                             "--threads", "1", "--synthetic", "0.25", "--nproc", "2", "--quiet", "--data",
                             str(tiny_folder), "--out", str(out)], env=environment(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_model_file(out / MODEL).meta["data"]
    assert card["synthetic_share"] == 0.25 and card["synthetic_images"] == 150  # a quarter of 600


# --- settings, without starting processes -------------------------------------------------------

def test_threads_are_split_between_the_processes_of_a_machine() -> None:
    assert distributed.threads_per_process(None, 2, cores=2) == 1
    assert distributed.threads_per_process(None, 2, cores=8) == 4
    assert distributed.threads_per_process(None, 4, cores=2) == 1  # never fewer than one
    assert distributed.threads_per_process(3, 2, cores=2) == 3  # --threads wins


def test_the_launcher_environment_is_read_and_checked() -> None:
    assert not distributed.launched({})
    assert not distributed.launched({"WORLD_SIZE": "1"})
    assert distributed.launched({"WORLD_SIZE": "2"})
    with pytest.raises(TrainingError, match="WORLD_SIZE='two' is not a number"):
        distributed.launched({"WORLD_SIZE": "two"})
    with pytest.raises(TrainingError, match="WORLD_SIZE is set but LOCAL_RANK, MASTER_PORT not"):
        distributed.join("cpu", {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"})
    with pytest.raises(TrainingError, match="NUMBRE_DIST_TIMEOUT='soon'"):
        distributed.timeout({"NUMBRE_DIST_TIMEOUT": "soon"})
    assert distributed.timeout({"NUMBRE_DIST_TIMEOUT": "30"}).total_seconds() == 30


def test_nproc_refuses_a_batch_smaller_than_the_processes_and_a_second_launcher(tiny_folder, tmp_path,
                                                                                monkeypatch) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "-m", "numbre-mlp", "--batch-size", "2", "--nproc", "3", "--quiet",
                                 "--data", str(tiny_folder), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.strip() == ("numbre: error: --batch-size 2 is the batch of all 3 processes together "
                                     "and must give each at least one image; raise it to 3 or more")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(cli, ["train", "--nproc", "2", "--data", str(tiny_folder)])
    assert result.exit_code == 2
    assert "this process is one of several a launcher (torchrun) started already" in result.output
