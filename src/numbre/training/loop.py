"""The training loop: data in memory as tensors, random batches by index, atomic checkpoints.

The whole dataset lives in memory as one tensor, so a batch is an index into
it and there is no per-sample Python work. Each epoch's order comes from a
generator seeded by (seed, epoch), and augmentation and dropout draw from
torch's global generator whose state every checkpoint saves: a run that is
interrupted and resumed ends with the same weights as one that was not.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from numbre import __version__
from numbre.atomic import atomic_write, prepare_folder
from numbre.data import Dataset
from numbre.data.known import DIGITS
from numbre.errors import TrainingError
from numbre.model.file import INPUT_SPEC, ModelFile, save_model_file
from numbre.model.metrics import Metrics, compute_metrics
from numbre.model.network import first_non_finite, predict_logits, state_to_numpy, to_tensors
from numbre.model.rejection import META_KEY, NOT_A_DIGIT, Rejector, fit_rejector
from numbre.model.zoo import count_macs, count_parameters, create_model
from numbre.training.augment import random_affine, random_drawn, random_shift
from numbre.training.checkpoint import (
    checkpoint_config,
    load_checkpoint,
    read_checkpoint,
    remove_partial_writes,
    save_checkpoint,
)
from numbre.training.config import TrainConfig
from numbre.training.device import bf16_is_fast, pick_device
from numbre.training.negatives import add_negatives
from numbre.training.threads import describe_change, start_threads

LAST = "last.ckpt.safetensors"
BEST = "best.safetensors"
MODEL = "model.safetensors"
# What a run writes, and `numbre export`'s default export of its model: --overwrite removes them all,
# so that nothing of the old run (an export of its weights least of all) outlives it.
RUN_FILES = (LAST, BEST, MODEL, "config.json", "history.json", "history.csv", "metrics.json", "model.onnx",
             "confusion.png")
METRICS = "metrics.json"  # the last output a run writes: when it is there, the run has finished
AUGMENTATIONS = {"shift": random_shift, "affine": random_affine, "drawn": random_drawn}
# Most synthesised digits a run makes (once, before training): batches draw from this pool.
SYNTHETIC_POOL = 60_000


def check_resumable(checkpoint: ModelFile, config: TrainConfig) -> None:
    """Refuse to continue `checkpoint` (from `read_checkpoint`) with settings other than its own,
    naming them."""
    path = checkpoint.path
    saved = TrainConfig.from_dict(checkpoint_config(checkpoint))
    if saved != config:
        asked = config.to_dict()
        changed = [f"{key} {value!r}, not {asked.get(key)!r}"
                   for key, value in saved.to_dict().items() if asked.get(key) != value]
        raise TrainingError(f"--resume: {path} was made with different settings "
                            f"({'; '.join(changed)}); resume with the same options, or with none: "
                            "--resume alone continues with the run's own settings")


def patience_spent(position: dict[str, Any], config: TrainConfig) -> bool:
    """Whether early stopping ended the run at this position (`patience` epochs without progress)."""
    return config.patience is not None and position.get("bad_epochs", 0) >= config.patience


def finished_epochs(checkpoint: ModelFile, out_dir: Path) -> int | None:
    """The epochs a run in `out_dir` trained when it has finished (every epoch done, or stopped early,
    and every output written), so that --resume has nothing left to do; None when it has not."""
    position = checkpoint.meta.get("position")
    if not isinstance(position, dict):
        return None
    config = TrainConfig.from_dict(checkpoint_config(checkpoint))
    epoch = position.get("epoch", 0)
    done = position.get("step", 0) == 0 and (epoch >= config.epochs or patience_spent(position, config))
    if done and (out_dir / MODEL).is_file() and (out_dir / METRICS).is_file():
        return epoch
    return None


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based) of `total_steps`."""
    if config.schedule == "constant":
        return config.lr
    # onecycle: linear warm-up from lr * warmup_start to lr, then linear decay to zero.
    warmup = max(1, int(total_steps * config.warmup_fraction))
    if step < warmup:
        start = config.warmup_start
        return config.lr * (start + (1 - start) * step / warmup)
    return config.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))


