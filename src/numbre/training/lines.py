"""Training the whole-number line network with CTC loss, deterministically from a seed.

The lines arrive prepared (numbre.model.line_model.line_input: 32 px tall, any
width) with their labels (0-9, and 10 for "not a digit"). Lines of similar
width are batched together so little of each batch is padding; the batches'
order is shuffled every epoch by a generator seeded from `seed`, and torch's
own generator is seeded too, so one seed gives one model on one machine.
CTC (torch.nn.CTCLoss) learns where digits are without being told: only the
label sequence of each line is known, never where one digit ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from numbre.errors import TrainingError
from numbre.model.line_model import BLANK, STRIDE, alignable, greedy_decode
from numbre.model.line_net import FEATURES, WIDTHS, LineNet
from numbre.training.device import bf16_is_fast
from numbre.training.threads import describe_change, start_threads


@dataclass(frozen=True)
class LineTrainConfig:
    epochs: int = 5
    batch: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    threads: int | None = None  # None: the cores free to the process, then tuned while training
    widths: tuple[int, int, int, int] = WIDTHS  # channels of the four convolution stages
    features: int = FEATURES  # channels per frame
    bf16: bool | None = False  # bfloat16 autocast for the network (the CTC loss stays float32);
    # None: where the CPU computes it natively (numbre.training.device.bf16_is_fast)


@dataclass
class LineHistory:
    """Per epoch: mean CTC loss on the training lines, exact match on the check lines, seconds."""

    loss: list[float] = field(default_factory=list)
    exact: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)  # torch threads at each epoch's end
    bf16: bool = False  # whether the network ran in bfloat16


def targets_of(labels: Sequence[int]) -> list[int]:
    """Line labels (0-9, 10 "not a digit") -> CTC classes (1-10, 11); class 0 is the blank."""
    return [int(label) + 1 for label in labels]


def batches(widths: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices grouped by similar width (sorted, cut into runs of `size`), in a shuffled order.

    Widths are jittered before sorting so the groups differ between epochs.
    """
    order = np.argsort(widths + rng.uniform(0, 4 * STRIDE, len(widths)), kind="stable")
    groups = [order[start:start + size] for start in range(0, len(order), size)]
    return [groups[i] for i in rng.permutation(len(groups))]


def collate(images: Sequence[np.ndarray], labels: Sequence[Sequence[int]],
            chosen: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 1, 32, W) lines padded with background on the right, targets, frame and target counts."""
    width = max(images[i].shape[1] for i in chosen)
    batch = np.zeros((len(chosen), 1, images[chosen[0]].shape[0], width), np.float32)
    for row, index in enumerate(chosen):
        image = images[index]
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        batch[row, 0, :, :image.shape[1]] = image.astype(np.float32) / scale
    targets = [targets_of(labels[i]) for i in chosen]
    frames = torch.tensor([images[i].shape[1] // STRIDE for i in chosen], dtype=torch.long)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    flat = torch.tensor([c for t in targets for c in t], dtype=torch.long)
    return torch.from_numpy(batch), flat, frames, lengths


def exact_match(model: LineNet, images: Sequence[np.ndarray], labels: Sequence[Sequence[int]],
                size: int = 64) -> float:
    """Share of lines whose greedy CTC reading equals their labels."""
    if not images:
        return float("nan")
    model.eval()
    right = 0
    with torch.no_grad():
        for chosen in batches(np.array([image.shape[1] for image in images]), size, np.random.default_rng(0)):
            x, _, frames, _ = collate(images, labels, chosen)
            logits = model(x).numpy()
            for row, index in enumerate(chosen):
                tokens = greedy_decode(logits[row, :int(frames[row])])
                right += [t.label for t in tokens] == targets_of(labels[index])
    return right / len(images)


def train_lines(images: Sequence[np.ndarray], labels: Sequence[Sequence[int]], config: LineTrainConfig,
                check: tuple[Sequence[np.ndarray], Sequence[Sequence[int]]] | None = None,
                report: Callable[[str], None] = print) -> tuple[LineNet, LineHistory]:
    """A LineNet trained on (images, labels) for `config.epochs`; `check` lines are measured per epoch."""
    if not images or len(images) != len(labels):
        raise TrainingError("training the line reader needs lines, each with its labels")
    for index, label in enumerate(labels):
        if not alignable(images[index].shape[1], len(label)):
            frames = images[index].shape[1] // STRIDE
            raise TrainingError(f"line {index} has {len(label)} labels for {frames} frames; "
                                "a line needs at least one label and two frames per label")
    torch.manual_seed(config.seed)
    # As `numbre train`: without --threads the count follows other programs' load (ThreadTuner).
    tuner = start_threads(config.threads, torch.set_num_threads)
    rng = np.random.default_rng(config.seed)
    model = LineNet(config.widths, config.features)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    widths = np.array([image.shape[1] for image in images])
    steps = config.epochs * math.ceil(len(images) / config.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=steps,
                                                   pct_start=0.15)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    bf16 = bf16_is_fast(torch.device("cpu")) if config.bf16 is None else config.bf16
    history = LineHistory(bf16=bf16)
    typical = float(np.median(widths))  # steps are timed as if their lines were this wide
    for epoch in range(config.epochs):
        model.train()
        started, total, count = time.perf_counter(), 0.0, 0
        for chosen in batches(widths, config.batch, rng):
            step_started = time.perf_counter()
            x, targets, frames, lengths = collate(images, labels, chosen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            log_probs = logits.float().log_softmax(2).transpose(0, 1)  # (T, N, C)
            loss = ctc(log_probs, targets, frames, lengths)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(chosen)
            count += len(chosen)
            if tuner is not None:  # a batch of wide lines is slower, not a busier machine
                change = tuner.step_done((time.perf_counter() - step_started) * typical / x.shape[-1])
                if change is not None:
                    report(describe_change(change))
        history.loss.append(total / count)
        history.exact.append(exact_match(model, *check) if check else float("nan"))
        history.seconds.append(time.perf_counter() - started)
        history.threads.append(torch.get_num_threads())
        report(f"epoch {epoch + 1}/{config.epochs}: CTC loss {history.loss[-1]:.4f}, "
               f"check lines read exactly {history.exact[-1]:.2%}, {history.seconds[-1]:.0f} s")
    return model.eval(), history
