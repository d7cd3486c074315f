"""The stroke-level digit synthesiser: determinism, forms, allographs, the held-out split, and its uses
(`numbre data show --synthetic`, a training source mixed into batches)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from numbre.cli import cli
from numbre.data.synthetic import (
    ALLOGRAPHS,
    HELDOUT_ALLOGRAPHS,
    MEDIA,
    NUMBER_KINDS,
    STYLE_BANDS,
    TRAIN_ALLOGRAPHS,
    digit_ink,
    random_writer,
    synth_digits,
    synth_numbers,
)
from numbre.errors import TrainingError
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer


def test_the_same_seed_gives_identical_images_and_another_seed_differs() -> None:
    first, labels, styles = synth_digits(40, 3, form="mnist")
    again, labels_again, styles_again = synth_digits(40, 3, form="mnist")
    other, _, _ = synth_digits(40, 4, form="mnist")
    assert np.array_equal(first, again) and np.array_equal(labels, labels_again) and styles == styles_again
    assert not np.array_equal(first, other)
    raw, _, _ = synth_digits(6, 3, split="heldout", form="raw")
    raw_again, _, _ = synth_digits(6, 3, split="heldout", form="raw")
    assert all(np.array_equal(a, b) for a, b in zip(raw, raw_again, strict=True))
    lines = synth_numbers(3, 5, kind="touching")
    lines_again = synth_numbers(3, 5, kind="touching")
    assert [truth for truth, _, _ in lines] == [truth for truth, _, _ in lines_again]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(lines, lines_again, strict=True))


def test_worker_processes_change_nothing() -> None:
    alone, _, _ = synth_digits(1200, 9, form="mnist")
    shared, _, _ = synth_digits(1200, 9, form="mnist", workers=2)
    assert np.array_equal(alone, shared)


def test_mnist_form_is_placed_like_mnist() -> None:
    images, labels, _ = synth_digits(100, 0, form="mnist")
    assert images.shape == (100, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.uint8 and labels.tolist() == [index % 10 for index in range(100)]
    assert (images.reshape(100, -1).max(axis=1) == 255).all()  # every digit has ink, brightest at 255
    for image in images:
        ink = image.astype(np.float64)
        rows, columns = np.nonzero(image >= 128)
        assert max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 <= 21  # in MNIST's 20 px box
        total = ink.sum()
        centre = (ink.sum(axis=1) @ np.arange(28) / total, ink.sum(axis=0) @ np.arange(28) / total)
        assert abs(centre[0] - 14) <= 1.0 and abs(centre[1] - 14) <= 1.0


def test_raw_form_is_a_users_image_in_every_medium() -> None:
    for medium in MEDIA:
        images, _, styles = synth_digits(10, 1, split="heldout", form="raw", medium=medium)
        for image, style in zip(images, styles, strict=True):
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (3, 4)
            assert style["medium"] == medium
            assert min(image.shape[:2]) >= 12
            grey = image[..., 3] if image.shape[2] == 4 else image[..., :3].mean(axis=2)
            assert grey.max() - grey.min() > 60  # ink stands out from the paper
    for kind in NUMBER_KINDS:
        for truth, image, style in synth_numbers(4, 2, kind=kind):
            assert truth.isdigit() and 2 <= len(truth) <= 10 and style["kind"] == kind
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (3, 4)


def test_every_class_and_allograph_is_drawn() -> None:
    for split, forms in (("train", TRAIN_ALLOGRAPHS), ("heldout", HELDOUT_ALLOGRAPHS)):
        _, labels, styles = synth_digits(500, 0, split=split, form="mnist")
        assert set(labels.tolist()) == set(range(10))
        seen = {(style["digit"], style["allograph"]) for style in styles}
        assert seen == {(digit, name) for digit, names in forms.items() for name in names}
    rng = np.random.default_rng(0)
    writer = random_writer(rng, "train")
    for digit, forms in ALLOGRAPHS.items():
        for name in forms:
            ink, drawn = digit_ink(digit, rng, writer, height=40, allograph=name)
            assert drawn == name and ink.max() > 0.9 and ink.shape[0] >= 40


def test_the_issue_lists_allographs_exist() -> None:
    wanted = {1: {"plain", "flagged", "flagged base"}, 2: {"plain", "looped"}, 4: {"closed", "open"},
              7: {"plain", "crossbar", "curved stem"}, 9: {"curved tail", "straight tail"},
              8: {"one stroke", "two loops"}, 0: {"round", "narrow"}}
    for digit, names in wanted.items():
        assert names <= set(TRAIN_ALLOGRAPHS[digit])


def test_train_and_heldout_parts_are_disjoint() -> None:
    for digit in range(10):
        assert TRAIN_ALLOGRAPHS[digit] and HELDOUT_ALLOGRAPHS[digit]
        assert not set(TRAIN_ALLOGRAPHS[digit]) & set(HELDOUT_ALLOGRAPHS[digit])
    _, _, train = synth_digits(400, 1, split="train", form="mnist")
    _, _, heldout = synth_digits(400, 1, split="heldout", form="mnist")
    for key, bands in STYLE_BANDS["train"].items():
        (low, high), = bands
        train_values = np.array([style[key] for style in train])
        heldout_values = np.array([style[key] for style in heldout])
        assert ((train_values >= low) & (train_values <= high)).all(), key
        # Every held-out writer lies outside the training band, on every split style.
        assert ((heldout_values < low) | (heldout_values >= high)).all(), key
    assert all(style["allograph"] in TRAIN_ALLOGRAPHS[style["digit"]] for style in train)
    assert all(style["allograph"] in HELDOUT_ALLOGRAPHS[style["digit"]] for style in heldout)
    assert {style["split"] for style in train} == {"train"}
    assert {style["split"] for style in heldout} == {"heldout"}


def test_a_pinned_digit_is_what_it_always_was_without_variation() -> None:
    """Form variation draws nothing at 0, so every seed's set (and every benchmark built on one)
    stays the same; at 1 the same seed draws another, still deterministic, form."""
    plain, _, _ = synth_digits(30, 12, form="mnist")
    zero, _, _ = synth_digits(30, 12, form="mnist", variation=0.0)
    varied, _, styles = synth_digits(30, 12, form="mnist", variation=1.0)
    again, _, styles_again = synth_digits(30, 12, form="mnist", variation=1.0)
    assert np.array_equal(plain, zero)
    assert np.array_equal(varied, again) and styles == styles_again
    changed = [not np.array_equal(a, b) for a, b in zip(plain, varied, strict=True)]
    assert sum(changed) >= 28, sum(changed)


def test_form_variation_moves_the_strokes_by_about_its_size() -> None:
    """At variation 1 a path moves by a few hundredths of the height on average (VARY_POINTS,
    VARY_BEND): a form of the writer's own, not a scribble."""
    from numbre.data.synthetic import trajectories

    moved = []
    for index in range(40):
        writer = random_writer(np.random.default_rng((5, index)), "train")
        digit = index % 10
        form = TRAIN_ALLOGRAPHS[digit][0]
        still = trajectories(digit, form, dataclasses.replace(writer, speed=0.0, tremor=0.0),
                             np.random.default_rng(index), 0.0)
        bent = trajectories(digit, form, dataclasses.replace(writer, speed=0.0, tremor=0.0),
                            np.random.default_rng(index), 1.0)
        if all(len(a) == len(b) for a, b in zip(still, bent, strict=True)):
            moved.append(np.mean([np.hypot(*(a - b).T).mean() for a, b in zip(still, bent, strict=True)]))
    assert len(moved) >= 30
    assert 0.02 < float(np.median(moved)) < 0.1, np.median(moved)


