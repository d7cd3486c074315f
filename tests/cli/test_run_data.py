"""`numbre evaluate` and `numbre report` score a model on the data it was trained on: found from what its
model file records when no --data is given, and refused (naming the data to pass) when the data given is
not it. Runs train on the synthetic IDX folders of conftest.py in a second or two."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import make_dataset, write_idx_folder
from numbre.cli import cli
from numbre.data.known import FASHION_CLASSES, FASHION_MNIST, SYSTEM_FOLDERS, spec_checksum
from numbre.model.file import INPUT_SPEC, load_model_file, save_model_file
from numbre.model.network import state_to_numpy
from numbre.model.zoo import create_model


def run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def trained(tiny_folder: Path, tmp_path: Path) -> tuple[Path, str]:
    """A run trained by the CLI on the synthetic folder; (run folder, the training command's output)."""
    out = tmp_path / "run"
    result = run("train", "-m", "numbre-mlp", "--epochs", "2", "--val-split", "0.1", "--data", tiny_folder,
                 "--out", out, "--threads", "1", "-q")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_hint_names_the_data_and_evaluate_and_report_find_it_without_being_told(
        trained, tiny, tiny_folder: Path) -> None:
    out, output = trained
    assert f"evaluate it: numbre evaluate {out} --data {tiny_folder}\n" in output
    assert load_model_file(out / "model.safetensors").meta["data"]["source"] == str(tiny_folder.resolve())
    evaluated = run("evaluate", out, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.output)
    assert figures["data_checksum"] == tiny.checksum
    assert figures["accuracy"] == json.loads((out / "metrics.json").read_text())["accuracy"]
    reported = run("report", out, "--robustness-images", "20", "-q")
    assert reported.exit_code == 0, reported.output
    assert f"checksum {tiny.checksum[:12]}" in (out / "report" / "report.html").read_text()


def test_other_data_or_other_classes_are_refused_naming_the_runs_own_data(
        trained, tiny_folder: Path, tmp_path: Path) -> None:
    out, _ = trained
    other_data = make_dataset(seed=7)
    other = write_idx_folder(other_data, tmp_path / "other")
    for command in ("evaluate", "report"):
        line = one_error_line(run(command, out, "--data", other))
        assert line.startswith(f"numbre: error: {out / 'model.safetensors'} was trained on tiny-data "
                               f"(checksum {make_dataset().checksum[:12]}), not on other from --data {other} "
                               f"(checksum {other_data.checksum[:12]}); ")
        assert f"pass its own data, --data {tiny_folder.resolve()}, or add --other-data" in line
    anyway = run("evaluate", out, "--data", other, "--other-data", "--json", "--no-png")
    assert anyway.exit_code == 0, anyway.output
    assert json.loads(anyway.output)["data_checksum"] == other_data.checksum

    renamed = write_idx_folder(make_dataset(), tmp_path / "named")  # the same images, other class names
    (renamed / "classes.txt").write_text("\n".join(FASHION_CLASSES) + "\n")
    line = one_error_line(run("evaluate", out, "--data", renamed, "--other-data"))
    assert line == (f"numbre: error: {out / 'model.safetensors'} was trained on tiny-data, whose classes are "
                    f"0, 1, 2, 3, ...; named has the classes T-shirt/top, Trouser, Pullover, Dress, ...: "
                    f"evaluate it on its own data, --data {tiny_folder.resolve()}")


def test_data_that_cannot_be_found_is_refused_with_the_folder_to_pass(tiny, tmp_path: Path) -> None:
    data = write_idx_folder(tiny, tmp_path / "moving")
    out = tmp_path / "run"
    trained = run("train", "-m", "numbre-mlp", "--epochs", "1", "--data", data, "--out", out, "-q")
    assert trained.exit_code == 0, trained.output
    shutil.rmtree(data)
    line = one_error_line(run("evaluate", out / "model.safetensors"))
    assert line == (f"numbre: error: {out / 'model.safetensors'} was trained on moving (checksum "
                    f"{tiny.checksum[:12]}), which numbre cannot find here; pass it with --data {data}")


def test_a_fashion_model_is_scored_on_fashion_mnist_from_its_system_folder(
        tmp_path: Path, tiny_folder: Path) -> None:
    """Fashion-MNIST as Debian's dataset-fashion-mnist installs it (the README's test command does)."""
    assert SYSTEM_FOLDERS["Fashion-MNIST"][0].is_dir(), "apt-get install dataset-fashion-mnist"
    torch.manual_seed(0)
    path = tmp_path / "fashion.safetensors"
    meta = {"architecture": "numbre-fast", "class_names": list(FASHION_CLASSES), "input": INPUT_SPEC,
            "data": {"name": "Fashion-MNIST", "checksum": spec_checksum(FASHION_MNIST)}}
    save_model_file(path, state_to_numpy(create_model("numbre-fast")), meta)
    evaluated = run("evaluate", path, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.output)
    assert figures["dataset"] == "Fashion-MNIST" and figures["data_checksum"] == spec_checksum(FASHION_MNIST)
    assert sum(map(sum, figures["confusion_matrix"])) == 10_000
    line = one_error_line(run("evaluate", path, "--data", tiny_folder))
    assert line == (f"numbre: error: {path} was trained on Fashion-MNIST, whose classes are T-shirt/top, "
                    "Trouser, Pullover, Dress, ...; tiny-data has the classes 0, 1, 2, 3, ...: evaluate it "
                    "on its own data, --data /usr/share/datasets/fashion-mnist")


def test_report_without_a_model_reports_on_the_shipped_one(tiny_folder: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run("report", "--data", tiny_folder))  # the shipped model learned MNIST
    assert "numbre-default.safetensors was trained on MNIST (checksum d95a98cc28a8), not on tiny-data" in line
    assert "pass its own data, no --data at all (numbre reads MNIST from its cache" in line
    result = run("report", "--data", tiny_folder, "--other-data", "--robustness-images", "20", "-q")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report-numbre-default" / "report.html").read_text()
    assert "numbre-robust" in page


def test_an_int8_export_is_calibrated_on_the_runs_own_data(trained, tmp_path: Path) -> None:
    out, _ = trained
    exported = run("export", out, "--int8", "-o", tmp_path / "int8.onnx")
    assert exported.exit_code == 0, exported.output
    assert exported.output.startswith(f"wrote {tmp_path / 'int8.onnx'} (")
    other = write_idx_folder(make_dataset(seed=7), tmp_path / "other")
    line = one_error_line(run("export", out, "--int8", "--data", other, "-o", tmp_path / "other.onnx"))
    assert f"was trained on tiny-data (checksum {make_dataset().checksum[:12]}), not on other" in line
    anyway = run("export", out, "--int8", "--data", other, "--other-data", "-o", tmp_path / "o.onnx")
    assert anyway.exit_code == 0, anyway.output
