"""How a model is trained by default: the `Recipe` its registry entry carries (the article's settings
for the classic models), and the names of the optimizers, schedules and augmentations a recipe may use.
It lives beside the model zoo so the zoo needs nothing from training."""

from __future__ import annotations

from dataclasses import dataclass

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
    synthetic: float = 0.0  # share of each batch replaced by synthesised writers' digits (the training
    # part of numbre.data.synthetic); 0 trains on the dataset alone
    synthetic_variation: float = 1.0  # how far those digits' letter forms move from the listed ones
    # (numbre.data.synthetic.trajectories; 0 draws the listed forms only, as runs before 2026-12-07 did)

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
        if self.synthetic:
            parts.append(f"synthetic {self.synthetic:g}, form variation {self.synthetic_variation:g}")
        return ", ".join(parts)
