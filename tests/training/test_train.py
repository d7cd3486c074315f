"""The training loop on the synthetic dataset: learning, determinism, resume, outputs, failures."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import numbre.training.loop as train_module
from numbre.errors import TrainingError
from numbre.model.file import load_model_file
from numbre.training.config import TrainConfig
from numbre.training.loop import BEST, LAST, MODEL, Trainer, learning_rate

FAST = dict(model="seed-cnn-a", epochs=3, batch_size=32, lr=3e-3, threads=1)


def make_config(**overrides) -> TrainConfig:
    return TrainConfig(**{**FAST, **overrides})


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in trainer.model.state_dict().items()}


def assert_resume_matches(config: TrainConfig, tiny, tmp_path: Path, monkeypatch, into_second_epoch: int):
    """Run `config` once straight through and once interrupted `into_second_epoch` steps into the
    second epoch and resumed; the weights must be identical. Returns (reference, resumed)."""
    reference = Trainer(config, tiny, tmp_path / "reference", progress=False)
    reference.run()
    real_learning_rate = learning_rate

    def interrupt(cfg, step, total):
        if step == reference.steps_per_epoch + into_second_epoch:
            raise KeyboardInterrupt
        return real_learning_rate(cfg, step, total)

    monkeypatch.setattr(train_module, "learning_rate", interrupt)
    with pytest.raises(TrainingError, match="interrupted"):
        Trainer(config, tiny, tmp_path / "run", progress=False).run()
    monkeypatch.setattr(train_module, "learning_rate", real_learning_rate)
    resumed = Trainer(config, tiny, tmp_path / "run", progress=False)
    resumed.run(resume=True)
    for name, value in weights(reference).items():
        assert torch.equal(value, weights(resumed)[name]), name
    return reference, resumed


def test_learns_the_synthetic_task_and_writes_its_record(tiny, tmp_path: Path) -> None:
    config = make_config(val_split=0.2)
    result = Trainer(config, tiny, tmp_path, command="numbre train", progress=False).run()
    assert result.test.accuracy >= 0.9, result.test.summary()
    assert result.test.count == len(tiny.y_test)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(0 <= row["val_acc"] <= 1 for row in history)
    with open(tmp_path / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 and float(rows[2]["val_loss"]) == pytest.approx(history[2]["val_loss"])
    for name in (LAST, BEST, MODEL, "config.json", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    meta = load_model_file(tmp_path / MODEL).meta
    assert meta["architecture"] == "seed-cnn-a"
    assert meta["data"]["checksum"] == tiny.checksum
    assert meta["data"]["train_images"] == 480 and meta["data"]["val_images"] == 120
    assert meta["recipe"]["epochs"] == 3 and meta["command"] == "numbre train"
    assert meta["test"]["accuracy"] == pytest.approx(result.test.accuracy, abs=1e-6)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 3e-3


def test_same_seed_same_weights_other_seed_other_weights(tiny) -> None:
    config = make_config(augment=True, epochs=1)
    first = Trainer(config, tiny, None, progress=False)
    first.run()
    second = Trainer(config, tiny, None, progress=False)
    second.run()
    other = Trainer(make_config(seed=1, augment=True, epochs=1), tiny, None, progress=False)
    other.run()
    for name, value in weights(first).items():
        assert torch.equal(value, weights(second)[name]), name
    assert any(not torch.equal(value, weights(other)[name]) for name, value in weights(first).items())


def test_interrupt_writes_checkpoint_and_resume_matches_uninterrupted(tiny, tmp_path, monkeypatch) -> None:
    config = make_config(augment=True, val_split=0.1)
    reference = Trainer(config, tiny, tmp_path / "reference", progress=False)
    reference.run()

    real_learning_rate = learning_rate
    steps_per_epoch = reference.steps_per_epoch

    def interrupt_mid_second_epoch(cfg, step, total):
        if step == steps_per_epoch + 5:
            raise KeyboardInterrupt
        return real_learning_rate(cfg, step, total)

    monkeypatch.setattr(train_module, "learning_rate", interrupt_mid_second_epoch)
    with pytest.raises(TrainingError, match=r"interrupted; checkpoint written.*--resume"):
        Trainer(config, tiny, tmp_path / "run", progress=False).run()
    position = load_model_file(tmp_path / "run" / LAST).meta["position"]
    assert (position["epoch"], position["step"]) == (1, 5)

    monkeypatch.setattr(train_module, "learning_rate", real_learning_rate)
    resumed = Trainer(config, tiny, tmp_path / "run", progress=False)
    result = resumed.run(resume=True)
    for name, value in weights(reference).items():
        assert torch.equal(value, weights(resumed)[name]), name
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_resume_refuses_other_settings_and_missing_checkpoint(tiny, tmp_path) -> None:
    config = make_config(**{"epochs": 1})
    Trainer(config, tiny, tmp_path, progress=False).run()
    with pytest.raises(TrainingError, match=r"different settings.*lr"):
        Trainer(make_config(**{"epochs": 1, "lr": 0.1}), tiny, tmp_path, progress=False).run(True)
    with pytest.raises(TrainingError, match="no checkpoint"):
        Trainer(config, tiny, tmp_path / "empty", progress=False).run(resume=True)


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(
        tiny, tmp_path, monkeypatch) -> None:
    config = make_config(**{"epochs": 2})
    trainer = Trainer(config, tiny, tmp_path, progress=False)
    real_cross_entropy = train_module.F.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_cross_entropy(*args, **kwargs)
        return loss * float("nan") if calls["n"] > trainer.steps_per_epoch else loss

    monkeypatch.setattr(train_module.F, "cross_entropy", poisoned)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*lower --lr"):
        trainer.run()
    saved = load_model_file(tmp_path / LAST)
    assert saved.meta["position"]["epoch"] == 1
    assert all(np.isfinite(array).all() for array in saved.tensors.values())


def test_early_stopping_restores_the_best_epoch(tiny, tmp_path, monkeypatch) -> None:
    config = make_config(**{"epochs": 6, "val_split": 0.2, "patience": 1})
    losses = iter([0.5, 0.4, 0.45, 0.3, 0.2, 0.1])
    real_cross_entropy = train_module.F.cross_entropy

    def scripted(logits, labels, **kwargs):
        loss = real_cross_entropy(logits, labels, **kwargs)
        if len(labels) == 120:  # the validation pass (training batches hold 32)
            return torch.tensor(next(losses))
        return loss

    monkeypatch.setattr(train_module.F, "cross_entropy", scripted)
    trainer = Trainer(config, tiny, tmp_path, progress=False)
    result = trainer.run()
    assert result.stopped_early
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert trainer.position["best_epoch"] == 2
    best = load_model_file(tmp_path / BEST).tensors
    for name, value in trainer.model.state_dict().items():
        assert np.array_equal(value.numpy(), best[name]), name


def test_bad_settings_are_refused_before_training(tiny) -> None:
    for overrides, message in [({"epochs": 0}, "--epochs"), ({"val_split": 1.5}, "--val-split"),
                               ({"patience": 2}, "--patience needs a validation split"),
                               ({"device": "cuda"}, "no CUDA device")]:
        with pytest.raises(TrainingError, match=message):
            Trainer(make_config(**{**overrides}), tiny, None, progress=False)


def test_onecycle_schedule_warms_up_then_decays() -> None:
    config = TrainConfig(lr=1.0, schedule="onecycle", warmup_fraction=0.25, epochs=1, batch_size=1)
    rates = [learning_rate(config, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1)
    assert max(rates) == pytest.approx(1.0, abs=0.01) and rates.index(max(rates)) == 25
    assert rates[-1] < 0.02 and all(a >= b for a, b in itertools.pairwise(rates[25:]))


def test_resume_is_exact_for_the_sgd_shift_recipe(tiny, tmp_path, monkeypatch) -> None:
    """numbre's own recipe: SGD, per-group weight decay, warm-up from zero, shift augmentation,
    dropped last batch, clean last epoch, channels-last batch-norm model."""
    config = TrainConfig(model="numbre-fast", epochs=3, batch_size=32, optimizer="sgd", lr=0.05,
                         schedule="onecycle", warmup_start=0.0, weight_decay=5e-4, drop_last=True,
                         augment=True, augment_kind="shift", clean_last_epoch=True, threads=1)
    reference, _ = assert_resume_matches(config, tiny, tmp_path, monkeypatch, 3)
    assert reference.steps_per_epoch == len(reference.x) // 32


def test_warmup_can_start_from_zero() -> None:
    config = TrainConfig(lr=0.1, schedule="onecycle", warmup_fraction=0.1, warmup_start=0.0,
                         epochs=1, batch_size=1)
    assert learning_rate(config, 0, 100) == 0.0
    assert learning_rate(config, 5, 100) == pytest.approx(0.05)
    assert learning_rate(config, 10, 100) == pytest.approx(0.1)


def test_weight_decay_skips_biases_and_batch_norm() -> None:
    from numbre.model.zoo import create_model
    from numbre.training.loop import make_optimizer

    model = create_model("numbre-fast")
    optimizer = make_optimizer(TrainConfig(optimizer="sgd", weight_decay=5e-4, epochs=1, batch_size=1),
                               model, torch.device("cpu"))
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and all(p.ndim == 4 or p.ndim == 2 for p in decayed["params"])
    assert plain["weight_decay"] == 0.0 and all(p.ndim == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_resume_is_exact_with_drawn_augmentation_and_negatives(tiny, tmp_path, monkeypatch) -> None:
    """The shipped model's recipe draws warps and synthetic negatives every step; an interrupted
    run must still end with the same weights, and the model file carries the rejection policy."""
    config = TrainConfig(model="numbre-fast", epochs=2, batch_size=32, optimizer="sgd", lr=0.05,
                         schedule="onecycle", warmup_start=0.0, drop_last=True, augment=True,
                         augment_kind="drawn", negatives=0.2, val_split=0.2, threads=1)
    assert_resume_matches(config, tiny, tmp_path, monkeypatch, 2)
    meta = load_model_file(tmp_path / "run" / MODEL).meta
    assert meta["class_names"] == [*tiny.class_names, "not a digit"]
    policy = meta["rejection"]
    assert policy["fitted"]["images"] == 120 and 0 < policy["temperature"] < 20
    assert policy == load_model_file(tmp_path / "reference" / MODEL).meta["rejection"]


def test_a_finished_run_is_known_from_its_checkpoint_and_outputs(tmp_path: Path) -> None:
    """All epochs done, or early stopping spent its patience, and every output written: --resume has
    nothing left to do. Killed before its outputs were written, the run is not finished."""
    from numbre.model.file import ModelFile
    from numbre.training.loop import finished_epochs

    def checkpoint(epoch: int, bad_epochs: int, step: int = 0, patience: int | None = 2) -> ModelFile:
        position = {"epoch": epoch, "step": step, "bad_epochs": bad_epochs,
                    "config": make_config(epochs=5, patience=patience, val_split=0.2).to_dict()}
        return ModelFile(tmp_path / LAST, {}, {"position": position})

    assert finished_epochs(checkpoint(5, 0), tmp_path) is None  # no model file, no metrics: not written
    (tmp_path / MODEL).write_bytes(b"")
    assert finished_epochs(checkpoint(5, 0), tmp_path) is None  # killed before metrics.json, written last
    (tmp_path / "metrics.json").write_text("{}")
    assert finished_epochs(checkpoint(5, 0), tmp_path) == 5
    assert finished_epochs(checkpoint(3, 2), tmp_path) == 3  # stopped early
    assert finished_epochs(checkpoint(3, 1), tmp_path) is None  # patience not spent: more to train
    assert finished_epochs(checkpoint(3, 2, patience=None), tmp_path) is None
    assert finished_epochs(checkpoint(4, 0, step=7), tmp_path) is None  # inside an epoch


def test_resuming_a_run_that_stopped_early_trains_no_further(tiny, tmp_path: Path, monkeypatch) -> None:
    """Early stopping ended the run; killed before its model file was written, --resume writes the
    outputs from the best epoch and does not go on training past the stop."""
    config = make_config(epochs=6, patience=1, val_split=0.2, lr=0.3)  # a high rate: validation gets worse
    trainer = Trainer(config, tiny, tmp_path, progress=False)
    first = trainer.run()
    stopped_at = len(first.history)
    if not first.stopped_early:
        pytest.fail(f"the run was meant to stop early; history {first.history}")
    for name in (MODEL, "metrics.json"):  # as if killed after the last checkpoint, before the outputs
        (tmp_path / name).unlink()
    resumed = Trainer(config, tiny, tmp_path, progress=False).run(resume=True)
    assert resumed.stopped_early and len(resumed.history) == stopped_at
    assert (tmp_path / MODEL).is_file()


def test_ctrl_c_after_the_last_epoch_keeps_a_checkpoint_and_resume_writes_the_outputs(
        tiny, tmp_path: Path, monkeypatch) -> None:
    config = make_config(epochs=2, val_split=0.2)
    reference = Trainer(config, tiny, tmp_path / "reference", progress=False)
    reference.run()
    real_write = Trainer._write_outputs

    def interrupted(self, result) -> None:
        raise KeyboardInterrupt  # Ctrl-C while testing and writing, the epochs all done

    monkeypatch.setattr(Trainer, "_write_outputs", interrupted)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"^interrupted; checkpoint written to .*--resume$"):
        Trainer(config, tiny, run, progress=False).run()
    assert load_model_file(run / LAST).meta["position"]["epoch"] == 2 and not (run / MODEL).exists()
    monkeypatch.setattr(Trainer, "_write_outputs", real_write)
    resumed = Trainer(config, tiny, run, progress=False)
    result = resumed.run(resume=True)
    assert len(result.history) == 2  # nothing trained again
    reference_weights = load_model_file(tmp_path / "reference" / MODEL).tensors
    resumed_weights = load_model_file(run / MODEL).tensors
    assert all(np.array_equal(reference_weights[name], resumed_weights[name]) for name in reference_weights)
