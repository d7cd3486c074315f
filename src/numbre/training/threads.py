"""How many CPU threads training uses, and how they wait for each other.

torch runs each operator on a team of OpenMP threads that meet at a barrier when it ends. By
default a thread that reaches the barrier first spins, burning its core in the hope that the
others arrive within microseconds (GNU libgomp: 300,000 rounds). On a machine where other programs
also want the cores, the thread it waits for is often not running at all, and the spinning one
takes the core from it: beside two busy processes on 2 cores, 150 steps of seed-cnn-a took 98 s
and 19.5 s of CPU when spinning, 2.7 s and 2.0 s of CPU when waiting passively
(benchmarks/busy_machine.py). Two settings prevent that:

- passive waiting: a thread that arrives early sleeps instead of spinning. The OpenMP runtime
  reads its wait policy once, when torch loads it, so `prefer_passive_waiting` must run before
  `import torch`; `numbre train` calls it first thing.
- no more threads than the cores the process may actually use: the CPUs it is pinned to
  (`taskset`, `docker --cpuset-cpus`) and its cgroup's CPU quota (`docker --cpus`, Kubernetes CPU
  limits), not every core of the machine. `os.cpu_count()` counts the machine's.

Never imports torch.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

# Sleep at barriers instead of spinning. OMP_WAIT_POLICY is the OpenMP standard's name (GNU
# libgomp, which Linux builds of torch ship, then spins 0 times); KMP_BLOCKTIME=0 is the same for
# Intel's and LLVM's runtimes (libiomp5, libomp), which other builds of torch ship.
PASSIVE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def prefer_passive_waiting(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Ask the OpenMP runtime to put idle threads to sleep; return the variables it set.

    Variables the user set already are left alone, so `OMP_WAIT_POLICY=ACTIVE numbre train` still
    spins. Has no effect once torch is imported: the runtime has read its settings by then.
    """
    environ = os.environ if environ is None else environ
    added = {name: value for name, value in PASSIVE_WAITING.items() if name not in environ}
    environ.update(added)
    return added


def _quota_from(cpu_max: str | None, quota_us: str | None, period_us: str | None) -> float | None:
    """Cores of CPU time per period from cgroup v2's `cpu.max` ("200000 100000", "max 100000")
    or v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` ("-1" for none)."""
    try:
        if cpu_max is not None:
            quota, _, period = cpu_max.strip().partition(" ")
            if quota != "max":
                return int(quota) / int(period or "100000")
        elif quota_us is not None and period_us is not None and int(quota_us) > 0:
            return int(quota_us) / int(period_us)
    except (ValueError, ZeroDivisionError):  # a file we do not understand limits nothing we know of
        return None
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """The folders whose CPU limits apply to this process, its own first, then its ancestors.

    /proc/self/cgroup names the process's cgroup ("0::/user.slice/x" for v2, "4:cpu,cpuacct:/x"
    for v1). Inside a container the cgroup file system is often mounted at the container's own
    cgroup, so the named path may not exist under `root`: the mount's top folder is then checked.
    """
    folders: list[Path] = []
    for line in (_read(proc_cgroup) or "").splitlines():
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if controllers == "":
            base = root  # cgroup v2, the unified hierarchy
        elif "cpu" in names:
            base = next((root / name for name in (controllers, "cpu,cpuacct", "cpu")
                         if (root / name).is_dir()), root / "cpu")
        else:
            continue
        relative = Path(path.strip().lstrip("/"))
        for folder in (base / relative, *(base / parent for parent in relative.parents)):
            if folder not in folders:
                folders.append(folder)
    return folders or [root, root / "cpu"]


def cgroup_cpu_limit(root: Path | None = None, proc_cgroup: Path | None = None) -> float | None:
    """The CPU quota of this process's cgroups in cores (1.5 = one and a half cores), or None.

    A quota anywhere up the tree limits the process, so the smallest one counts. `root` and
    `proc_cgroup` default to /sys/fs/cgroup and /proc/self/cgroup.
    """
    root = CGROUP_ROOT if root is None else root
    proc_cgroup = PROC_CGROUP if proc_cgroup is None else proc_cgroup
    limits = []
    for folder in _cgroup_folders(root, proc_cgroup):
        limit = _quota_from(_read(folder / "cpu.max"), _read(folder / "cpu.cfs_quota_us"),
                            _read(folder / "cpu.cfs_period_us"))
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def available_cores(root: Path | None = None, proc_cgroup: Path | None = None,
                    affinity: set[int] | None = None) -> int:
    """How many cores this process may use: the CPUs it may run on, capped by its cgroup quota.

    A fractional quota is rounded up: with 1.5 cores of quota, two threads get 1.5 cores of work
    done and one thread only 1; the kernel throttles both threads together, so neither waits for
    the other at a barrier.
    """
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cores = len(affinity) if affinity else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def training_threads(requested: int | None, cores: int | None = None) -> int:
    """The intra-op thread count for training: `--threads` when given, else the available cores."""
    if requested is not None:
        return requested
    return available_cores() if cores is None else max(1, cores)