class KerasAdam(torch.optim.Adam):
    """Adam as Keras updates: `m * alpha / (sqrt(v) + eps)`, alpha = lr sqrt(1-b2^t) / (1-b1^t).

    torch adds eps to the bias-corrected sqrt(v / (1-b2^t)) instead; the two agree exactly when
    torch's eps at step t is eps / sqrt(1-b2^t), which `step` sets, so the fused kernel still
    does the work. The difference is largest early on, for weights with tiny gradients.
    """

    def __init__(self, params: Any, eps: float, **kwargs: Any) -> None:
        super().__init__(params, eps=eps, **kwargs)
        for group in self.param_groups:
            group["keras_eps"] = eps

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            state = self.state.get(group["params"][0], {}) if group["params"] else {}
            done = int(state["step"]) if "step" in state else 0
            group["eps"] = group["keras_eps"] / math.sqrt(1 - group["betas"][1] ** (done + 1))
        return super().step(closure)


def make_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """Weight decay applies to conv and linear weights only, never to biases or batch-norm."""
    weights = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": weights, "weight_decay": config.weight_decay},
              {"params": others, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    if config.optimizer == "adam" and config.keras_adam:
        kind = KerasAdam
    # The fused kernel updates every parameter in one call: about 30% faster for the MLPs.
    fused = device.type in ("cpu", "cuda")
    return kind(groups, lr=config.lr, eps=config.adam_eps, fused=fused, foreach=None if fused else True)


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[dict[str, float]]
    test: Metrics
    train_seconds: float  # data in memory -> final test evaluation done
    out_dir: Path | None
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """One training run; `run()` trains, evaluates on the test set and writes the outputs."""

    def __init__(self, config: TrainConfig, dataset: Dataset, out_dir: Path | None,
                 command: str = "", progress: bool = True) -> None:
        config.validate()
        self.config, self.dataset, self.out_dir = config, dataset, out_dir
        self.command, self.progress = command, progress
        # --threads, else the cores this process may use (affinity, cgroup quota), not the machine's.
        # Without --threads the count then follows other programs' load, by measured step times.
        self.tuner = start_threads(config.threads, torch.set_num_threads, self._tunes_threads())
        self.device = pick_device(config.device)
        x_train, y_train = dataset.x_train, dataset.y_train
        if config.max_train:
            x_train, y_train = x_train[: config.max_train], y_train[: config.max_train]
        # Like Keras' validation_split: the last share of the training data, not shuffled.
        n_val = int(len(x_train) * config.val_split)
        n_fit = len(x_train) - n_val
        if n_fit < 1:
            raise TrainingError("no training images left after the validation split")
        self.x, self.y = to_tensors(x_train[:n_fit], y_train[:n_fit], self.device)
        self.x_val, self.y_val = to_tensors(x_train[n_fit:], y_train[n_fit:], self.device)
        self.x_test, self.y_test = to_tensors(dataset.x_test, dataset.y_test, self.device)
        self.synthetic_x, self.synthetic_y = self._synthetic_pool(dataset, n_fit)
        self.synthetic_seen = 0  # synthesised images put into batches by this process (tests read it)
        self.extra_x, self.extra_y = self._extra_pool(dataset)
        self.extra_seen = 0  # correction images put into batches by this process (tests read it)
        # Training with negatives adds one class after the dataset's: "not a digit".
        self.class_names = (*dataset.class_names, *((NOT_A_DIGIT,) if config.negatives else ()))
        torch.manual_seed(config.seed)
        model = create_model(config.model, len(self.class_names)).to(self.device)
        self.model = model.to(memory_format=torch.channels_last)
        # What training steps call: the model, or (training.distributed) its DDP wrapper.
        self.wrapped: nn.Module = self.model
        if config.init:
            self._start_from(Path(config.init))
        self.optimizer = make_optimizer(config, self.model, self.device)
        self.bf16 = config.bf16 and bf16_is_fast(self.device)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.step_rng: torch.Tensor | None = None  # RNG state when the unfinished step began
        batches = len(self.x) / config.batch_size
        self.steps_per_epoch = max(1, int(batches)) if config.drop_last else math.ceil(batches)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.position: dict[str, Any] = {
            "epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0,
            "history": [], "best_val_loss": None, "best_epoch": None, "bad_epochs": 0,
            "config": config.to_dict(), "class_names": list(self.class_names),
            "data_checksum": dataset.checksum,
        }

    # --- checkpoints ---------------------------------------------------------------------
    def save(self, name: str = LAST) -> None:
        if self.out_dir is not None:
            save_checkpoint(self.out_dir / name, self.model, self.optimizer, self.position,
                            self.step_rng)

    def _kept(self) -> str:
        """What a stopped run leaves to go back to, for its error message."""
        if self.out_dir is not None and (self.out_dir / LAST).is_file():
            return f"The last good checkpoint, {self.out_dir / LAST}, is kept"
        return "No checkpoint was written before it"

    def resume(self) -> None:
        """Continue from out_dir's last checkpoint, refusing one from another config or data."""
        assert self.out_dir is not None
        path = self.out_dir / LAST
        if not path.exists():
            raise TrainingError(f"--resume: no checkpoint {path}; start without --resume")
        checkpoint = read_checkpoint(path)
        check_resumable(checkpoint, self.config)  # before the checkpoint's weights meet the model
        position = load_checkpoint(checkpoint, self.model, self.optimizer)
        if position["data_checksum"] != self.dataset.checksum:
            raise TrainingError(f"--resume: {path} was trained on other data")
        self.position = position

    # --- the loop ------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.x), generator=generator).to(self.device)

    def _train_epoch(self, epoch: int) -> None:
        config, position = self.config, self.position
        order = self._epoch_order(epoch)
        augment = config.augment and not (config.clean_last_epoch and epoch == config.epochs - 1)
        self.model.train()
        bar = tqdm(total=self.steps_per_epoch, initial=position["step"], leave=False,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not self.progress,
                   file=sys.stderr, dynamic_ncols=True)
        # Sums stay on the device; reading them (a sync) happens only for the progress bar.
        loss_sum = torch.tensor(position["loss_sum"], device=self.device)
        correct = torch.tensor(position["correct"], device=self.device)
        try:
            while position["step"] < self.steps_per_epoch:
                step, step_started = position["step"], time.perf_counter()
                self.step_rng = torch.get_rng_state()
                index = self._share(order[step * config.batch_size:(step + 1) * config.batch_size],
                                    epoch, step)
                images, labels = self.x[index], self.y[index]
                if config.synthetic:
                    images, labels = self._mix_synthetic(images, labels, epoch, step)
                if config.extra_share:
                    images, labels = self._mix_extra(images, labels, epoch, step)
                if config.negatives:
                    images, labels = add_negatives(images, labels, config.negatives,
                                                   label=len(self.class_names) - 1)
                if augment:
                    images = AUGMENTATIONS[config.augment_kind](images)
                lr = learning_rate(config, epoch * self.steps_per_epoch + step, self.total_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.wrapped(images)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                position["step"], self.step_rng = step + 1, None  # the step is done: commit it
                loss_sum += loss.detach() * len(labels)
                correct += (logits.detach().argmax(1) == labels).sum()
                position["seen"] += len(labels)
                if self.tuner is not None:
                    self._tune_threads(time.perf_counter() - step_started)
                if step % 25 == 0 or position["step"] == self.steps_per_epoch:
                    bar.update(position["step"] - bar.n)
                    running = loss_sum.item() / position["seen"]
                    if not math.isfinite(running):
                        raise TrainingError(f"the loss became {running} at epoch {epoch + 1}, "
                                            f"step {step + 1}; lower --lr. {self._kept()}")
                    bar.set_postfix(loss=f"{running:.4f}", acc=f"{correct.item() / position['seen']:.4f}")
        finally:
            position["loss_sum"], position["correct"] = loss_sum.item(), int(correct.item())
            bar.close()

    def _tunes_threads(self) -> bool:
        """Whether this trainer may change its thread count while it trains (one process: yes)."""
        return True

    def _tune_threads(self, seconds: float) -> None:
        """Tell the tuner how long a step took; say so when it changes the thread count."""
        assert self.tuner is not None
        if (change := self.tuner.step_done(seconds)) is not None and self.progress:
            tqdm.write(describe_change(change), file=sys.stderr)

    def _share(self, index: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        """The part of a step's batch this process trains on: all of it (one process per run;
        training.distributed gives each of several processes its share)."""
        return index

    def _synthetic_pool(self, dataset: Dataset, n_fit: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The synthesised digits (training writers only) batches draw from: as many as the share
        would use in one epoch, at most SYNTHETIC_POOL, the same for every run with this seed."""
        share = self.config.synthetic
        if not share:
            return torch.zeros((0, 1, 28, 28), device=self.device), torch.zeros(0, dtype=torch.int64)
        if tuple(dataset.class_names) != DIGITS:
            raise TrainingError(f"synthetic writers write digits; {dataset.name} has other classes: "
                                "train on a digits dataset or set synthetic to 0")
        from numbre.data.synthetic import synth_digits

        count = min(SYNTHETIC_POOL, max(10, math.ceil(share * n_fit)))
        images, labels, _ = synth_digits(count, self.config.seed, split="train", form="mnist",
                                         workers=self.config.threads or 2,
                                         variation=self.config.synthetic_variation)
        return to_tensors(images, labels, self.device)

    def _mix_synthetic(self, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                       step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the first `synthetic` share of a batch (already in random order) by pool digits,
        chosen by a generator seeded by (seed, epoch, step), so that a resumed run picks the same."""
        count = round(self.config.synthetic * len(labels))
        if count == 0:
            return images, labels
        generator = torch.Generator().manual_seed((self.config.seed * 1_000_003 + epoch) * 1_000_033 + step)
        pick = torch.randint(len(self.synthetic_y), (count,), generator=generator).to(self.device)
        images, labels = images.clone(), labels.clone()
        images[:count], labels[:count] = self.synthetic_x[pick], self.synthetic_y[pick]
        self.synthetic_seen += count
        return images, labels

    def _start_from(self, path: Path) -> None:
        """Fine-tuning: the weights of the model file at `path`, which must be this run's architecture
        with this run's classes (a model trained with negatives has an 11th, "not a digit")."""
        from numbre.model.file import load_model_file
        from numbre.model.network import build_model

        model_file = load_model_file(path)
        if model_file.architecture != self.config.model:
            raise TrainingError(f"--init {path} is a {model_file.architecture!r} model, not "
                                f"{self.config.model!r}; give --model {model_file.architecture} or leave "
                                "--model out")
        if tuple(model_file.class_names) != tuple(self.class_names):
            raise TrainingError(f"--init {path} answers {len(model_file.class_names)} classes "
                                f"({', '.join(model_file.class_names)}), this run {len(self.class_names)} "
                                f"({', '.join(self.class_names)}); train on data with its classes, with its "
                                "recipe's negatives setting")
        self.model.load_state_dict(build_model(model_file).state_dict())

    def _extra_pool(self, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The correction images of `config.extra` (28x28, as the network saw them) that batches mix in."""
        if not self.config.extra:
            return torch.zeros((0, 1, 28, 28), device=self.device), torch.zeros(0, dtype=torch.int64)
        if tuple(dataset.class_names[:10]) != DIGITS:
            raise TrainingError(f"corrections are digits; {dataset.name} has other classes: "
                                "train on a digits dataset, or leave --extra out")
        import numpy as np

        from numbre.data.corrections import load_corrections

        parts = [load_corrections(Path(folder))[:2] for folder in self.config.extra]
        images = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        if not len(labels):
            raise TrainingError(f"--extra {' '.join(self.config.extra)}: no corrections in it yet; correct "
                                "some drawings first (numbre serve --corrections, numbre draw --corrections)")
        return to_tensors(images, labels, self.device)

    def _mix_extra(self, images: torch.Tensor, labels: torch.Tensor, epoch: int,
                   step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the last `extra_share` of a batch by correction images, drawn again and again
        (oversampled) by a generator seeded by (seed, epoch, step), so that a resumed run picks the same.
        The first part of the batch is where synthesised digits go, so the two never overlap."""
        count = max(1, round(self.config.extra_share * len(labels)))
        seed = (self.config.seed * 1_000_003 + epoch) * 1_000_037 + step + 7  # not the synthetic mix's
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randint(len(self.extra_y), (count,), generator=generator).to(self.device)
        images, labels = images.clone(), labels.clone()
        images[-count:], labels[-count:] = self.extra_x[pick], self.extra_y[pick]
        self.extra_seen += count
        return images, labels

    def _end_epoch(self, epoch: int, seconds: float) -> bool:
        """Validate, record history, checkpoint; return True when early stopping says stop."""
        position, config = self.position, self.config
        if (bad := first_non_finite(self.model, self.optimizer)) is not None:  # a finite loss can still
            # have been followed by an update to infinity: such weights must not become a checkpoint
            raise TrainingError(f"the {bad} became NaN or infinite in epoch {epoch + 1} (the loss was "
                                f"{position['loss_sum'] / max(1, position['seen']):.3g}); lower --lr. "
                                f"{self._kept()}")
        row = {"epoch": epoch + 1, "train_loss": position["loss_sum"] / position["seen"],
               "train_acc": position["correct"] / position["seen"],
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
               "threads": torch.get_num_threads()}
        stop = False
        if len(self.x_val):
            logits = predict_logits(self.model, self.x_val)
            row["val_loss"] = F.cross_entropy(logits, self.y_val).item()
            row["val_acc"] = (logits.argmax(1) == self.y_val).float().mean().item()
            if position["best_val_loss"] is None or row["val_loss"] < position["best_val_loss"]:
                position["best_val_loss"], position["best_epoch"] = row["val_loss"], epoch + 1
                position["bad_epochs"] = 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if self.out_dir is not None:
                    save_model_file(self.out_dir / BEST, state_to_numpy(self.model),
                                    self._model_meta(None))
            else:
                position["bad_epochs"] += 1
                stop = config.patience is not None and position["bad_epochs"] >= config.patience
        position["history"].append(row)
        position.update(epoch=epoch + 1, step=0, loss_sum=0.0, correct=0, seen=0)
        self.save(LAST)
        if self.progress:
            shown = "  ".join(f"{key} {value:.4f}" for key, value in row.items()
                              if key not in ("epoch", "lr", "seconds", "threads"))
            print(f"epoch {epoch + 1}/{config.epochs}  {shown}  ({seconds:.1f} s)", file=sys.stderr)
        return stop

    def run(self, resume: bool = False) -> TrainResult:
        if resume:
            self.resume()
        if self.out_dir is not None:
            prepare_folder(self.out_dir, "run folder")
            remove_partial_writes(self.out_dir)  # left by a run killed while writing a file
            atomic_write(self.out_dir / "config.json", self.config.to_json().encode())
        started = time.perf_counter()
        # A run that early stopping ended (and was killed before its outputs were written) is not
        # trained further on --resume: it only writes what it did not write.
        stopped_early = resume and patience_spent(self.position, self.config)
        try:
            for epoch in range(self.position["epoch"], self.position["epoch"] if stopped_early
                               else self.config.epochs):
                epoch_start = time.perf_counter()
                self._train_epoch(epoch)
                if self._end_epoch(epoch, time.perf_counter() - epoch_start):
                    stopped_early = True
                    break
            # A Ctrl-C after the last epoch (testing, writing the outputs) is an interruption too: the
            # checkpoint holds the trained weights, and --resume only writes what is missing.
            return self._finish(started, stopped_early)
        except KeyboardInterrupt:
            self.save(LAST)
            where = self.out_dir / LAST if self.out_dir else "nowhere (no --out)"
            raise TrainingError(f"interrupted; checkpoint written to {where}. "
                                "Continue with the same command plus --resume") from None

    def _finish(self, started: float, stopped_early: bool) -> TrainResult:
        """Test the trained model, fit its rejection and write the run's outputs."""
        if stopped_early:
            self._restore_best()
        # With a "not a digit" class, answering it for a test digit counts as an error.
        test = compute_metrics(predict_logits(self.model, self.x_test).cpu().numpy(),
                               self.dataset.y_test, self.class_names)
        seconds = time.perf_counter() - started
        result = TrainResult(self.model, self.config, self.position["history"], test, seconds,
                             self.out_dir, stopped_early)
        if len(self.x_val):
            result.extra[META_KEY] = self._fit_rejection().to_dict()
        if self.out_dir is not None:
            self._write_outputs(result)
        return result

    def _restore_best(self) -> None:
        """Early stopping keeps the weights of the best validation epoch, as Keras' restore_best_weights."""
        if self.best_state is None and self.out_dir is not None and (self.out_dir / BEST).exists():
            from numbre.model.file import load_model_file

            tensors = load_model_file(self.out_dir / BEST).tensors
            self.best_state = {name: torch.from_numpy(array.copy()) for name, array in tensors.items()}
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def _fit_rejection(self) -> Rejector:
        """Temperature and "not a digit" thresholds from the validation digits, never the test set."""
        logits = predict_logits(self.model, self.x_val).float().cpu().numpy()
        return fit_rejector(logits, self.y_val.cpu().numpy(), self.x_val[:, 0].cpu().numpy())

    # --- outputs -------------------------------------------------------------------------
    def _model_meta(self, test: Metrics | None) -> dict[str, Any]:
        model = self.model
        meta = {
            "architecture": self.config.model, "class_names": list(self.class_names),
            "input": INPUT_SPEC, "recipe": self.config.to_dict(), "command": self.command,
            # source: where the data was read (an absolute --data path from `numbre train`), so that
            # `numbre evaluate` and `numbre report` find the run's own data without being told.
            "data": {"name": self.dataset.name, "checksum": self.dataset.checksum,
                     "source": self.dataset.source,
                     "train_images": len(self.x), "val_images": len(self.x_val),
                     "synthetic_share": self.config.synthetic, "synthetic_images": len(self.synthetic_y),
                     "extra_share": self.config.extra_share, "extra_images": len(self.extra_y)},
            "parameters": count_parameters(model), "macs": count_macs(model.cpu()),
            "numbre_version": __version__, "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        model.to(self.device)
        if test is not None:
            meta["test"] = test.summary()
        return meta

    def _write_outputs(self, result: TrainResult) -> None:
        out = self.out_dir
        assert out is not None
        meta = self._model_meta(result.test)
        meta["train_seconds"] = round(result.train_seconds, 2)
        meta.update(result.extra)  # the rejection policy, when there was validation data to fit it
        save_model_file(out / MODEL, state_to_numpy(self.model), meta)
        history = result.history
        atomic_write(out / "history.json", json.dumps(history, indent=2).encode())
        columns = list(dict.fromkeys(key for row in history for key in row))
        lines = [",".join(columns)] + [",".join(str(row.get(key, "")) for key in columns)
                                       for row in history]
        atomic_write(out / "history.csv", ("\n".join(lines) + "\n").encode())
        atomic_write(out / METRICS, json.dumps(result.test.to_dict(), indent=2).encode())
