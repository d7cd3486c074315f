"""Training's thread count and wait policy: cores free to the process, --threads, passive waiting.

The cgroup files are fakes in a temporary folder, passed as the root of the cgroup file system
and as /proc/self/cgroup; `numbre train` runs in a fresh process, where a spy on the import
system records the environment at the moment torch is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_idx_folder
from numbre.training import threads
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer
from numbre.training.threads import (
    available_cores,
    cgroup_cpu_limit,
    prefer_passive_waiting,
    training_threads,
)

EIGHT = set(range(8))


def fake_cgroup(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup file system under tmp_path/"cgroup" holding `files`, and a /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_line + "\n")
    return root, proc


def test_cgroup_v2_quota_caps_the_cores_and_rounds_up(tmp_path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/user.slice/job", {"user.slice/job/cpu.max": "150000 100000\n"})
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert available_cores(root, proc, affinity=EIGHT) == 2


def test_cgroup_v2_smallest_quota_up_the_tree_counts(tmp_path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/a/b", {"a/b/cpu.max": "max 100000\n",
                                                   "a/cpu.max": "300000 100000\n",
                                                   "cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root, proc) == 3.0
    assert available_cores(root, proc, affinity=EIGHT) == 3


def test_cgroup_v2_without_quota_leaves_the_affinity(tmp_path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root, proc) is None
    assert available_cores(root, proc, affinity=EIGHT) == 8


def test_cgroup_v1_cfs_quota(tmp_path) -> None:
    files = {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
             "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}
    root, proc = fake_cgroup(tmp_path, "4:cpu,cpuacct:/docker/abc", files)
    assert cgroup_cpu_limit(root, proc) == 2.0
    assert available_cores(root, proc, affinity=EIGHT) == 2


def test_cgroup_v1_no_quota_is_minus_one(tmp_path) -> None:
    root, proc = fake_cgroup(tmp_path, "3:cpu:/", {"cpu/cpu.cfs_quota_us": "-1\n",
                                                   "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(root, proc) is None
    assert available_cores(root, proc, affinity={0, 1, 2}) == 3


def test_container_mount_at_its_own_cgroup(tmp_path) -> None:
    """Inside a container /proc/self/cgroup names the host's path, but the file system is mounted
    at the container's cgroup: the mount's top folder holds the quota."""
    root, proc = fake_cgroup(tmp_path, "0::/kubepods/pod42/abc", {"cpu.max": "100000 100000\n"})
    assert available_cores(root, proc, affinity=EIGHT) == 1


def test_affinity_smaller_than_the_quota_wins(tmp_path) -> None:
    root, proc = fake_cgroup(tmp_path, "0::/", {"cpu.max": "400000 100000\n"})
    assert available_cores(root, proc, affinity={5}) == 1


def test_unreadable_or_strange_cgroup_files_limit_nothing(tmp_path) -> None:
    for text in ("lots\n", "100000 0\n", ""):
        root, proc = fake_cgroup(tmp_path, "0::/", {"cpu.max": text})
        assert available_cores(root, proc, affinity=EIGHT) == 8
    assert available_cores(tmp_path / "missing", tmp_path / "missing-proc", affinity={0, 1}) == 2


def test_threads_option_overrides_the_cores() -> None:
    assert training_threads(3, cores=1) == 3
    assert training_threads(None, cores=5) == 5


def test_passive_waiting_keeps_what_the_user_set() -> None:
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert prefer_passive_waiting(environ) == {"KMP_BLOCKTIME": "0"}
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "0"}
    fresh: dict[str, str] = {}
    prefer_passive_waiting(fresh)
    assert fresh == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test that lets the trainer change it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("requested", "cores", "expected"), [(None, 1, 1), (None, 2, 2), (1, 2, 1)])
def test_trainer_uses_the_free_cores_unless_told(tiny, monkeypatch, torch_threads, requested, cores,
                                                 expected) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    torch.set_num_threads(2 if expected == 1 else 1)  # the opposite, so the trainer must set it
    config = TrainConfig(model="numbre-mlp", epochs=1, batch_size=32, threads=requested)
    Trainer(config, tiny, None, progress=False)
    assert torch.get_num_threads() == expected


CHILD = """
import json, os, sys
from pathlib import Path

seen = {}


class Spy:
    \"\"\"Records the wait-policy variables when torch is first imported.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "at_torch_import" not in seen:
            names = ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")
            seen["at_torch_import"] = {key: os.environ.get(key) for key in names}
        return None


sys.meta_path.insert(0, Spy())
import atexit

from numbre.training import threads

record = Path(sys.argv[1])
threads.CGROUP_ROOT, threads.PROC_CGROUP = Path(sys.argv[2]), Path(sys.argv[3])


def report():
    import torch

    seen["threads"] = torch.get_num_threads()
    record.write_text(json.dumps(seen))


atexit.register(report)
from numbre.cli import main

sys.argv = ["numbre", *sys.argv[4:]]
main()
"""


def run_train(tmp_path: Path, tiny, extra: list[str], environ: dict[str, str]) -> dict:
    """`numbre train` in a fresh process whose cgroup allows one core; what the spy saw."""
    root, proc = fake_cgroup(tmp_path, "0::/", {"cpu.max": "100000 100000\n"})
    data = write_idx_folder(tiny, tmp_path / "data")
    record = tmp_path / "seen.json"
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(record), str(root), str(proc), "train",
                           "-m", "numbre-mlp", "--epochs", "1", "--max-train", "128", "--data", str(data),
                           "--out", str(tmp_path / "run"), "-q", *extra],
                          capture_output=True, text=True, env={**env, **environ}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()
    return json.loads(record.read_text())


def test_numbre_train_sets_passive_waiting_before_torch_loads_and_uses_the_quota(tmp_path, tiny) -> None:
    seen = run_train(tmp_path, tiny, [], {})
    assert seen["at_torch_import"] == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
    assert seen["threads"] == 1  # the fake cgroup's one core, whatever this machine has


def test_numbre_train_threads_option_and_users_wait_policy_win(tmp_path, tiny) -> None:
    seen = run_train(tmp_path, tiny, ["--threads", "3"], {"OMP_WAIT_POLICY": "ACTIVE"})
    assert seen["at_torch_import"] == {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "0"}
    assert seen["threads"] == 3