def test_the_shipped_model_reads_varied_training_digits() -> None:
    """Varied forms must stay the digits they are labelled. Measured 2026-12-07 on 300 canvas
    drawings at variation 1 (seeds 0 and 1): 96.3% and 98.0% with the shipped model, trained on such
    forms; 93.3% and 95.3% with the model before it, which never saw them (mostly round 0s refused
    as "not a digit"), against 100% of the listed forms for both."""
    from numbre import Recognizer

    images, labels, _ = synth_digits(300, 0, split="train", form="raw", medium="canvas", variation=1.0)
    predictions = Recognizer.load().predict_batch(images)
    accuracy = np.mean([prediction.digit == int(label) for prediction, label in zip(predictions, labels,
                                                                                     strict=True)])
    assert accuracy >= 0.93, accuracy


def test_bad_arguments_say_what_to_choose() -> None:
    with pytest.raises(ValueError, match="choose train or heldout"):
        synth_digits(1, 0, split="test")
    with pytest.raises(ValueError, match="choose raw or mnist"):
        synth_digits(1, 0, form="png")
    with pytest.raises(ValueError, match="choose one of apart, touching, broken"):
        synth_numbers(1, 0, kind="overlapping")
    with pytest.raises(ValueError, match=r"variation must be in \[0, 3\], got 4"):
        synth_digits(1, 0, variation=4)


