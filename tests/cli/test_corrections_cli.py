"""Corrections as data: `numbre data info --corrections DIR` and `numbre train --extra DIR [--init MODEL]`.

The end-to-end test draws a digit the shipped model reads wrong, corrects it through the HTTP API,
fine-tunes the shipped model with the correction on a slice of the real MNIST, and reads the same
drawing again: right this time. A control run without the correction still reads it wrong, so it is
the correction that taught the model.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import write_idx_folder
from numbre.cli import cli
from numbre.data.corrections import CorrectionStore, read_corrections
from numbre.model.file import DEFAULT_MODEL, load_model_file
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from webhelpers import PNG, live_server, strokes_png

FLAGGED_ONE = [[(60, 120), (150, 40), (150, 240)]]  # a 1 with a long flag: the shipped model reads a 7


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def seen_digit(label: int) -> np.ndarray:
    """A 28x28 network input, light on dark, as a Prediction's image: a bar, different per label."""
    image = np.zeros((28, 28), np.float32)
    image[4:24, 10 + label:13 + label] = 1.0
    return image


@pytest.fixture
def corrections(tmp_path: Path) -> Path:
    folder = tmp_path / "corrections"
    store = CorrectionStore(folder)
    for label, read_as in ((1, 7), (1, 7), (4, 9), (7, None)):
        store.save(np.full((280, 280), 255, np.uint8), seen_digit(label), label, read_as=read_as,
                   source="test")
    return folder


