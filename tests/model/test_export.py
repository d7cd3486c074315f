"""ONNX export: every registered model exports, ONNX Runtime agrees with torch, bad files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from modelhelpers import untrained_model_file
from numbre.cli import cli
from numbre.errors import ModelFileError, NumbreError
from numbre.model.export import export_onnx
from numbre.model.network import load_torch_model
from numbre.model.onnx_model import OnnxModel
from numbre.model.zoo import list_models

DIGITS = [str(digit) for digit in range(10)]


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_exports_and_runtimes_agree(name: str, tmp_path: Path) -> None:
    source = untrained_model_file(name, tmp_path)
    onnx_path = export_onnx(source, tmp_path / f"{name}.onnx")
    runtime = OnnxModel.load(onnx_path, threads=1)
    network, _ = load_torch_model(source)
    images = np.random.default_rng(1).random((37, 28, 28), dtype=np.float32)  # an odd batch size
    with torch.inference_mode():
        expected = network(torch.from_numpy(images[:, None])).numpy()
    assert np.abs(runtime.logits(images) - expected).max() < 1e-4
    assert runtime.meta["architecture"] == name and runtime.class_names == DIGITS
    assert runtime.meta["test"] == {"accuracy": 0.5}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    return export_onnx(untrained_model_file("numbre-fast", folder), folder / "model.onnx")


def test_changed_weights_are_refused(exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    tensor = max(proto.graph.initializer, key=lambda item: len(item.raw_data))
    data = bytearray(tensor.raw_data)
    data[0] ^= 0xFF
    tensor.raw_data = bytes(data)
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError, match="modified after export"):
        OnnxModel.load(changed)


@pytest.mark.parametrize(("make", "message"), [
    (lambda data: data[: len(data) // 2], "not an ONNX file"),
    (lambda data: b"", "not an ONNX file|numbre metadata"),
    (lambda data: b"\x00\xff" * 500, "not an ONNX file"),
])
def test_damaged_files_are_refused_with_a_clear_error(exported: Path, tmp_path: Path, make, message) -> None:
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(make(exported.read_bytes()))
    with pytest.raises(ModelFileError, match=message):
        OnnxModel.load(damaged)


def test_foreign_onnx_and_other_formats_are_refused(exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError, match="not a numbre model"):
        OnnxModel.load(foreign)
    with pytest.raises(ModelFileError, match="no ONNX model at"):
        OnnxModel.load(tmp_path / "missing.onnx")
    safetensors_file = untrained_model_file("numbre-mlp", tmp_path)
    with pytest.raises(ModelFileError):
        OnnxModel.load(safetensors_file)


def test_export_command_writes_beside_the_model(tmp_path: Path) -> None:
    source = untrained_model_file("numbre-fast", tmp_path)
    result = CliRunner().invoke(cli, ["export", str(source)])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime matches torch" in result.output
    assert OnnxModel.load(source.with_suffix(".onnx")).meta["architecture"] == "numbre-fast"
    shipped = CliRunner().invoke(cli, ["export"])
    assert shipped.exit_code == 2 and "needs --out" in shipped.output


def test_int8_export_keeps_the_answers_of_a_trained_model(tiny, tmp_path: Path) -> None:
    from numbre.training.config import TrainConfig
    from numbre.training.loop import Trainer

    config = TrainConfig(model="numbre-fast", epochs=3, batch_size=32, optimizer="sgd", lr=0.05, threads=1)
    Trainer(config, tiny, tmp_path / "run", progress=False).run()
    calibration = tiny.x_train[:200].astype(np.float32) / 255
    quantized = export_onnx(tmp_path / "run", tmp_path / "int8.onnx", calibration=calibration)
    runtime = OnnxModel.load(quantized)
    assert "int8" in runtime.meta["quantized"] and "7-bit weights" in runtime.meta["quantized"]
    graph = onnx.load(str(quantized)).graph
    assert any(node.op_type.startswith("QLinear") for node in graph.node)
    # 7-bit weights: u8 x s8 products summed in pairs (255 * 64 * 2) stay inside int16 without VNNI
    weights = [onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer
               if tensor.data_type == onnx.TensorProto.INT8]
    assert weights and all(np.abs(w).max() <= 64 for w in weights)
    network, _ = load_torch_model(tmp_path / "run")
    images = tiny.x_test.astype(np.float32) / 255
    with torch.inference_mode():
        expected = network(torch.from_numpy(images[:, None])).numpy().argmax(1)
    assert (runtime.logits(images).argmax(1) == expected).mean() >= 0.97


def test_an_export_that_fails_its_check_writes_nothing_and_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    import numbre.model.export as export_module

    source = untrained_model_file("numbre-fast", tmp_path)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")
    monkeypatch.setattr(export_module, "MAX_LOGIT_DIFFERENCE", -1.0)  # no export can pass
    with pytest.raises(NumbreError, match=r"so .*model\.onnx was not written"):
        export_onnx(source, out)
    monkeypatch.undo()
    strict = functools.partial(export_module.check_int8_export, least_agreement=1.01)
    monkeypatch.setattr(export_module, "check_int8_export", strict)
    calibration = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    with pytest.raises(NumbreError, match=r"agrees with the float model on only .*leave out --int8"):
        export_onnx(source, out, calibration=calibration)
    assert out.read_bytes() == b"the previous export"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx", "numbre-fast.safetensors"]


def test_export_to_a_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    source = untrained_model_file("numbre-fast", tmp_path)
    result = CliRunner().invoke(cli, ["export", str(source), "-o", str(source / "m.onnx")])
    assert result.exit_code == 2, result.output
    assert result.output == (f"numbre: error: could not write {source / 'm.onnx'}: {source} is a file, "
                             "not a folder; choose another path\n")
    assert "Traceback" not in result.output


def test_evaluate_runs_an_onnx_file_as_the_inference_install_does(tiny_folder: Path, tmp_path: Path) -> None:
    """`numbre evaluate model.onnx` scores the ONNX Runtime answers: the same as torch's for a
    float export."""
    source = untrained_model_file("numbre-fast", tmp_path)
    onnx_path = export_onnx(source, tmp_path / "model.onnx")
    runner = CliRunner()
    figures = {}
    for model in (source, onnx_path):
        result = runner.invoke(cli, ["evaluate", str(model), "--data", str(tiny_folder), "--json",
                                     "--no-png"])
        assert result.exit_code == 0, result.output
        figures[model.suffix] = json.loads(result.output)
    assert figures[".onnx"]["model"] == str(onnx_path)
    assert figures[".onnx"]["architecture"] == "numbre-fast"
    assert sum(map(sum, figures[".onnx"]["confusion_matrix"])) == 200
    assert figures[".onnx"]["confusion_matrix"] == figures[".safetensors"]["confusion_matrix"]
    assert figures[".onnx"]["loss"] == pytest.approx(figures[".safetensors"]["loss"], abs=1e-4)
