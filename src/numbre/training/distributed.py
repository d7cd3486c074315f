"""Training across processes and machines with torch.distributed (DistributedDataParallel).

`numbre train --nproc N` starts N processes on this machine through torch's own elastic launcher
(the engine behind `torchrun`); `torchrun --nnodes M --nproc-per-node N --rdzv-endpoint HOST:PORT
-m numbre train ...` starts them on several machines. Either way every process is a *rank* that
finds the others from the variables the launcher sets (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and joins one process group: gloo on CPU, NCCL for
CUDA tensors.

How the work is shared, and why:

- `--batch-size` stays the *global* batch: step s of an epoch takes the same images from the same
  seeded order as one process would, and rank r trains on every N-th of them (`[r::N]`). DDP
  averages the gradients, so the recipe's learning rate and schedule keep their meaning and the
  number of steps per epoch does not depend on N.
- Random draws (augmentation, negatives, dropout, the synthetic writers' digits) differ per rank
  but are fixed by (seed, epoch, step, rank): torch's generator is re-seeded at every step. Two
  runs with the same seed and N give the same weights, and a run resumed mid-epoch draws what it
  would have drawn.
- Batch norm keeps per-rank statistics (DDP's default; running statistics are rank 0's, sent to
  the others each step). SyncBatchNorm does not run on CPU tensors in torch, and on 2 processes
  the per-rank statistics gave the one-process accuracy (docs/scale-out.md has the measurement);
  keep at least ~32 images per rank per step (`--batch-size` >= 32 N) for that to hold.
- Only rank 0 writes: the run folder, checkpoints, history and the model file. A resumed run is
  read by rank 0 alone and its state sent to the others, so the run folder need only exist on
  rank 0's machine.

Stopping: Ctrl-C (SIGINT) or SIGTERM makes rank 0 write a checkpoint of where it is, as a
one-process run does, and every rank stops. A rank that dies (SIGKILL, a lost machine) makes the
others fail their next exchange (at once when its sockets close, else after `TIMEOUT`); they stop
without writing, so the last good checkpoint stays, and `--resume` continues from it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import datetime
import logging
import os
import re
import signal
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from numbre.data import Dataset
from numbre.errors import NumbreError, TrainingError
from numbre.training.config import TrainConfig
from numbre.training.loop import LAST, Trainer, TrainResult
from numbre.training.threads import available_cores

# The variables torchrun (and `numbre train --nproc`) sets for each process.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# How long a rank waits for the others at an exchange before it gives up (a machine that vanished
# without closing its connections). It must cover rank 0 writing a checkpoint and the model file
# while the others wait; NUMBRE_DIST_TIMEOUT (seconds) changes it.
TIMEOUT = datetime.timedelta(seconds=300)
PR_SET_PDEATHSIG = 1
# Set by `launch_local` for its ranks: the launcher, which sees how each rank ended, reports a lost
# rank itself, so rank 0 does not say it a second time.
LAUNCHER_REPORTS = "NUMBRE_LAUNCHER_REPORTS"


class StoppedElsewhere(Exception):
    """This rank stopped because another one did (it died, or was interrupted): rank 0 or the
    launcher says why, so this rank says nothing."""


def launched(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is one of several that a launcher (torchrun, `--nproc`) started."""
    environ = os.environ if environ is None else environ
    try:
        return int(environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise TrainingError(f"WORLD_SIZE={environ['WORLD_SIZE']!r} is not a number of processes; "
                            "start distributed training with torchrun or numbre train --nproc") from None


def timeout(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    environ = os.environ if environ is None else environ
    value = environ.get("NUMBRE_DIST_TIMEOUT")
    if value is None:
        return TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise TrainingError(f"NUMBRE_DIST_TIMEOUT={value!r}: give the seconds a rank waits for the "
                            "others, e.g. 300")
    return datetime.timedelta(seconds=seconds)


def threads_per_process(requested: int | None, local_processes: int, cores: int | None = None) -> int:
    """`--threads` when given, else this machine's available cores split between its processes:
    N processes of all the cores each would run N times as many threads as there are cores."""
    if requested is not None:
        return requested
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, local_processes))


