"""Training configuration: one frozen, typed record, printed at start and saved with every output.

A model's registry entry carries its default `Recipe`; command-line options
override single fields. The resulting `TrainConfig` is written into every
checkpoint and model file, so any result can be traced to how it was made.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle")
AUGMENTATIONS = ("shift", "affine", "drawn")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained by default (its article's settings for the classic models)."""

    epochs: int
    batch_size: int
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "constant"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    val_split: float = 0.0
    augment: bool = False
    adam_eps: float = 1e-8
    keras_adam: bool = False  # add adam_eps to sqrt(v) before bias correction, as Keras does
    warmup_fraction: float = 0.2  # share of all steps spent warming up (onecycle only)
    warmup_start: float = 0.1  # the warm-up starts at lr * warmup_start
    augment_kind: str = "affine"  # shift: whole pixels, cheap; affine: rotate, scale, shear, shift;
    # drawn: affine plus elastic wobble, stroke width, blur and ink profile (see augment.random_drawn)
    clean_last_epoch: bool = False  # train the last epoch on unaugmented images
    drop_last: bool = False  # skip the last, smaller batch of each epoch
    bf16: bool = False  # bfloat16 autocast where the device runs it fast
    negatives: float = 0.0  # synthetic non-digits added to each batch, as a share of it; > 0 adds
    # the class "not a digit" (see numbre.negatives)

    def describe(self) -> str:
        """A compact one-line summary for tables."""
        parts = [f"{self.epochs} ep", f"bs {self.batch_size}", f"{self.optimizer} {self.lr:g}"]
        if self.schedule != "constant":
            parts.append(self.schedule)
        if self.val_split:
            parts.append(f"val {self.val_split:.3g}")
        if self.augment:
            parts.append(f"augment {self.augment_kind}")
        if self.label_smoothing:
            parts.append(f"ls {self.label_smoothing:g}")
        if self.negatives:
            parts.append(f"negatives {self.negatives:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """Everything one training run depends on."""

    model: str = "numbre"
    seed: int = 0
    patience: int | None = None  # epochs without validation improvement before stopping
    device: str = "auto"
    threads: int | None = None  # CPU threads; None uses every core
    max_train: int | None = None  # train on the first N images only (tests, quick looks)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def validate(self) -> None:
        """Raise TrainingError for settings that cannot work, before any time is spent."""
        from numbre.errors import TrainingError

        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (0.0 <= self.val_split < 1.0, f"--val-split must be in [0, 1), got {self.val_split}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.augment_kind in AUGMENTATIONS,
             f"augmentation must be one of {', '.join(AUGMENTATIONS)}"),
            (0.0 <= self.negatives <= 1.0, f"negatives must be a share in [0, 1], got {self.negatives}"),
            (self.patience is None or self.patience >= 1, "--patience must be at least 1"),
            (self.threads is None or self.threads >= 1, f"--threads must be at least 1, got {self.threads}"),
            (self.max_train is None or self.max_train >= 1,
             f"--max-train must be at least 1, got {self.max_train}"),
            (self.patience is None or self.val_split > 0,
             "--patience needs a validation split (--val-split > 0) to watch"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)
