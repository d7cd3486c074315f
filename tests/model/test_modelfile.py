"""Model files: round trip, and clear refusals of truncated, tampered and foreign files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from numbre.errors import ModelFileError
from numbre.model.file import load_model_file, save_model_file
from numbre.model.network import build_model, load_torch_model, state_to_numpy
from numbre.model.zoo import create_model

META = {"architecture": "seed-cnn-b", "class_names": [str(d) for d in range(10)]}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model("seed-cnn-b").eval()
    path = tmp_path / "model.safetensors"
    save_model_file(path, state_to_numpy(model), META)
    return path, model


def test_round_trip_gives_the_same_predictions(saved) -> None:
    path, model = saved
    loaded, model_file = load_torch_model(path)
    images = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
    assert model_file.architecture == "seed-cnn-b"
    assert len(model_file.meta["weights_sha256"]) == 64
    assert not list(path.parent.glob("*.part"))


def test_truncated_file_is_refused(saved) -> None:
    path, _ = saved
    data = path.read_bytes()
    for cut in (0, 5, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a readable model file"):
            load_model_file(path)


def test_tampered_weights_are_refused(saved) -> None:
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # a byte inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="modified after it was written"):
        load_model_file(path)


def test_foreign_and_damaged_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a numbre model"):
        load_model_file(foreign)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, I am not a model")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model_file(text)
    bad_json = tmp_path / "bad.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(bad_json), metadata={"numbre": "{oops"})
    with pytest.raises(ModelFileError, match="damaged metadata"):
        load_model_file(bad_json)
    huge_header = tmp_path / "huge.safetensors"
    huge_header.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model_file(huge_header)
    with pytest.raises(ModelFileError, match="no model file"):
        load_model_file(tmp_path / "missing.safetensors")


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.safetensors"
    save_model_file(path, state_to_numpy(create_model("seed-cnn-a")), META)  # claims seed-cnn-b
    with pytest.raises(ModelFileError, match="does not fit architecture 'seed-cnn-b'"):
        load_torch_model(path)
    unknown = tmp_path / "unknown.safetensors"
    save_model_file(unknown, state_to_numpy(create_model("seed-cnn-a")), {**META, "architecture": "nope"})
    with pytest.raises(ModelFileError, match="unknown model 'nope'"):
        build_model(load_model_file(unknown))


def test_metadata_is_readable_without_torch_structures(saved) -> None:
    path, _ = saved
    # The header is plain JSON: an 8-byte little-endian length, then the JSON text.
    data = path.read_bytes()
    header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
    meta = json.loads(header["__metadata__"]["numbre"])
    assert meta["architecture"] == "seed-cnn-b" and meta["format"] == "numbre-model"