def test_data_info_lists_the_corrections_per_label_with_sizes_and_dates(corrections: Path) -> None:
    result = invoke("data", "info", "--corrections", str(corrections))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    kept = read_corrections(corrections)
    total = sum(correction.bytes for correction in kept)
    assert lines[0] == f"corrections  {corrections}"
    assert lines[1] == f"count        4 ({total:,} bytes)"
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(f"dates        {stamp} to {stamp}", lines[2])
    table = lines[lines.index("label  count  read by the model as") + 1:][:10]
    assert table[0] == "0          0" and table[1] == "1          2  7 x2"
    assert table[4] == "4          1  9 x1" and table[7] == "7          1  no digit x1"
    rows = [line for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert [row.split()[1:3] for row in rows] == [["1", "7"], ["1", "7"], ["4", "9"], ["7", "-"]]
    assert [row.split()[-1] for row in rows] == [correction.name for correction in kept]
    assert f"{kept[0].bytes:,}" in rows[0].split()
    assert lines[-1] == f"train with them: numbre train --init shipped --extra {corrections}"


def test_data_info_on_an_empty_missing_or_broken_folder(tmp_path: Path, corrections: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("data", "info", "--corrections", str(empty))
    assert result.exit_code == 0 and "count        0 (0 bytes)" in result.output
    result = invoke("data", "info", "--corrections", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert f"no corrections folder at {tmp_path / 'nowhere'}" in result.output
    record = next(corrections.glob("*.json"))
    record.write_text("{not json")
    result = invoke("data", "info", "--corrections", str(corrections))
    assert result.exit_code == 2 and f"{record} is not a readable correction record" in result.output
    assert "Traceback" not in result.output


def test_train_from_scratch_mixes_the_corrections_into_every_batch(tiny_folder: Path, corrections: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("train", "-m", "numbre-mlp", "--epochs", "1", "--data", str(tiny_folder),
                    "--out", str(out), "--extra", str(corrections), "--extra-share", "0.25")
    assert result.exit_code == 0, result.output
    assert f"extra: 4 corrections from {corrections.resolve()}, 25% of every batch" in result.output
    meta = load_model_file(out / "model.safetensors").meta
    assert meta["data"]["extra_images"] == 4 and meta["data"]["extra_share"] == 0.25
    config = json.loads((out / "config.json").read_text())
    assert config["extra"] == [str(corrections.resolve())] and config["init"] is None


@pytest.mark.parametrize(("arguments", "message"), [
    (["--extra-share", "0.2"], "--extra-share needs --extra, a corrections folder"),
    (["--init", "nowhere.safetensors"], "--init nowhere.safetensors: no model file there; give a model file"),
    (["--init", "shipped", "-m", "numbre-mlp"], "model, not 'numbre-mlp'; leave --model out to fine-tune it"),
])
def test_train_refuses_extra_and_init_options_that_cannot_work(tiny_folder: Path, tmp_path: Path,
                                                               arguments: list[str], message: str) -> None:
    result = invoke("train", "--data", str(tiny_folder), "--out", str(tmp_path / "run"), *arguments)
    assert result.exit_code == 2 and message in result.output, result.output


def test_train_refuses_an_empty_corrections_folder(tiny_folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "-m", "numbre-mlp", "--epochs", "1", "--data", str(tiny_folder),
                    "--out", str(tmp_path / "run"), "--extra", str(empty))
    assert result.exit_code == 2 and "no corrections in it yet" in result.output


def test_init_refuses_a_model_with_other_classes(tiny_folder: Path, tmp_path: Path) -> None:
    """The shipped model has an 11th class, "not a digit": its recipe trains with negatives, so a fine-tune
    of it does too; a model file without it cannot start a run that has it."""
    first = tmp_path / "first"
    assert invoke("train", "-m", "numbre-mlp", "--epochs", "1", "--data", str(tiny_folder),
                  "--out", str(first), "-q").exit_code == 0
    result = invoke("train", "--init", str(first), "--data", str(tiny_folder), "--out", str(tmp_path / "b"),
                    "--epochs", "1", "--extra-share", "0.1")
    assert result.exit_code == 2  # --extra-share alone is refused before anything is trained
    result = invoke("train", "--init", str(first / "model.safetensors"), "--data", str(tiny_folder),
                    "--out", str(tmp_path / "second"), "-q")
    assert result.exit_code == 0, result.output  # its own recipe, so its own classes
    config = json.loads((tmp_path / "second" / "config.json").read_text())
    assert config["epochs"] == 1 and config["model"] == "numbre-mlp"
    assert config["init"] == str((first / "model.safetensors").resolve())


def test_a_corrected_drawing_is_read_right_after_fine_tuning(mnist, tmp_path: Path) -> None:
    drawing = strokes_png(FLAGGED_ONE)
    shipped = Recognizer.load()
    assert shipped.predict(drawing).digit == 7  # the mistake
    folder = tmp_path / "corrections"
    with live_server(create_app(shipped, corrections=CorrectionStore(folder))) as url:
        response = httpx.post(f"{url}/api/corrections?label=1", content=drawing, headers=PNG, timeout=30)
    assert response.status_code == 201 and response.json()["read_as"] == 7
    # A slice of MNIST keeps the run short: 3,000 training and 1,000 test images.
    data_slice = dataclasses.replace(mnist, x_train=mnist.x_train[:3000], y_train=mnist.y_train[:3000],
                                     x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])
    data = write_idx_folder(data_slice, tmp_path / "mnist-slice")
    runs = {}
    for name, extra in (("corrected", ["--extra", str(folder)]), ("control", [])):
        runs[name] = tmp_path / name
        result = invoke("train", "--init", "shipped", "--data", str(data), "--out", str(runs[name]), *extra)
        assert result.exit_code == 0, result.output
    assert f"fine-tuning: starting from the weights of {DEFAULT_MODEL}, 1 epoch(s) at learning rate 0.01" \
        in result.output
    corrected = Recognizer.load(runs["corrected"])
    assert corrected.predict(drawing).digit == 1  # the same drawing, read right
    assert Recognizer.load(runs["control"]).predict(drawing).digit == 7  # not without the correction
    accuracy = json.loads((runs["corrected"] / "metrics.json").read_text())["accuracy"]
    assert accuracy >= 0.98  # and the fine-tune did not unlearn MNIST


def test_a_fine_tuned_file_is_fine_tuned_again_at_its_own_rate(tiny_folder: Path, tmp_path: Path) -> None:
    """A trained file is fine-tuned at a tenth of its learning rate; a file that was fine-tuned itself
    (the shipped model is) records that rate already and is not slowed ten times more."""
    runs = [tmp_path / "trained", tmp_path / "tuned", tmp_path / "tuned-again"]
    assert invoke("train", "-m", "numbre-mlp", "--epochs", "1", "--lr", "0.002", "--data", str(tiny_folder),
                  "--out", str(runs[0]), "-q").exit_code == 0
    for before, after in itertools.pairwise(runs):
        result = invoke("train", "--init", str(before), "--data", str(tiny_folder), "--out", str(after), "-q")
        assert result.exit_code == 0, result.output
    rates = [json.loads((run / "config.json").read_text())["lr"] for run in runs]
    assert rates == pytest.approx([0.002, 0.0002, 0.0002])
