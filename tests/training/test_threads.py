"""Training's thread count and wait policy: cores free to the process, --threads, passive waiting,
and the tuner that changes the count while other programs come and go.

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
    OthersMeter,
    ThreadTuner,
    available_cores,
    busy_seconds,
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


# --- the tuner --------------------------------------------------------------------------------
class Machine:
    """A simulated machine: each thread count's step time and other programs' load, changeable."""

    def __init__(self, step: dict[int, float], others: float) -> None:
        self.step, self.others, self.steps_at = step, others, {}
        self.applied: list[int] = []

    def run(self, tuner: ThreadTuner, steps: int) -> None:
        for _ in range(steps):
            self.steps_at[tuner.current] = self.steps_at.get(tuner.current, 0) + 1
            tuner.step_done(self.step[tuner.current])


def tuner_on(machine: Machine, most: int = 2) -> ThreadTuner:
    return ThreadTuner(most, machine.applied.append, lambda: machine.others)


def test_a_quiet_machine_never_changes_the_count() -> None:
    machine = Machine({2: 0.02, 1: 0.035}, others=0.1)
    tuner = tuner_on(machine)
    machine.run(tuner, 5000)
    assert machine.applied == [] and tuner.changes == [] and tuner.current == 2


def test_beside_another_training_it_drops_to_one_thread_within_a_few_slow_steps() -> None:
    # Two threads collapse (the spinning weight-gradient barrier), one thread runs normally.
    machine = Machine({2: 1.0, 1: 0.05}, others=1.0)
    tuner = tuner_on(machine)
    machine.run(tuner, 500)
    assert tuner.current == 1 and machine.applied == [1]
    assert [change.threads for change in tuner.changes] == [1]
    assert tuner.changes[0].step_seconds == {2: 1.0, 1: 0.05} and tuner.changes[0].others == 1.0
    assert machine.steps_at[2] <= 3  # the skipped first step and a short window of slow ones


def test_when_the_other_work_ends_it_goes_back_to_every_core() -> None:
    machine = Machine({2: 1.0, 1: 0.05}, others=1.0)
    tuner = tuner_on(machine)
    machine.run(tuner, 200)
    machine.step, machine.others = {2: 0.02, 1: 0.035}, 0.0
    machine.run(tuner, 1000)
    assert tuner.current == 2 and machine.applied == [1, 2]
    assert [change.threads for change in tuner.changes] == [1, 2]
    assert tuner.changes[-1].step_seconds == {1: 0.035, 2: 0.02}


def test_when_every_count_is_slowed_alike_it_keeps_the_most_and_tries_less_often() -> None:
    # Beside two spinning processes both counts slow down; two threads still get more done.
    machine = Machine({2: 0.04, 1: 0.06}, others=2.0)
    tuner = tuner_on(machine)
    machine.run(tuner, 200)
    assert tuner.current == 2 and machine.applied == [1, 2]  # tried one thread, came back
    first_pause = tuner.pause
    machine.others = 1.2  # load that moves makes it try again, once the pause is over
    machine.run(tuner, 3000)
    assert tuner.current == 2 and len(tuner.changes) >= 2 and tuner.pause >= 2 * first_pause


def test_after_a_long_busy_while_a_quiet_machine_gets_every_core_back_within_a_minute() -> None:
    """Other work that comes and goes for a long while makes trial after trial keep one thread, and
    each doubles the pause; when the machine falls quiet, the move in load is still tried within
    `moved_pause` (60 s of steps), not after the doubled pause."""
    machine = Machine({2: 1.0, 1: 0.05}, others=1.0)
    tuner = tuner_on(machine)
    for round_ in range(200):  # the other work's load wanders between 1 and 1.6 cores
        machine.others = 1.0 if round_ % 2 else 1.6
        machine.run(tuner, 400)  # 20 s of steps on one thread
    assert tuner.current == 1 and tuner.pause >= 640, tuner.pause  # kept one thread trial after trial
    kept = len(tuner.changes)
    assert kept >= 7 and all(change.threads == 1 for change in tuner.changes)
    machine.step, machine.others = {2: 0.02, 1: 0.035}, 0.0  # the other work ends
    quiet_from = tuner.clock
    while tuner.changes[-1].threads != 2 and tuner.clock - quiet_from < 1000:
        machine.run(tuner, 1)
    assert tuner.current == 2 and tuner.clock - quiet_from <= 61, tuner.clock - quiet_from
    assert len(tuner.changes) == kept + 1 and tuner.changes[-1].step_seconds == {1: 0.035, 2: 0.02}


def test_a_passing_hiccup_on_a_quiet_machine_does_not_leave_it_on_fewer_threads() -> None:
    """Two slow windows (the machine stalled for a second) set off a trial; the hiccup is over by
    the time the other count is timed. Judged against the stalled window, one thread would look
    faster and the run would stay on it; the count in use is timed afresh instead."""
    machine = Machine({2: 0.02, 1: 0.035}, others=0.0)
    tuner = tuner_on(machine)
    machine.run(tuner, 500)
    machine.step = {2: 0.1, 1: 0.1}
    while tuner.trial is None:
        machine.run(tuner, 1)
    machine.step = {2: 0.02, 1: 0.035}
    machine.run(tuner, 3000)
    assert tuner.current == 2 and [change.threads for change in tuner.changes] == [2]
    assert tuner.changes[0].step_seconds == {2: 0.02, 1: 0.035}


def test_on_fewer_threads_a_quiet_machine_is_tried_again() -> None:
    """However it got there (a hiccup during a trial's window), a run on fewer threads than it may
    use on a machine that other programs leave alone tries every count again after a pause."""
    machine = Machine({2: 0.02, 1: 0.035}, others=0.0)
    tuner = tuner_on(machine)
    tuner._switch(1)  # as a trial misled by a stall would have left it
    machine.run(tuner, 2000)  # 70 s of steps
    assert tuner.current == 2 and tuner.changes[-1].threads == 2


def test_a_slowdown_without_a_load_reading_still_sets_off_a_trial() -> None:
    machine = Machine({2: 0.02, 1: 0.035}, others=0.0)
    tuner = ThreadTuner(2, machine.applied.append, lambda: None)  # not Linux: no /proc/stat
    machine.run(tuner, 300)
    assert tuner.changes == []
    machine.step = {2: 0.5, 1: 0.05}  # then something else starts
    machine.run(tuner, 300)
    assert tuner.current == 1 and tuner.changes[-1].others is None


def test_one_slow_window_is_a_hiccup_and_a_count_barely_faster_is_not_taken() -> None:
    machine = Machine({2: 0.045, 1: 0.044}, others=0.0)  # the idle EPYC's default recipe
    tuner = ThreadTuner(2, machine.applied.append, lambda: None)
    machine.run(tuner, 100)
    machine.step = {2: 0.2, 1: 0.2}
    machine.run(tuner, 5)  # less than two windows of slow steps
    machine.step = {2: 0.045, 1: 0.044}
    machine.run(tuner, 200)
    assert tuner.changes == [] and machine.applied == []
    machine.step = {2: 0.1, 1: 0.098}  # slower for good, both counts alike
    machine.run(tuner, 300)
    assert tuner.changes and all(change.threads == 2 for change in tuner.changes)
    assert tuner.current == 2 and machine.applied[-1] == 2  # tried one thread, 2% faster: kept two


@pytest.mark.parametrize(("most", "counts"), [(2, [2, 1]), (8, [8, 4, 2, 1]), (6, [6, 3, 1])])
def test_the_counts_tried_halve_down_to_one(most, counts) -> None:
    assert ThreadTuner(most, lambda _: None, lambda: 0.0).counts == counts


STAT = """cpu  900 0 300 5000 10 0 0 0 0 0
cpu0 400 0 100 2500 5 0 0 0 0 0
cpu1 500 0 200 2500 5 10 20 30 0 0
intr 12345
ctxt 999
"""


def test_busy_seconds_counts_every_busy_field_of_the_allowed_cpus() -> None:
    assert busy_seconds(STAT, None, 100.0) == pytest.approx((400 + 100 + 500 + 200 + 10 + 20 + 30) / 100)
    assert busy_seconds(STAT, {0}, 100.0) == pytest.approx(5.0)


def test_others_meter_subtracts_this_process_and_reads_none_without_proc_stat(tmp_path, monkeypatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n")
    clock = {"wall": 10.0, "own": 1.0}
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["own"])
    meter = OthersMeter(stat)
    meter.cpus = {0, 1}
    # Two seconds later the two CPUs were busy 3 s in all, 1 s of it this process's own.
    stat.write_text("cpu0 150 0 0 0 0 0 0 0\ncpu1 100 0 50 0 0 0 0 0\n")
    clock.update(wall=12.0, own=2.0)
    assert meter() == pytest.approx((3.0 - 1.0) / 2.0)
    assert OthersMeter(tmp_path / "missing")() is None


def test_the_trainer_tunes_only_when_the_count_is_its_own_choice(tiny, monkeypatch, torch_threads) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    chosen = Trainer(TrainConfig(model="numbre-mlp", epochs=1, batch_size=32), tiny, None, progress=False)
    told = Trainer(TrainConfig(model="numbre-mlp", epochs=1, batch_size=32, threads=2), tiny, None,
                   progress=False)
    assert chosen.tuner is not None and chosen.tuner.counts == [2, 1] and told.tuner is None
    result = told.run()
    assert [row["threads"] for row in result.history] == [2]
