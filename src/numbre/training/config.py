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

from numbre.model.recipe import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, Recipe


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """Everything one training run depends on."""

    model: str = "numbre"
    seed: int = 0
    patience: int | None = None  # epochs without validation improvement before stopping
    device: str = "auto"
    threads: int | None = None  # CPU threads; None uses every core
    max_train: int | None = None  # train on the first N images only (tests, quick looks)
    init: str | None = None  # a model file whose weights the run starts from (fine-tuning), else random
    extra: tuple[str, ...] = ()  # corrections folders (numbre.data.corrections) trained on besides the data
    extra_share: float = 0.0  # share of each batch replaced by images of `extra`: a few corrections then
    # weigh as much as thousands of dataset images, so the model learns them

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        chosen = {key: value for key, value in values.items() if key in known}
        if isinstance(chosen.get("extra"), list):  # JSON has no tuples
            chosen["extra"] = tuple(chosen["extra"])
        return cls(**chosen)

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
            (0.0 <= self.synthetic <= 1.0, f"synthetic must be a share in [0, 1], got {self.synthetic}"),
            (0.0 <= self.synthetic_variation <= 3.0,
             f"--synthetic-variation must be in [0, 3], got {self.synthetic_variation}"),
            (self.patience is None or self.patience >= 1, "--patience must be at least 1"),
            (self.threads is None or self.threads >= 1, f"--threads must be at least 1, got {self.threads}"),
            (self.max_train is None or self.max_train >= 1,
             f"--max-train must be at least 1, got {self.max_train}"),
            (0.0 <= self.extra_share < 1.0, f"--extra-share must be in [0, 1), got {self.extra_share}"),
            (not self.extra or self.extra_share > 0, "--extra needs an --extra-share above 0 to train on it"),
            (self.extra_share == 0 or bool(self.extra), "--extra-share needs --extra, a corrections folder"),
            (self.patience is None or self.val_split > 0,
             "--patience needs a validation split (--val-split > 0) to watch"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)


def fine_tune_recipe(architecture: str, recorded: Any) -> dict[str, Any]:
    """The recipe of a run that starts from a model file's weights (`--init`).

    The architecture's default recipe with what the file recorded of its own (so its classes, "not a
    digit" included, are the run's), for one epoch at a tenth of its learning rate. A file that was
    itself fine-tuned (its recipe names an `init`) records its fine-tuning rate already: divided
    again, a second fine-tune (a user's corrections on the shipped model) would learn ten times
    slower still, so it keeps that rate.
    """
    from numbre.model.zoo import get_entry  # imports torch: only runs that train need it

    recipe = dataclasses.asdict(get_entry(architecture).recipe)
    fine_tuned = False
    if isinstance(recorded, dict):
        names = {field.name for field in dataclasses.fields(Recipe)}
        recipe.update({key: value for key, value in recorded.items() if key in names})
        fine_tuned = bool(recorded.get("init"))
    recipe.update(epochs=1, lr=recipe["lr"] if fine_tuned else recipe["lr"] / 10)
    return recipe
