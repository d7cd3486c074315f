"""`numbre train --synthetic SHARE`: synthesised writers' digits mixed into each batch from the command
line, recorded in the run's settings and model file, and refused with a clear message where they
cannot apply."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conftest import make_dataset, write_idx_folder
from numbre.cli import cli
from numbre.data.known import FASHION_CLASSES
from numbre.model.file import load_model_file


def run(*args: object):
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def test_the_share_reaches_the_run_its_settings_and_its_model_file(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("train", "-m", "numbre-mlp", "--epochs", "1", "--batch-size", "32", "--synthetic", "0.25",
                 "--data", tiny_folder, "--out", out, "--threads", "1", "--val-split", "0")
    assert result.exit_code == 0, result.output
    assert "--synthetic 0.25" in result.output  # the settings the person chose, named at the start
    assert json.loads((out / "config.json").read_text())["synthetic"] == 0.25
    data = load_model_file(out / "model.safetensors").meta["data"]
    assert data["synthetic_share"] == 0.25
    assert data["synthetic_images"] == 150  # a quarter of the 600 training images: one epoch's worth


def test_the_form_variation_reaches_the_run_and_its_model_file(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("train", "-m", "numbre-mlp", "--epochs", "1", "--batch-size", "32", "--synthetic", "0.25",
                 "--synthetic-variation", "0.5", "--data", tiny_folder, "--out", out, "--threads", "1",
                 "--val-split", "0")
    assert result.exit_code == 0, result.output
    assert "--synthetic-variation 0.5" in result.output
    assert json.loads((out / "config.json").read_text())["synthetic_variation"] == 0.5
    assert load_model_file(out / "model.safetensors").meta["recipe"]["synthetic_variation"] == 0.5
    refused = run("train", "--synthetic", "0.1", "--synthetic-variation", "4", "--data", tiny_folder,
                  "--out", tmp_path / "other")
    assert refused.exit_code == 2
    assert "Invalid value for '--synthetic-variation': 4.0 is not in the range 0.0<=x<=3.0." in refused.output
    assert not (tmp_path / "other").exists()


def test_a_share_outside_zero_to_one_is_refused_before_anything_runs(tiny_folder: Path,
                                                                    tmp_path: Path) -> None:
    result = run("train", "--synthetic", "1.5", "--data", tiny_folder, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "Invalid value for '--synthetic': 1.5 is not in the range 0.0<=x<=1.0." in result.output
    assert not (tmp_path / "run").exists()


def test_data_that_are_not_digits_are_refused_naming_what_to_do(tmp_path: Path) -> None:
    clothes = write_idx_folder(make_dataset(), tmp_path / "clothes")
    (clothes / "classes.txt").write_text("\n".join(FASHION_CLASSES) + "\n")
    result = run("train", "-m", "numbre-mlp", "--epochs", "1", "--synthetic", "0.2", "--data", clothes,
                 "--out", tmp_path / "run", "--threads", "1", "-q")
    assert result.exit_code == 2, result.output
    assert "synthetic writers write digits" in result.output
    assert "train on a digits dataset or set synthetic to 0" in result.output