@dataclass
class Group:
    """This process's place in the run, and the exchanges outside DDP that the run needs."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str

    def share(self, value: Any = None) -> Any:
        """Rank 0's `value` (any picklable object), on every rank."""
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the others may be gone already
            dist.destroy_process_group()


def _ignore_stops() -> None:
    """A rank that is stopping already ignores the launcher's SIGTERM (sent to every rank when one
    fails), which would otherwise break into its last writes or its exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_stopped_by_signal = False  # set by _stop_once: this rank is stopping because it was told to


def _stop_once(signum: int, frame: Any) -> None:
    """SIGINT or SIGTERM: stop as Ctrl-C stops a one-process run (rank 0 writes where it is), and
    ignore further ones, so that the launcher's copy of a signal cannot cut that write short."""
    global _stopped_by_signal
    _ignore_stops()
    _stopped_by_signal = True
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """Linux: end this rank when its launcher dies (a launcher killed with SIGKILL cannot stop its
    workers, which run in their own session), instead of training on with nobody waiting."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the launcher was gone before the request was made
            os.kill(os.getpid(), signal.SIGTERM)


def join(device: str, environ: Mapping[str, str] | None = None) -> Group:
    """Join the process group the launcher described in the environment (call once per process)."""
    environ = os.environ if environ is None else environ
    missing = [name for name in LAUNCH_VARIABLES if not environ.get(name)]
    if missing:
        raise TrainingError(f"WORLD_SIZE is set but {', '.join(missing)} not: start distributed training "
                            "with torchrun (which sets them all) or with numbre train --nproc N")
    try:
        rank, world_size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local_rank = int(environ["LOCAL_RANK"])
        local_world_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
    except ValueError:
        raise TrainingError("RANK, WORLD_SIZE and LOCAL_RANK must be numbers; start distributed "
                            "training with torchrun or numbre train --nproc N") from None
    if device.startswith("mps"):
        raise TrainingError("--device mps cannot train across processes (no torch.distributed backend "
                            "for it); use --device cpu, or one process")
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if cuda:
        torch.cuda.set_device(local_rank)  # before any CUDA tensor: each rank has its own GPU
    # gloo carries the run's own messages (CPU objects) and, on CPU, the gradients; NCCL the CUDA ones.
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    signal.signal(signal.SIGINT, _stop_once)
    signal.signal(signal.SIGTERM, _stop_once)
    atexit.register(_ignore_stops)  # runs before the exit handlers registered earlier (torch's)
    _die_with_parent()
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout(environ))
    except (RuntimeError, ValueError) as error:
        raise TrainingError(f"rank {rank} could not join the others at {environ['MASTER_ADDR']}:"
                            f"{environ['MASTER_PORT']}: {_first_line(error)}") from None
    return Group(rank, world_size, local_rank, local_world_size, backend)


def _reason(error: BaseException) -> str:
    """What went wrong in an exchange, without gloo's source location and advice."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(error))
    return text.split(". This is typically")[0]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


