"""The Keras-style layer table: measured shapes, parameter counts, totals, and `numbre summary`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from numbre.cli import cli
from numbre.model.file import save_model_file
from numbre.model.network import state_to_numpy
from numbre.model.summary import format_summary, summarize
from numbre.model.zoo import count_parameters, create_model, list_models

# Keras' summary() totals for the four classic models (PRODUCT.md).
KERAS_TOTALS = {"seed-cnn-a": "34,826", "numbre-mlp": "106,391", "mlp-3-hidden": "270,218",
                "seed-cnn-b": "555,158"}


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("name", list_models())
def test_rows_add_up_to_the_parameter_count_of_every_registered_model(name: str) -> None:
    model = create_model(name)
    table = summarize(model, name)
    assert table.total == count_parameters(model)
    assert sum(row.parameters for row in table.rows) == table.total
    assert table.trainable == table.total and table.non_trainable == 0
    assert table.rows[-1].output_shape == (None, 10)
    text = format_summary(table)
    assert f"Total params: {count_parameters(model):,}" in text
    assert text.splitlines()[0] == f'Model: "{name}"'


@pytest.mark.parametrize(("name", "total"), KERAS_TOTALS.items())
def test_classic_models_show_keras_totals(name: str, total: str) -> None:
    assert f"Total params: {total}\n" in format_summary(summarize(create_model(name), name))


def test_seed_cnn_a_layers_shapes_and_counts_are_keras_ones_channels_first() -> None:
    table = summarize(create_model("seed-cnn-a"), "seed-cnn-a")
    assert [(row.name, row.kind, row.output_shape, row.parameters) for row in table.rows] == [
        ("conv2d", "Conv2d", (None, 32, 26, 26), 320),
        ("max_pool2d", "MaxPool2d", (None, 32, 13, 13), 0),
        ("relu", "ReLU", (None, 32, 13, 13), 0),
        ("conv2d_1", "Conv2d", (None, 64, 11, 11), 18_496),
        ("max_pool2d_1", "MaxPool2d", (None, 64, 5, 5), 0),
        ("relu_1", "ReLU", (None, 64, 5, 5), 0),
        ("flatten", "Flatten", (None, 1600), 0),
        ("keras_dropout", "KerasDropout", (None, 1600), 0),  # dropout drawn as TensorFlow draws it
        ("linear", "Linear", (None, 10), 16_010),
    ]
    lines = format_summary(table).splitlines()
    assert set(lines[1]) == {"_"} and set(lines[3]) == {"="} and len(lines[1]) == len(lines[3])


def test_the_printed_table_writes_shapes_in_the_order_its_header_names_channels_last_as_keras() -> None:
    """Keras' tutorial tables read (None, 26, 26, 32) for the first convolution: numbre prints the same,
    and its header says the order; the JSON keeps PyTorch's channels-first order and says that."""
    table = summarize(create_model("seed-cnn-a"), "seed-cnn-a")
    lines = format_summary(table).splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "(N,", "H,", "W,", "C)", "Param", "#"]
    rows = {line.split()[0]: " ".join(line.split()[2:-1]) for line in lines[4:-5] if line.strip()}
    assert rows["conv2d"] == "(None, 26, 26, 32)"
    assert rows["max_pool2d_1"] == "(None, 5, 5, 64)"
    assert rows["flatten"] == "(None, 1600)" and rows["linear"] == "(None, 10)"
    result = run("summary", "seed-cnn-a", "--json")
    listed = json.loads(result.output)
    assert listed["shape_order"].startswith("channels first (None, C, H, W)")
    assert listed["layers"][0]["output_shape"] == [None, 32, 26, 26]


def test_batch_norm_statistics_are_buffers_and_the_model_is_left_as_it_was() -> None:
    model = create_model("numbre-robust", num_classes=11).train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    table = summarize(model)
    assert model.training
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in before.items())
    assert table.rows[-1].output_shape == (None, 11)
    batch_norm_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert table.buffers == 2 * batch_norm_channels  # running mean and variance
    expected = f"Buffers (batch-norm running statistics, not parameters): {table.buffers:,}"
    assert expected in format_summary(table).splitlines()


def test_a_layer_called_twice_is_listed_twice_and_counted_once() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flatten, self.shared, self.head = nn.Flatten(), nn.Linear(784, 784), nn.Linear(784, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.shared(self.shared(self.flatten(x))))

    model = Twice()
    model.head.weight.requires_grad_(False)
    table = summarize(model)
    assert [row.parameters for row in table.rows] == [0, 784 * 785, 0, 3 * 785]
    assert table.total == count_parameters(model)
    assert table.non_trainable == 3 * 784
    assert "Non-trainable params: 2,352" in format_summary(table)


def test_cli_prints_the_table_for_a_name_a_model_file_and_as_json(tmp_path: Path) -> None:
    result = run("summary", "seed-cnn-b")
    assert result.exit_code == 0, result.output
    assert "Total params: 555,158" in result.output
    assert " linear_1 (Linear)" in result.output

    model = create_model("numbre-fast", num_classes=11)
    path = tmp_path / "fast.safetensors"
    save_model_file(path, state_to_numpy(model),
                    {"architecture": "numbre-fast", "class_names": [*"0123456789", "not a digit"]})
    result = run("summary", str(path), "--json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    assert table["total"] == count_parameters(model)
    assert table["layers"][-1] == {"name": "linear", "type": "Linear", "output_shape": [None, 11],
                                   "parameters": 576 * 11 + 11}
    assert table["title"] == "numbre-fast"


def test_summary_of_a_name_counts_what_numbre_models_counts() -> None:
    """numbre-robust learns "not a digit": both commands show its 11-output head."""
    listed = next(line.split() for line in run("models").output.splitlines()
                  if line.startswith("numbre-robust "))
    result = run("summary", "numbre-robust", "--json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    counts = [cell for cell in listed if cell.replace(",", "").isdigit()]  # parameters, then MACs
    assert f"{table['total']:,}" == counts[0]
    assert table["layers"][-1]["output_shape"] == [None, 11]
    fast = json.loads(run("summary", "numbre-fast", "--json").output)
    assert fast["layers"][-1]["output_shape"] == [None, 10]


def test_cli_names_the_choices_for_an_unknown_model() -> None:
    result = run("summary", "no-such-model")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("numbre: error: no-such-model is neither a model file, a run folder nor a "
                               "registered model")
    assert "seed-cnn-a" in lines[0]
