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
from collections.abc import MutableMapping
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

