"""On the real MNIST: a short training run reaches a floor, and the shipped model keeps its figures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from numbre.cli import cli
from numbre.data.known import MNIST
from numbre.insight.evaluate import evaluate_onnx
from numbre.model.file import DEFAULT_MODEL, load_model_file
from numbre.model.metrics import compute_metrics
from numbre.model.network import load_torch_model, predict_logits, to_tensors
from numbre.model.onnx_model import DEFAULT_ONNX, OnnxModel
from numbre.training.config import TrainConfig
from numbre.training.loop import Trainer

pytestmark = pytest.mark.mnist
MNIST_CHECKSUM = "d95a98cc28a86f51550b5a018e5afe286d09583aa2e7046d8fde47a59d1cb189"


def test_the_real_data_is_the_known_mnist(mnist) -> None:
    assert mnist.name == MNIST.name and mnist.checksum == MNIST_CHECKSUM
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_test.shape == (10_000, 28, 28)


def test_one_short_epoch_of_the_fast_recipe_learns_mnist(mnist, tmp_path) -> None:
    config = TrainConfig(model="numbre-fast", epochs=1, batch_size=128, optimizer="sgd", lr=0.1,
                         schedule="onecycle", warmup_start=0.0, warmup_fraction=0.15,
                         weight_decay=5e-4, drop_last=True, bf16=True, max_train=12_000)
    result = Trainer(config, mnist, tmp_path, progress=False).run()
    assert result.test.count == 10_000
    assert result.test.accuracy >= 0.96, result.test.summary()


def test_the_shipped_model_reaches_its_recorded_accuracy(mnist) -> None:
    network, model_file = load_torch_model()
    assert model_file.path == DEFAULT_MODEL
    meta = model_file.meta
    assert meta["command"].startswith("numbre train")
    assert meta["data"]["checksum"] == MNIST_CHECKSUM
    x_test, _ = to_tensors(mnist.x_test, mnist.y_test, next(network.parameters()).device)
    metrics = compute_metrics(predict_logits(network, x_test).numpy(), mnist.y_test,
                              model_file.class_names)
    assert metrics.accuracy >= 0.996
    assert metrics.accuracy == pytest.approx(meta["test"]["accuracy"], abs=2e-4)


def test_the_shipped_onnx_model_is_the_shipped_weights_and_as_accurate(mnist) -> None:
    """The inference install answers with the ONNX file: it must come from the shipped weights
    and keep the 99.6% floor (it is int8: a few answers may differ from the float model's)."""
    onnx_model = OnnxModel.load(DEFAULT_ONNX)
    assert onnx_model.meta["source_weights_sha256"] == load_model_file().meta["weights_sha256"]
    metrics = evaluate_onnx(onnx_model, mnist)
    assert metrics.count == 10_000
    assert metrics.accuracy >= 0.996, metrics.summary()
    assert abs(metrics.accuracy - onnx_model.meta["test"]["accuracy"]) <= 0.001


def test_evaluate_without_a_model_evaluates_the_shipped_one(mnist, monkeypatch) -> None:
    from conftest import real_cache

    monkeypatch.setenv("NUMBRE_CACHE", real_cache())
    result = CliRunner().invoke(cli, ["evaluate", "--json", "--no-png"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["model"] == str(DEFAULT_MODEL) and figures["accuracy"] >= 0.996
    assert figures["data_checksum"] == MNIST_CHECKSUM
    assert sum(map(sum, figures["confusion_matrix"])) == 10_000
    assert load_model_file().meta["test"]["accuracy"] == pytest.approx(figures["accuracy"], abs=2e-4)