class DistributedTrainer(Trainer):
    """A Trainer that is one rank of several: it trains on its share of each step's batch through
    DistributedDataParallel, and only rank 0 writes."""

    def __init__(self, config: TrainConfig, dataset: Dataset, out_dir: Path | None, group: Group,
                 command: str = "", progress: bool = True) -> None:
        self.group = group
        check_share(config, group.world_size)
        writer = group.rank == 0
        super().__init__(config, dataset, out_dir if writer else None, command, progress and writer)
        self.run_dir = out_dir  # rank 0's run folder, for messages
        torch.set_num_threads(threads_per_process(config.threads, group.local_world_size))
        checksums = group.gather(dataset.checksum)
        if any(checksum != checksums[0] for checksum in checksums):
            other = next(rank for rank, checksum in enumerate(checksums) if checksum != checksums[0])
            raise TrainingError(f"rank {other} loaded other data than rank 0 (checksums differ); give every "
                                "machine the same --data")
        # A last batch smaller than the processes would leave one with nothing: it is skipped.
        if not config.drop_last and 0 < len(self.x) % config.batch_size < group.world_size \
                and self.steps_per_epoch > 1:
            self.steps_per_epoch -= 1
            self.total_steps = self.steps_per_epoch * config.epochs
        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        self.wrapped = DistributedDataParallel(self.model, device_ids=ids)
        self.step_buffers: list[torch.Tensor] = []  # batch-norm statistics as the current step began

    # --- a rank's share of each step ----------------------------------------------------
    def _tunes_threads(self) -> bool:
        """No: the ranks meet at every step's all-reduce, so one rank's trial would time the
        others' waiting; the count is the machine's cores split between its ranks."""
        return False

    def _share(self, index: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        """Every world_size-th image of the step's batch; seeds this rank's draws for the step."""
        rank, world = self.group.rank, self.group.world_size
        key = ((self.config.seed * 1_000_003 + epoch) * 1_000_033 + step) * 1_009 + rank
        torch.manual_seed(key % (2 ** 63))
        self.step_buffers = [buffer.detach().clone() for buffer in self.model.buffers()]
        return index[rank::world]

    def save(self, name: str = LAST) -> None:
        """A checkpoint of where the run is; one written while a step was unfinished (Ctrl-C) holds
        the batch-norm statistics from before that step's forward pass, as it holds its weights, so
        that the step is not counted twice when the run resumes."""
        if self.step_rng is not None and len(self.step_buffers) == len(list(self.model.buffers())):
            with torch.no_grad():
                for buffer, before in zip(self.model.buffers(), self.step_buffers, strict=True):
                    buffer.copy_(before)
        super().save(name)

    def _mix_synthetic(self, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each rank replaces the synthetic share of its own part, with digits of its own pick."""
        return super()._mix_synthetic(images, labels, epoch, step * self.group.world_size + self.group.rank)

    def _mix_extra(self, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                   step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each rank mixes corrections into its own part, with a pick of its own."""
        return super()._mix_extra(images, labels, epoch, step * self.group.world_size + self.group.rank)

    # --- epochs ------------------------------------------------------------------------------
    def _end_epoch(self, epoch: int, seconds: float) -> bool:
        """History from every rank's images; one set of batch-norm statistics (rank 0's) for
        validation and the files; rank 0's early-stopping decision for all."""
        position = self.position
        sums = torch.tensor([position["loss_sum"], position["correct"], position["seen"]],
                            dtype=torch.float64)
        dist.all_reduce(sums)
        position["loss_sum"], position["correct"], position["seen"] = (
            sums[0].item(), int(sums[1].item()), int(sums[2].item()))
        for buffer in self.model.buffers():
            dist.broadcast(buffer.data, src=0)
        stop = super()._end_epoch(epoch, seconds)
        return bool(self.group.share(stop))

    def resume(self) -> None:
        """Rank 0 reads and checks the checkpoint; every rank continues from its state."""
        payload: dict[str, Any] | None = None
        if self.group.rank == 0:
            try:
                super().resume()
            except NumbreError as error:
                self.group.share({"error": str(error)})
                raise
            payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                       "position": self.position}
        payload = self.group.share(payload)
        if "error" in payload:
            raise StoppedElsewhere(payload["error"])
        if self.group.rank != 0:
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            # Rank 0's running sums of an interrupted epoch are its own: the others start at zero.
            self.position = {**payload["position"], "loss_sum": 0.0, "correct": 0, "seen": 0}

    def run(self, resume: bool = False) -> TrainResult:
        """Train as Trainer.run; a stop caused by another rank is StoppedElsewhere (rank 0 reports
        it when no launcher does)."""
        try:
            return self._run(resume)
        except BaseException:
            _ignore_stops()  # stopping now: a SIGTERM from the launcher must not break into it
            raise

    def _run(self, resume: bool) -> TrainResult:
        try:
            return super().run(resume=resume)
        except TrainingError:
            if self.group.rank != 0:
                raise StoppedElsewhere() from None  # an interrupt: rank 0 says where its checkpoint is
            if _stopped_by_signal and os.environ.get(LAUNCHER_REPORTS):
                # The launcher sent the signal (a Ctrl-C, or another rank died) and says why once
                # every rank has stopped; rank 0 has written its checkpoint.
                raise StoppedElsewhere() from None
            raise
        except RuntimeError as error:  # gloo and NCCL report a lost or failed rank this way
            if self.group.rank != 0 or os.environ.get(LAUNCHER_REPORTS):
                raise StoppedElsewhere() from None
            raise TrainingError(f"another training process stopped, so all did ({_reason(error)}). "
                                f"{self._kept()}; continue with the same command plus --resume") from None

    def _kept(self) -> str:
        if self.run_dir is not None and (self.run_dir / LAST).is_file():
            return f"The last good checkpoint, {self.run_dir / LAST}, is kept"
        return "No checkpoint was written before it"


def follow(group: Group, data: str | None) -> int:
    """A rank other than 0: take the run's settings from rank 0, train, write nothing.

    Returns the exit status: 0, 1 when it stopped because another rank did (rank 0 or the launcher
    says why), 2 after printing an error of its own.
    """
    from numbre.data import load_dataset

    try:
        plan = group.share()  # rank 0 could not start (it says why) if this fails
        if plan.get("done"):  # the run had finished already: rank 0 says so
            return 0
        dataset = load_dataset(data, quiet=True)
        trainer = DistributedTrainer(TrainConfig.from_dict(plan["config"]), dataset, None, group,
                                     command=plan["command"], progress=False)
        trainer.run(resume=plan["resume"])
    except (StoppedElsewhere, KeyboardInterrupt, RuntimeError):
        return 1
    except NumbreError as error:
        print(f"numbre: error: rank {group.rank}: {error}", file=sys.stderr)
        return 2
    finally:
        group.close()
    return 0


def check_share(config: TrainConfig, world_size: int) -> None:
    """Refuse a batch too small to give every process at least one image."""
    if config.batch_size < world_size:
        raise TrainingError(f"--batch-size {config.batch_size} is the batch of all {world_size} processes "
                            f"together and must give each at least one image; raise it to {world_size} "
                            "or more")


def launch_local(nproc: int, config: TrainConfig, args: list[str], out: Path) -> None:
    """Run `numbre train ARGS` as `nproc` ranks on this machine with torch's elastic launcher (what
    `torchrun --standalone` runs); raise TrainingError when they did not all finish.

    Rank 0 prints as a one-process run does; when it stopped with an error of its own it has said
    so, and this exits with status 2 without a second message.
    """
    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_share(config, nproc)
    # The launcher logs each failure as it sees it; the one line below says what happened instead.
    for name in [*logging.root.manager.loggerDict, "torch.distributed.elastic"]:
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ[LAUNCHER_REPORTS] = "1"
    logs = tempfile.TemporaryDirectory(prefix="numbre-ranks-")  # the launcher's own files, removed after
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"numbre-{uuid.uuid4()}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
                          monitor_interval=0.1, start_method="spawn",
                          logs_specs=DefaultLogsSpecs(log_dir=logs.name))
    try:
        with logs:
            elastic_launch(launch, sys.executable)("-m", "numbre", "train", *args)
    except ChildFailedError as error:
        # Exit status 2: a rank's own error, which it printed; 1: it stopped because another did.
        # A signal other than the launcher's SIGTERM: it was killed, and that is the cause.
        failures = sorted(error.failures.items())
        killed = [(rank, failure) for rank, failure in failures
                  if failure.exitcode < 0 and -failure.exitcode not in (signal.SIGTERM, signal.SIGINT)]
        if not killed and any(failure.exitcode == 2 for _, failure in failures):
            raise SystemExit(2) from None
        rank, failure = (killed or failures)[0]
        how = (f"was killed by {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        kept = (f"the last good checkpoint, {out / LAST}, is kept" if (out / LAST).is_file()
                else "no checkpoint was written before it")
        raise TrainingError(f"training process {rank} of {nproc} {how}, so all stopped; {kept}. Continue "
                            "with the same command plus --resume") from None
    except SignalException as error:  # Ctrl-C or SIGTERM: passed to the ranks, which have stopped
        if (out / LAST).is_file():
            raise TrainingError(f"interrupted; checkpoint written to {out / LAST}. Continue with the same "
                                "command plus --resume") from None
        raise TrainingError(f"interrupted ({signal.Signals(error.sigval).name}) before the first "
                            "checkpoint; start again") from None
    except RendezvousError as error:
        raise TrainingError(f"the {nproc} training processes could not meet: {_first_line(error)}") from None
