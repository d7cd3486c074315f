"""The command line, driven through click's runner: output, files and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from numbre import __version__
from numbre.cli import cli
from numbre.model.file import load_model_file


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_models_table_lists_the_classic_models_with_keras_counts() -> None:
    result = run("models")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["name", "origin", "parameters"]
    rows = {line.split()[0]: line for line in lines[2:]}
    for name, count in [("seed-cnn-a", "34,826"), ("numbre-mlp", "106,391"),
                        ("mlp-3-hidden", "270,218"), ("seed-cnn-b", "555,158")]:
        assert count in rows[name]
    assert "2,440,960" in rows["seed-cnn-a"]  # MACs per image
    assert "5 ep, bs 32" in rows["seed-cnn-a"]
    # Which tutorial model each classic one is, as readers of the tutorials know them.
    assert "Keras tutorial CNN with a pygame drawing window" in rows["seed-cnn-a"]
    assert "Keras tutorial CNN, 30 5x5 filters" in rows["seed-cnn-b"]
    assert "NUMBRE article MLP, dense 25-256-300" in rows["numbre-mlp"]
    assert "Keras tutorial MLP, dense 128-256-512" in rows["mlp-3-hidden"]


def test_data_info_prints_sizes_counts_and_checksums(tiny, tiny_folder: Path) -> None:
    result = run("data", "info", "--data", str(tiny_folder))
    assert result.exit_code == 0, result.output
    assert "train     600 images, 28x28 uint8" in result.output
    assert "test      200 images" in result.output
    assert tiny.checksum in result.output
    counts = np.bincount(tiny.y_train, minlength=10)
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line[:1].isdigit()}
    assert rows["0"] == [str(counts[0]), str(np.bincount(tiny.y_test, minlength=10)[0])]
    for name, digest in tiny.file_sha256.items():
        assert f"{digest}  {name}" in result.output


def test_data_show_writes_a_labelled_grid(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = run("data", "show", "--data", str(tiny_folder), "--out", str(out), "-n", "20")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "20 train images" in result.output
    image = np.asarray(Image.open(out).convert("L"))
    assert image.shape[1] > 600 and image.shape[0] > 150
    assert image.std() > 20  # digits drawn, not a blank canvas


def test_train_then_evaluate_round_trip(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("train", "-m", "seed-cnn-a", "--epochs", "2", "--lr", "0.003", "--val-split", "0.1",
                 "--data", str(tiny_folder), "--out", str(out), "--threads", "1", "-q")
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and str(out / "model.safetensors") in result.output
    saved = json.loads((out / "metrics.json").read_text())
    png = tmp_path / "confusion.png"
    evaluated = run("evaluate", str(out), "--data", str(tiny_folder), "--json", "--png", str(png))
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.output)
    assert figures["accuracy"] == saved["accuracy"] and figures["accuracy"] > 0.5
    assert np.array(figures["confusion_matrix"]).sum() == 200
    assert len(figures["per_class"]) == 10
    assert Image.open(png).size[0] > 300
    text = run("evaluate", str(out / "model.safetensors"), "--data", str(tiny_folder), "--no-png")
    assert f"accuracy {saved['accuracy']:.2%}" in text.output
    assert "confusion matrix (rows: true class" in text.output
    again = run("train", "-m", "seed-cnn-a", "--data", str(tiny_folder), "--out", str(out))
    assert again.exit_code == 2 and "already holds a run" in again.output and "--overwrite" in again.output
    first_created = load_model_file(out / "model.safetensors").meta["created"]
    afresh = run("train", "-m", "seed-cnn-a", "--data", str(tiny_folder), "--out", str(out), "-q",
                 "--epochs", "1", "--overwrite")
    assert afresh.exit_code == 0, afresh.output
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert load_model_file(out / "model.safetensors").meta["recipe"]["epochs"] == 1
    assert first_created <= load_model_file(out / "model.safetensors").meta["created"]


def test_train_the_shipped_recipe_then_evaluate_it_with_its_not_a_digit_class(
        tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "robust"
    result = run("train", "-m", "numbre-robust", "--epochs", "1", "--data", str(tiny_folder),
                 "--out", str(out), "--threads", "1", "-q")
    assert result.exit_code == 0, result.output
    meta = load_model_file(out / "model.safetensors").meta
    assert meta["class_names"] == [*map(str, range(10)), "not a digit"]
    assert meta["rejection"]["fitted"]["images"] == 50  # the recipe holds out 1/12 of the training images
    evaluated = run("evaluate", str(out), "--data", str(tiny_folder), "--json", "--no-png")
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.output)
    assert len(figures["per_class"]) == 11 and np.array(figures["confusion_matrix"]).sum() == 200
    assert figures["accuracy"] == json.loads((out / "metrics.json").read_text())["accuracy"]


def test_options_fall_back_to_environment_variables(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "env-run"
    result = run("train", "-m", "numbre-mlp", "--out", str(out), "-q",
                 env={"NUMBRE_DATA": str(tiny_folder), "NUMBRE_TRAIN_EPOCHS": "1"})
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_user_errors_are_one_line_with_exit_status_2(tmp_path: Path, tiny_folder: Path) -> None:
    a_file = tmp_path / "digit.png"
    a_file.write_bytes(b"an existing file, not a folder")
    cases = [
        (["train", "--model", "nope", "--data", str(tiny_folder)], "unknown model 'nope'"),
        (["train", "--epochs", "0", "--data", str(tiny_folder)], "--epochs must be at least 1"),
        (["train", "--data", str(tmp_path / "nowhere")], "no such file or folder"),
        (["evaluate", str(tmp_path / "missing.safetensors")], "no model file"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--resume", "--out", str(tmp_path / "no-run")], "--resume: no checkpoint"),
        (["train", "--threads", "-2", "--data", str(tiny_folder)], "-2 is not in the range x>=1"),
        (["train", "--max-train", "0", "--data", str(tiny_folder)], "0 is not in the range x>=1"),
        (["train", "--device", "mps", "--data", str(tiny_folder), "--out", str(tmp_path / "r")],
         "--device mps: no Apple GPU (MPS) is available here; use --device cpu"),
        (["train", "--device", "meta", "--data", str(tiny_folder), "--out", str(tmp_path / "r")],
         "numbre trains on cpu, cuda or mps"),
        (["evaluate", "--png", "heat.jpg"], "heat.jpg does not end in .png, and numbre writes a PNG image"),
        (["data", "show", "-o", "grid.txt", "--data", str(tiny_folder)], "grid.txt does not end in .png"),
        (["train", "--out", str(a_file), "--data", str(tiny_folder)],
         f"--out {a_file}: {a_file} is a file, not a folder; choose another path"),
        (["train", "--out", str(a_file / "run"), "--data", str(tiny_folder)],
         f"--out {a_file / 'run'}: {a_file} is a file, not a folder; choose another path"),
        (["train", "--out", "/proc/numbre-run", "--data", str(tiny_folder)],
         "--out /proc/numbre-run: cannot make that folder ("),
        (["report", str(tmp_path / "no-run")], "no run folder or model file at"),
        (["compare", "--runs", str(a_file / "runs")], f"{a_file} is a file, not a folder"),
        (["compare", "--png", str(a_file / "chart.png")],
         f"--png {a_file}: {a_file} is a file, not a folder"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # a refused device leaves no run folder behind


def test_resume_continues_with_the_runs_own_settings_and_names_what_differs(
        tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run("train", "-m", "numbre-mlp", "--epochs", "1", "--batch-size", "64", "--seed", "3",
                "--out", str(out), "--data", str(tiny_folder), "-q")
    assert first.exit_code == 0, first.output
    config = json.loads((out / "config.json").read_text())
    resumed = run("train", "--resume", "--out", str(out), "--data", str(tiny_folder), "-q")
    assert resumed.exit_code == 0, resumed.output  # no -m, --epochs, --seed: the run's own are used
    assert json.loads((out / "config.json").read_text()) == config
    other = run("train", "--resume", "--out", str(out), "-m", "seed-cnn-a", "--seed", "3",
                "--data", str(tiny_folder), "-q")
    assert other.exit_code == 2
    assert other.output.startswith(f"numbre: error: --resume: {out / 'last.ckpt.safetensors'} was made "
                                   "with different settings (model 'numbre-mlp', not 'seed-cnn-a')")
    assert "--resume alone continues with the run's own settings" in other.output
    assert "Missing key" not in other.output and len(other.output.strip().splitlines()) == 1
    loud = run("train", "--resume", "--out", str(out), "-m", "seed-cnn-a", "--data", str(tiny_folder))
    assert loud.output.startswith("numbre: error: --resume:")  # refused before the data loads

    (out / "model.onnx").write_bytes(b"numbre export's default output, of the old weights")
    again = run("train", "-m", "numbre-mlp", "--epochs", "1", "--out", str(out), "--overwrite",
                "--data", str(tiny_folder), "-q")
    assert again.exit_code == 0, again.output
    assert not (out / "model.onnx").exists()  # --overwrite takes the old run's export with it


def test_python_dash_m_and_version() -> None:
    result = subprocess.run([sys.executable, "-m", "numbre", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"numbre, version {__version__}"


def test_the_command_line_runs_without_the_serve_extra() -> None:
    """`pip install 'numbre[train]'` has no web server: every command but `serve` must still load."""
    blocked = ("import sys\nfor name in ('anyio', 'starlette', 'fastapi', 'uvicorn'): "
               "sys.modules[name] = None\n")
    result = subprocess.run([sys.executable, "-c", blocked + "from numbre.cli import main\nmain()", "models"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "numbre-robust" in result.stdout


def test_evaluate_writes_the_heat_map_only_when_asked_or_into_the_run_folder(
        tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    trained = run("train", "-m", "numbre-mlp", "--epochs", "1", "--data", str(tiny_folder), "--out", str(out),
                  "--threads", "1", "-q")
    assert trained.exit_code == 0, trained.output
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    loose = run("evaluate", str(out / "model.safetensors"), "--data", str(tiny_folder))
    assert loose.exit_code == 0, loose.output
    assert list(work.iterdir()) == [] and "wrote" not in loose.output  # the working folder is left alone
    assert not (out / "confusion.png").exists()
    folder = run("evaluate", str(out), "--data", str(tiny_folder))
    assert folder.exit_code == 0, folder.output
    assert folder.output.endswith(f"\nwrote {out / 'confusion.png'}\n")
    assert Image.open(out / "confusion.png").size[0] > 300 and list(work.iterdir()) == []
    asked = run("evaluate", str(out / "model.safetensors"), "--data", str(tiny_folder), "--png", "heat.png")
    assert asked.exit_code == 0 and (work / "heat.png").is_file(), asked.output
    again = run("train", "-m", "numbre-mlp", "--epochs", "1", "--data", str(tiny_folder), "--out", str(out),
                "-q", "--overwrite")
    assert again.exit_code == 0 and not (out / "confusion.png").exists()  # it was the old run's


def test_training_names_the_recipe_and_the_chosen_settings_not_the_whole_config(
        tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("train", "-m", "numbre-mlp", "--epochs", "1", "--lr", "0.002", "--data", str(tiny_folder),
                 "--out", str(out), "--threads", "1")
    assert result.exit_code == 0, result.output
    assert ("model: numbre-mlp (NUMBRE article MLP, dense 25-256-300), recipe: 20 ep, bs 128, adam 0.001\n"
            f"your settings: --epochs 1 --lr 0.002 --threads 1 (every setting: {out / 'config.json'})\n"
            ) in result.output
    assert "keras_adam" not in result.output and "config:" not in result.output
    assert json.loads((out / "config.json").read_text())["keras_adam"] is True  # the full config is kept

    before = load_model_file(out / "model.safetensors").meta
    resumed = run("train", "--resume", "--out", str(out), "--data", str(tiny_folder))
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.startswith(f"{out} is already complete (1 of 1 epochs); nothing to resume\n")
    assert "training " not in resumed.output and "epoch 1/1" not in resumed.output
    assert f"evaluate it: numbre evaluate {out} --data {tiny_folder}\n" in resumed.output
    assert load_model_file(out / "model.safetensors").meta == before  # nothing trained or written again


def test_the_end_of_training_says_whether_the_model_can_answer_not_a_digit(
        tiny_folder: Path, tmp_path: Path) -> None:
    """A run with a validation split fits the rejection on it and its model turns a scribble away; a run
    without one says plainly that its model never will."""
    from numbre.reading.recognize import Recognizer

    scribble = np.zeros((28, 28), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(6):  # six random straight strokes
        (r0, c0), (r1, c1) = rng.integers(2, 26, (2, 2))
        for t in np.linspace(0, 1, 60):
            scribble[int(r0 + (r1 - r0) * t), int(c0 + (c1 - c0) * t)] = 255
    answers = {}
    for split in ("0.2", "0"):
        out = tmp_path / f"val-{split}"
        result = run("train", "-m", "numbre-mlp", "--epochs", "3", "--batch-size", "32", "--val-split", split,
                     "--data", str(tiny_folder), "--out", str(out), "--threads", "1", "-q")
        assert result.exit_code == 0, result.output
        answers[split] = (result.output, Recognizer.load(out / "model.safetensors").predict(scribble))
    output, prediction = answers["0.2"]
    assert ("not a digit: fitted on 120 validation images; `numbre predict` says it for images the model "
            "does not recognise as one of its classes\n") in output
    assert prediction.digit is None and prediction.reason == "not a digit"
    output, prediction = answers["0"]
    assert ("not a digit: never answered by this model: the run had no validation split to fit the "
            "rejection on; train with --val-split 0.1 for a model that says it\n") in output
    assert prediction.digit is not None  # as the message says: it names a class for anything


def test_the_one_file_program_says_training_needs_the_python_package(monkeypatch, tiny_folder: Path) -> None:
    """The standalone build (PyInstaller sets sys.frozen) has no torch and no pip to install it with."""
    monkeypatch.setitem(sys.modules, "torch", None)  # as in the one-file program, which leaves torch out
    line = run("train", "--data", str(tiny_folder)).output
    assert line == "numbre: error: this command needs PyTorch: pip install 'numbre[train]'\n"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    line = run("train", "--data", str(tiny_folder)).output
    assert line == ("numbre: error: this command needs PyTorch, which the one-file numbre program leaves "
                    "out: run it from the Python package, installed into a Python environment with "
                    "pip install 'numbre[train]'\n")
