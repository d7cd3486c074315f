"""`numbre predict` and `numbre read`: files, folders, globs, standard input, JSON lines, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from numbre.cli import cli
from numbre.data.drawn import drawn_number, glyph


def write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def digit_image(digit: int) -> np.ndarray:
    return 255 - np.asarray(Image.fromarray(glyph(digit)).resize((140, 140), Image.BILINEAR))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for digit in (3, 6, 9):
        write_png(folder / f"digit-{digit}.png", digit_image(digit))
    write_png(folder / "blank.png", np.full((64, 64), 255, np.uint8))
    (folder / "notes.txt").write_text("not an image, and not picked up from the folder")
    return folder


def run(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=stdin)


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_predict_json_lines_for_a_folder(images: Path) -> None:
    result = run("predict", str(images), "--json")
    assert result.exit_code == 0, result.output
    rows = {Path(row["file"]).name: row for row in lines(result.output)}
    assert set(rows) == {"blank.png", "digit-3.png", "digit-6.png", "digit-9.png"}
    for digit in (3, 6, 9):
        row = rows[f"digit-{digit}.png"]
        assert row["digit"] == digit and set(row) == {"file", "digit", "confidence", "probabilities"}
        assert len(row["probabilities"]) == 10 and row["confidence"] == max(row["probabilities"])
    assert rows["blank.png"]["digit"] is None and rows["blank.png"]["reason"] == "empty"


def test_globs_files_and_standard_input(images: Path) -> None:
    result = run("predict", str(images / "digit-[36].png"), str(images / "digit-9.png"), "-", "--json",
                 stdin=(images / "digit-3.png").read_bytes())
    assert result.exit_code == 0, result.output
    assert [(Path(row["file"]).name, row["digit"]) for row in lines(result.output)] == [
        ("digit-3.png", 3), ("digit-6.png", 6), ("digit-9.png", 9), ("-", 3)]


def test_readable_table_without_json(images: Path) -> None:
    result = run("predict", str(images / "digit-6.png"), str(images / "blank.png"))
    assert result.exit_code == 0
    first, second = result.output.splitlines()
    assert first.split("\t")[1] == "6" and first.endswith("%")
    assert second.split("\t")[1:] == ["-", "empty"]


def test_a_bad_file_gets_an_error_line_and_the_rest_still_run(images: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes((images / "digit-3.png").read_bytes()[:80])
    text = tmp_path / "text.png"
    text.write_text("hello")
    result = run("predict", str(broken), str(images / "digit-9.png"), str(tmp_path / "missing.png"),
                 str(text), str(tmp_path / "none-*.png"), "--json")
    assert result.exit_code == 1
    rows = lines(result.output)
    assert [row.get("digit") for row in rows] == [None, 9, None, None, None]
    assert all("error" in row for i, row in enumerate(rows) if i != 1)
    assert "no such file" in rows[2]["error"] and "no file matches" in rows[4]["error"]
    assert "Traceback" not in result.output
    plain = run("predict", str(text))  # the file is named once, not "text.png: text.png is ..."
    assert plain.output == f"numbre: error: {text} is not an image: it looks like text; send the image " \
                           "file itself, not its name, a link or base64\n"


def test_decompression_bomb_is_refused_not_loaded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 Mpx in a few kB
    assert bomb.stat().st_size < 100_000
    result = run("predict", str(bomb), "--json")
    assert result.exit_code == 1
    assert "pixels" in lines(result.output)[0]["error"]


def test_read_numbers(tmp_path: Path) -> None:
    image = drawn_number([glyph(digit) for digit in (8, 0, 5)], np.random.default_rng(3))
    path = write_png(tmp_path / "number.png", image)
    result = run("read", str(path), "--json")
    assert result.exit_code == 0, result.output
    row = lines(result.output)[0]
    assert row["number"] == "805" and [d["digit"] for d in row["digits"]] == [8, 0, 5]
    assert all(len(d["box"]) == 4 and 0.0 <= d["confidence"] <= 1.0 for d in row["digits"])
    table = run("read", str(path))
    assert table.output.split("\t")[1] == "805"


def test_explain_writes_the_stages(images: Path, tmp_path: Path) -> None:
    target = tmp_path / "stages.png"
    result = run("predict", str(images / "digit-3.png"), "--explain", str(target))
    assert result.exit_code == 0, result.output
    with Image.open(target) as picture:
        assert picture.size[0] > 3 * picture.size[1]  # the stages side by side
    folder = tmp_path / "explained"
    assert run("predict", str(images), "--explain", str(folder)).exit_code == 0
    assert sorted(path.name for path in folder.iterdir()) == [
        "blank.explain.png", "digit-3.explain.png", "digit-6.explain.png", "digit-9.explain.png"]


def test_model_option_takes_a_training_model_file(images: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil

    from numbre.model.file import DEFAULT_MODEL

    copy = tmp_path / "mine.safetensors"
    shutil.copy(DEFAULT_MODEL, copy)
    result = run("predict", str(images / "digit-9.png"), "--model", str(copy), "--json")
    assert result.exit_code == 0, result.output
    assert lines(result.output)[0]["digit"] == 9
    missing = run("predict", str(images / "digit-9.png"), "--model", str(tmp_path / "nope.onnx"))
    assert missing.exit_code == 2 and "no ONNX model" in missing.output


def test_an_onnx_file_beside_a_model_file_is_used_only_if_exported_from_its_weights(
        images: Path, tmp_path: Path) -> None:
    """`numbre export` writes MODEL.onnx beside MODEL.safetensors; a run trained again, or a file
    that is not a model at all, must not be answered by an old export that shares its name."""
    import shutil

    import torch

    from numbre.model.export import export_onnx
    from numbre.model.file import DEFAULT_MODEL, INPUT_SPEC, save_model_file
    from numbre.model.network import state_to_numpy
    from numbre.model.onnx_model import DEFAULT_ONNX
    from numbre.model.zoo import create_model
    from numbre.reading.recognize import resolve_onnx

    torch.manual_seed(0)
    other = tmp_path / "other.safetensors"
    save_model_file(other, state_to_numpy(create_model("numbre-fast")),
                    {"architecture": "numbre-fast", "class_names": list("0123456789"), "input": INPUT_SPEC})
    stale = export_onnx(other, tmp_path / "stale.onnx")  # a sound export, of other weights
    mine = tmp_path / "mine.safetensors"
    shutil.copy(DEFAULT_MODEL, mine)

    shutil.copy(DEFAULT_ONNX, tmp_path / "mine.onnx")  # the shipped export of these very weights
    assert resolve_onnx(mine) == tmp_path / "mine.onnx"
    shutil.copy(stale, tmp_path / "mine.onnx")  # retrained since: the export beside is stale
    assert resolve_onnx(mine).parent.name == "onnx"  # exported into the cache instead
    result = run("predict", str(images / "digit-9.png"), "--model", str(mine), "--json")
    assert result.exit_code == 0, result.output
    assert lines(result.output)[0]["digit"] == 9
    assert lines(result.output)[0]["confidence"] > 0.9  # the shipped model's answer, not the random one's

    picture = write_png(tmp_path / "model.png", digit_image(3))
    shutil.copy(DEFAULT_ONNX, tmp_path / "model.onnx")
    refused = run("predict", str(images / "digit-9.png"), "--model", str(picture))
    assert refused.exit_code == 2
    assert f"{picture} is not a readable model file" in refused.output
    assert refused.output.rstrip().endswith("give a model file written by `numbre train` or a run folder")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    shutil.copy(DEFAULT_ONNX, tmp_path / "empty.onnx")
    empty = run("predict", str(images / "digit-9.png"), "--model", str(tmp_path / "empty.safetensors"))
    assert empty.exit_code == 2 and "empty.safetensors is not a readable model file" in empty.output

    folder = tmp_path / "nothing-here"
    folder.mkdir()
    nothing = run("predict", str(images / "digit-9.png"), "--model", str(folder))
    assert nothing.exit_code == 2
    assert nothing.output.strip() == (
        f"numbre: error: {folder} holds no model: neither model.safetensors (a run folder of `numbre "
        "train`) nor model.onnx (`numbre export`); give a run folder, a model file or an ONNX file, "
        "or leave --model out for the shipped model")


def test_a_model_of_other_than_ten_classes_is_refused_for_reading(images: Path, tmp_path: Path) -> None:
    from numbre.model.file import INPUT_SPEC, save_model_file
    from numbre.model.network import state_to_numpy
    from numbre.model.zoo import create_model

    names = [str(label) for label in range(15)]
    path = tmp_path / "fifteen.safetensors"
    save_model_file(path, state_to_numpy(create_model("numbre-fast", 15)),
                    {"architecture": "numbre-fast", "class_names": names, "input": INPUT_SPEC})
    result = run("predict", str(images / "digit-9.png"), "--model", str(path))
    assert result.exit_code == 2
    expected = "tells 15 classes apart (0, 1, 2, 3, ...); reading images needs a model of ten classes"
    assert expected in result.output
    assert "Traceback" not in result.output


def test_png_on_standard_input_through_a_real_pipe(images: Path) -> None:
    import subprocess
    import sys

    data = io.BytesIO((images / "digit-6.png").read_bytes()).getvalue()
    result = subprocess.run([sys.executable, "-m", "numbre", "predict", "-", "--json"], input=data,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digit"] == 6