def busy_seconds(stat: str, cpus: set[int] | None, ticks_per_second: float) -> float:
    """CPU seconds spent busy since boot on `cpus` (every CPU when None), from /proc/stat's text.

    Busy is every field of a `cpuN` line but idle and iowait; guest time is already inside user
    time, so it is left out.
    """
    busy = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = [int(value) for value in fields[:8]] + [0] * (8 - len(fields[:8]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        busy += user + nice + system + irq + softirq + steal
    return busy / ticks_per_second


class OthersMeter:
    """How many of this process's cores other programs kept busy since the last reading.

    /proc/stat's busy time on the CPUs this process may run on, less the process's own CPU time,
    over the wall time between two readings. None where /proc/stat cannot be read (not Linux):
    step times alone then tell the tuner that the machine got busier.
    """

    def __init__(self, stat_path: Path = Path("/proc/stat")) -> None:
        self.stat_path = stat_path
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        self.ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.last = self._reading()

    def _reading(self) -> tuple[float, float, float] | None:
        text = _read(self.stat_path)
        if text is None:
            return None
        return busy_seconds(text, self.cpus, self.ticks), time.process_time(), time.perf_counter()

    def __call__(self) -> float | None:
        now = self._reading()
        last, self.last = self.last, now
        if now is None or last is None or now[2] <= last[2]:
            return None
        busy, own, wall = (new - old for new, old in zip(now, last, strict=True))
        return max(0.0, busy - own) / wall


@dataclass
class ThreadChange:
    """One decision of the tuner, for the run's history and the user's console."""

    threads: int
    step_seconds: dict[int, float]  # the median step time each count measured in the trial
    others: float | None  # cores other programs kept busy when the trial began


def start_threads(requested: int | None, apply: Callable[[int], None],
                  tune: bool = True) -> ThreadTuner | None:
    """Set the training thread count (`--threads`, else the available cores) through `apply`
    (torch.set_num_threads); the tuner that follows the machine's load, unless the count was given
    or `tune` is False."""
    threads = training_threads(requested)
    apply(threads)
    return ThreadTuner(threads, apply) if tune and requested is None and threads > 1 else None


def describe_change(change: ThreadChange) -> str:
    """One line for the console: what the trial measured and the count kept."""
    tried = ", ".join(f"{count} thread{'s' * (count > 1)} {1000 * median:.0f} ms"
                      for count, median in sorted(change.step_seconds.items(), reverse=True))
    busy = "" if change.others is None else f"other programs keep {change.others:.1f} cores busy; "
    return f"{busy}a step took {tried}: training on {change.threads}"


class ThreadTuner:
    """Keeps training on the thread count that is fastest while other programs come and go.

    A fixed count chosen when training starts cannot be right both on a quiet machine and beside
    other work. Beside another training run on 2 cores, two threads each are catastrophic: oneDNN's
    bfloat16 weight-gradient convolutions split the batch between the threads and meet at a barrier
    that spins without yielding, so a thread whose partner lost its core spins its whole time slice
    away (60 steps of the default recipe: 2.2 s alone, 57 s each for two runs side by side with two
    threads, 3.2 s each with one; see benchmarks/busy_machine.py). Beside one busy process, one thread
    on the free core also beats two that share it. Beside two, two threads get more of the machine.

    So the tuner measures instead of guessing. Steps are timed in windows (at least `min_steps` steps
    and `window_seconds`); a window's median is compared with the best median of the current count, and
    the CPU other programs used in the window with what they used when the count was chosen. When the
    steps got `slower` times slower in two windows running, or other programs' use changed by at least
    half a core, a trial times a window at each other count (one much slower step ends a count's window
    early), and moves to the fastest if it is at least `margin` faster than the count in use (on an idle
    2-core EPYC the default recipe's windows read 45 ms on two threads and 44 ms on one: noise, which
    must not decide). When only the steps got slower, with no change in other programs' load, the count
    in use is timed afresh after the others instead of being judged by the windows that set the trial
    off: those may be a stall that has passed (the machine paused for a second), against which any count
    looks faster. A run left on fewer threads than it may use while other programs leave the machine
    alone (a stall during a trial's window) tries the counts again after each pause. On a quiet machine
    on every core none of this happens and the tuner costs one /proc/stat read per window. Trials are at
    least `pause` seconds apart, and twice as far apart each time a trial keeps the count it had, so a
    steady busy machine is not tried over and over; but a change in other programs' load is tried at
    most `moved_pause` seconds after the last trial however long the pause has grown, or a machine that
    was busy for a long while (its pause doubled trial after trial) would keep training on one thread
    for many minutes after it fell quiet. (Seconds here are seconds of training steps.)
    """

    def __init__(self, most: int, apply: Callable[[int], None],
                 others: Callable[[], float | None] | None = None, *, min_steps: int = 8,
                 window_seconds: float = 0.5, slower: float = 1.5, pause: float = 10.0,
                 moved_pause: float = 60.0, margin: float = 0.1) -> None:
        self.apply, self.others = apply, others if others is not None else OthersMeter()
        self.min_steps, self.window_seconds, self.slower = min_steps, window_seconds, slower
        self.counts = sorted({max(1, most >> shift) for shift in range(most.bit_length())}, reverse=True)
        self.current = self.counts[0]
        self.times: list[float] = []
        self.clock = 0.0  # seconds of steps seen: trials are spaced in training time
        self.best: float | None = None  # the current count's best window median since it was chosen
        self.others_then: float | None = 0.0  # others' use when the count was chosen (0: assumed)
        self.trial: dict[int, float] | None = None  # count -> median step time, while trying counts
        self.trial_others: float | None = None
        self.before_trial = self.current
        self.waiting: list[int] = []
        self.last_trial, self.pause, self.base_pause = -math.inf, pause, pause
        self.moved_pause = max(pause, moved_pause)
        self.skip = 1  # the first step builds oneDNN's kernels
        self.slow_windows = 0
        self.margin = margin
        self.changes: list[ThreadChange] = []

    def step_done(self, seconds: float) -> ThreadChange | None:
        """Record one training step's wall time; may change the thread count for the next step.

        Returns the decision when a trial ended at this step (for the caller to report), else None.
        """
        self.clock += seconds
        if self.skip:  # the first step after a change pays for the new threads' start
            self.skip -= 1
            return None
        self.times.append(seconds)
        decisions = len(self.changes)
        if self.trial and seconds > 10 * min(self.trial.values()):
            self._measured(statistics.median(self.times), None)  # hopeless: no need for the window
        else:
            taken = sum(self.times)
            full = len(self.times) >= self.min_steps and taken >= self.window_seconds
            if not full and not (len(self.times) >= 2 and taken >= 4 * self.window_seconds):
                return None  # slow steps: a few of them are enough
            self._measured(statistics.median(self.times), self.others())
        return self.changes[-1] if len(self.changes) > decisions else None

    def _switch(self, threads: int) -> None:
        if threads != self.current:
            self.apply(threads)
            self.current, self.skip = threads, 1

    def _measured(self, median: float, others: float | None) -> None:
        self.times = []
        if self.trial is not None:
            self.trial[self.current] = median
            if self.waiting:
                self._switch(self.waiting.pop(0))
                return
            trial = self.trial
            chosen = min(trial, key=lambda count: (trial[count], count))  # a tie: leave cores free
            if trial[chosen] > (1 - self.margin) * trial[self.before_trial]:
                chosen = self.before_trial  # not clearly faster: window noise must not move it
            self.changes.append(ThreadChange(chosen, dict(trial), self.trial_others))
            self.pause = self.pause * 2 if chosen == self.before_trial else self.base_pause
            self.last_trial = self.clock
            self.trial, self.best, self.others_then = None, trial[chosen], None
            self._switch(chosen)
            return
        if self.others_then is None:
            self.others_then = others
        # Slower in two windows running: one slow window is a passing hiccup, not a busier machine.
        self.slow_windows = self.slow_windows + 1 if (
            self.best is not None and median > self.slower * self.best) else 0
        slowed = self.slow_windows >= 2
        moved = (others is not None and self.others_then is not None
                 and abs(others - self.others_then) >= 0.5)
        self.best = median if self.best is None else min(self.best, median)
        held_back = others is not None and others < 0.5 and self.current < self.counts[0]
        wait = min(self.pause, self.moved_pause) if moved else self.pause
        if (slowed or moved or held_back) and self.clock >= self.last_trial + wait and len(self.counts) > 1:
            # Slower steps with no change in others' load may be a stall that has passed: the count
            # in use is timed again after the others. A measured change in load is what the count
            # in use now meets: its window stands (timing it again beside another training would
            # cost a collapsed step or two).
            again = slowed and not moved
            self.trial = {} if again else {self.current: median}
            self.trial_others, self.before_trial = others, self.current
            self.waiting = [count for count in self.counts if count != self.current]
            self.waiting += [self.current] if again else []
            self._switch(self.waiting.pop(0))
