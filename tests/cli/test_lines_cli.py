"""`numbre train-lines` writes a run folder whose ONNX file reads lines; `export-lines` re-exports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from numbre.cli import cli
from numbre.model.line_model import LineModel


def test_train_lines_writes_weights_onnx_and_history_and_export_lines_reexports(tiny_folder: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train-lines", "--out", str(out), "--lines", "24", "--check", "6",
                                      "--epochs", "2", "--batch", "8", "--workers", "1", "--threads", "1",
                                      "--synthetic-variation", "1.5", "--data", str(tiny_folder)])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2: CTC loss" in result.output and f"wrote {out / 'line-model.onnx'}" in result.output
    history = json.loads((out / "history.json").read_text())
    # A line whose ink the reading pipeline finds empty (a speck-sized digit) is left out.
    assert 20 <= history["lines"] <= 24 and history["epochs"] == 2 and len(history["loss"]) == 2
    assert history["seed"] == 0 and str(tiny_folder) in history["data"]
    assert history["synthetic_variation"] == 1.5
    model = LineModel.load(out / "line-model.onnx")
    assert model.meta["lines"] == history["lines"] and model.meta["kind"] == "ctc-line"
    assert model.meta["synthetic_variation"] == 1.5
    assert model.logits(np.zeros((32, 64), np.float32)).shape == (16, 12)
    again = tmp_path / "again.onnx"
    result = CliRunner().invoke(cli, ["export-lines", str(out / "line-model.pt"), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert LineModel.load(again).meta["final_loss"] == history["loss"][-1]


def test_train_lines_builds_the_network_it_is_asked_for_and_records_it(tiny_folder: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "wide"
    result = CliRunner().invoke(cli, ["train-lines", "--out", str(out), "--lines", "16", "--check", "0",
                                      "--epochs", "1", "--batch", "8", "--workers", "1", "--threads", "1",
                                      "--widths", "8,16,24,32", "--features", "40", "--bf16",
                                      "--data", str(tiny_folder)])
    assert result.exit_code == 0, result.output
    model = LineModel.load(out / "line-model.onnx")
    assert model.meta["widths"] == [8, 16, 24, 32] and model.meta["features"] == 40 and model.meta["bf16"]
    assert model.logits(np.zeros((32, 64), np.float32)).shape == (16, 12)
    import torch

    weights = torch.load(out / "line-model.pt", weights_only=True)
    assert weights["widths"] == (8, 16, 24, 32) and weights["features"] == 40
    assert weights["state"]["classify.weight"].shape == (12, 40, 1, 1)


def test_train_lines_refuses_widths_that_are_not_four_channel_counts(tmp_path: Path) -> None:
    for text in ("16,32,48", "a,b,c,d", "16,32,48,0"):
        result = CliRunner().invoke(cli, ["train-lines", "--out", str(tmp_path / "x"), "--widths", text])
        assert result.exit_code == 2, result.output
        assert f"'{text}' is not four channel counts from 1 to 512" in result.output
        assert "Traceback" not in result.output and not (tmp_path / "x").exists()


def test_export_lines_of_another_file_is_a_one_line_error(tmp_path: Path) -> None:
    other = tmp_path / "notes.pt"
    other.write_text("not weights")
    result = CliRunner().invoke(cli, ["export-lines", str(other), "--out", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2
    assert result.output.startswith(f"numbre: error: {other} is not a line-model.pt of numbre train-lines")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()


def test_read_picks_its_line_model_and_a_missing_one_is_a_one_line_error(tmp_path: Path) -> None:
    from PIL import Image

    from numbre.data.drawn import drawn_number, glyph

    rng = np.random.default_rng(7)
    image = drawn_number([glyph(digit, rng) for digit in (4, 0, 9)], rng)
    path = tmp_path / "409.png"
    Image.fromarray(image).save(path)
    for choice in ("shipped", "none"):
        result = CliRunner().invoke(cli, ["read", "--json", "--line-model", choice, str(path)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["number"] == "409", (choice, result.output)
    missing = tmp_path / "nowhere.onnx"
    result = CliRunner().invoke(cli, ["read", "--line-model", str(missing), str(path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(missing) in result.output


def test_a_line_squeezed_too_narrow_for_its_labels_is_left_out_not_fatal(tiny_folder: Path,
                                                                         monkeypatch) -> None:
    """Many overlapping digits on a steep baseline can come out narrower than CTC needs (two frames
    a label); such a line is dropped while the lines are made, as blank ones are, instead of stopping
    `train-lines` after the lines were made."""
    import numbre.data.lines as lines_module
    from numbre.data.lines import Line
    from numbre.reading.training_lines import prepared_lines

    wide = np.full((60, 200, 3), 255, np.uint8)
    wide[20:44, 30:170] = 0  # one bar 140 px long, 24 px tall: about 40 frames of the network
    narrow = wide.copy()

    def two_lines(count, seed, images, labels, *, start=0, junk_share=None, variation=0.0):
        made = [Line(wide, (1, 2, 3), "apart", "test"), Line(narrow, (1,) * 30, "overlapping", "test")]
        return made[start:start + count]

    monkeypatch.setattr(lines_module, "make_lines", two_lines)
    images, labels = prepared_lines(2, 0, 1, str(tiny_folder))
    assert labels == [(1, 2, 3)] and len(images) == 1