def test_the_shipped_model_reads_clean_training_style_digits() -> None:
    """Measured: 99.7% (seed 0) and 99.0% (seed 1) of 300 canvas drawings; the floor leaves margin."""
    from numbre import Recognizer

    images, labels, _ = synth_digits(300, 0, split="train", form="raw", medium="canvas")
    predictions = Recognizer.load().predict_batch(images)
    accuracy = np.mean([prediction.digit == int(label) for prediction, label in zip(predictions, labels,
                                                                                     strict=True)])
    assert accuracy >= 0.95, accuracy


def test_data_show_synthetic_writes_a_png(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "x.png"
    result = runner.invoke(cli, ["data", "show", "--synthetic", "-o", str(out), "-n", "20"])
    assert result.exit_code == 0, result.output
    assert "20 synthesised train digits" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[1] > 600 and image.std() > 20
    raw = tmp_path / "raw.png"
    result = runner.invoke(cli, ["data", "show", "--synthetic", "--raw", "--split", "heldout",
                                 "-o", str(raw)])
    assert result.exit_code == 0 and raw.is_file(), result.output
    result = runner.invoke(cli, ["data", "show", "--synthetic", "--split", "test", "-o", str(out)])
    assert result.exit_code == 2 and "--split train or --split heldout" in result.output
    result = runner.invoke(cli, ["data", "show", "--split", "heldout", "-o", str(out)])
    assert result.exit_code == 2 and "add --synthetic" in result.output
    varied = tmp_path / "varied.png"
    result = runner.invoke(cli, ["data", "show", "--synthetic", "--variation", "1", "-n", "20",
                                 "-o", str(varied)])
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.asarray(Image.open(varied)), np.asarray(Image.open(out)))
    result = runner.invoke(cli, ["data", "show", "--variation", "1", "-o", str(varied)])
    assert result.exit_code == 2 and "--variation moves synthesised writers' letter forms" in result.output


def test_a_recipe_with_synthetic_writers_mixes_them_into_batches(tiny) -> None:
    config = TrainConfig(model="seed-cnn-a", epochs=2, batch_size=32, lr=3e-3, threads=1, synthetic=0.25)
    trainer = Trainer(config, tiny, None, progress=False)
    assert len(trainer.synthetic_y) == 150  # a quarter of the 600 training images, made once
    assert set(trainer.synthetic_y.tolist()) == set(range(10))
    result = trainer.run()
    # 600 images in batches of 32: 18 of 32 (8 synthesised each) and one of 24 (6), per epoch.
    assert trainer.synthetic_seen == 2 * (18 * 8 + 6)
    assert np.isfinite(result.history[-1]["train_loss"])
    card = trainer._model_meta(None)["data"]  # the model file records the source and its share
    assert card["synthetic_share"] == 0.25 and card["synthetic_images"] == 150
    plain = Trainer(TrainConfig(model="seed-cnn-a", epochs=1, batch_size=32, threads=1), tiny, None,
                    progress=False)
    plain.run()
    assert plain.synthetic_seen == 0 and len(plain.synthetic_y) == 0


def test_synthetic_share_is_checked(tiny) -> None:
    with pytest.raises(TrainingError, match=r"synthetic must be a share in \[0, 1\], got 1.5"):
        TrainConfig(epochs=1, batch_size=8, synthetic=1.5).validate()
    with pytest.raises(TrainingError, match=r"--synthetic-variation must be in \[0, 3\], got -1"):
        TrainConfig(epochs=1, batch_size=8, synthetic=0.1, synthetic_variation=-1).validate()


def test_the_pool_draws_varied_letter_forms_unless_told_not_to(tiny) -> None:
    """The recipe's synthetic_variation reaches the pool: 1 (the default) gives the varied digits of
    synth_digits(variation=1), 0 the listed forms, both from the run's seed."""
    pools = {}
    for variation in (0.0, 1.0):
        config = TrainConfig(model="seed-cnn-a", epochs=1, batch_size=32, threads=1, synthetic=0.25,
                             synthetic_variation=variation)
        pools[variation] = Trainer(config, tiny, None, progress=False).synthetic_x[:, 0].numpy()
    assert TrainConfig(epochs=1, batch_size=8).synthetic_variation == 1.0
    for variation, pool in pools.items():
        made, _, _ = synth_digits(150, 0, form="mnist", variation=variation)
        assert np.allclose(pool, made / 255.0)
    assert not np.allclose(pools[0.0], pools[1.0])


def test_mnist_form_matches_what_the_reading_pipeline_makes_of_the_raw_image() -> None:
    """Training digits are placed in the data stage; the reader's `to_mnist` must agree with it.

    Measured on these 100 canvas drawings: median correlation 0.996, 92% above 0.9 (the rest are
    shifted by a pixel, or had their stroke width adjusted by `center_ink`).
    """
    from numbre.data.synthetic import page_image, to_mnist_form
    from numbre.reading.preprocess import to_mnist

    correlations = []
    for index in range(100):
        rng = np.random.default_rng((5, index))
        writer = random_writer(rng, "train", "canvas")
        ink, _ = digit_ink(index % 10, rng, writer)
        ours = to_mnist_form(ink).astype(np.float64)
        theirs = to_mnist(page_image(ink, writer, rng, writer.height)).image.astype(np.float64)
        correlations.append(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    assert np.median(correlations) >= 0.98
    assert np.mean(np.array(correlations) > 0.9) >= 0.85


def test_letter_forms_and_bands_can_come_from_different_splits() -> None:
    """The cross benchmark's digits: held-out letter forms drawn in the training bands, and back."""
    _, _, styles = synth_digits(40, 3, split="train", form="mnist", forms="heldout")
    assert {style["allograph"] for style in styles} <= {name for names in HELDOUT_ALLOGRAPHS.values()
                                                        for name in names}
    assert {style["bands"] for style in styles} == {"train"}
    low, high = STYLE_BANDS["train"]["slant"][0]
    assert all(low <= style["slant"] < high for style in styles)
    _, _, styles = synth_digits(40, 3, split="heldout", form="mnist", forms="train")
    assert {style["allograph"] for style in styles} <= {name for names in TRAIN_ALLOGRAPHS.values()
                                                        for name in names}
    assert not any(low <= style["slant"] < high for style in styles)
    with pytest.raises(ValueError, match="unknown split"):
        synth_digits(2, 3, split="train", forms="test")
