"""numbre explain: occlusion saliency, filters, activations, top three, the figure and the command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

from conftest import make_dataset
from numbre.cli import cli
from numbre.data.drawn import drawn_digit, glyph
from numbre.errors import ImageError, NumbreError
from numbre.insight.explain import (
    PNG_KEY,
    explain,
    explanation_figure,
    first_layer_filters,
    occlusion_saliency,
    save_explanation_png,
)
from numbre.model.network import load_torch_model
from numbre.model.probabilities import softmax
from numbre.model.rejection import NOT_A_DIGIT
from numbre.model.zoo import create_model
from numbre.reading.recognize import Recognizer
from numbre.training.config import TrainConfig
from numbre.training.loop import MODEL, Trainer


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def drawn(digit: int, style: str = "paper", variant: int = 0) -> np.ndarray:
    """A handwritten-looking digit as a user's image (RGB, 280x280); `variant` draws another hand."""
    rng = np.random.default_rng(digit if variant == 0 else (digit, variant))
    return drawn_digit(glyph(digit, rng), rng, style=style)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Model files trained for seconds on the synthetic squares: an MLP, and a convolutional model
    with the extra "not a digit" class (it calls every drawn digit "not a digit")."""
    folder = tmp_path_factory.mktemp("models")
    dataset = make_dataset()
    configs = {
        "mlp": TrainConfig(model="numbre-mlp", epochs=1, batch_size=64, threads=1, max_train=300),
        "eleven": TrainConfig(model="numbre-fast", epochs=1, batch_size=64, lr=3e-3, optimizer="adam",
                              val_split=0.25, negatives=0.2, threads=1, max_train=400),
    }
    for name, config in configs.items():
        Trainer(config, dataset, folder / name, progress=False).run()
    return {name: folder / name / MODEL for name in configs}


# --- saliency -----------------------------------------------------------------------------------

@pytest.mark.parametrize("digit", [1, 4, 7])
def test_occluding_the_ink_matters_more_than_the_background(recognizer: Recognizer, digit: int) -> None:
    # A reading to explain must be a sure one: the first hand's 1 has a long flag, read as a 1 at
    # 0.74 before photos' grain was blurred and as a 7 at 0.62 after; the second hand's are clear.
    prediction = recognizer.predict(drawn(digit, variant=1))
    assert prediction.digit == digit and prediction.confidence > 0.9
    saliency = occlusion_saliency(recognizer.model, prediction.image)
    assert saliency.shape == (28, 28) and saliency.dtype == np.float32
    assert saliency.min() >= 0.0 and saliency.max() == pytest.approx(1.0)
    ink, background = saliency[prediction.image >= 0.5], saliency[prediction.image == 0]
    assert ink.mean() > 3 * background.mean(), (ink.mean(), background.mean())


def test_saliency_is_zero_where_no_square_touches_ink(recognizer: Recognizer) -> None:
    image = np.zeros((28, 28), np.float32)
    image[10:18, 12:15] = 1.0  # a bar: squares of 4 reach at most 3 px beyond it
    saliency = occlusion_saliency(recognizer.model, image, patch=4)
    reach = np.zeros((28, 28), bool)
    reach[7:21, 9:18] = True
    assert saliency[~reach].max() == 0.0
    assert saliency[reach].max() == pytest.approx(1.0)
    coarse = occlusion_saliency(recognizer.model, image, patch=7, stride=7)
    assert coarse.shape == (28, 28) and coarse.max() == pytest.approx(1.0)


def test_saliency_of_a_blank_image_is_all_zero(recognizer: Recognizer) -> None:
    saliency = occlusion_saliency(recognizer.model, np.zeros((28, 28), np.float32))
    assert saliency.dtype == np.float32 and not saliency.any()


def test_saliency_refuses_unprepared_images_and_bad_squares(recognizer: Recognizer) -> None:
    with pytest.raises(ImageError, match=r"28x28 image, got shape \(280, 280\); run it through"):
        occlusion_saliency(recognizer.model, np.zeros((280, 280), np.float32))
    with pytest.raises(NumbreError, match="got patch 0, stride 1"):
        occlusion_saliency(recognizer.model, np.zeros((28, 28), np.float32), patch=0)
    with pytest.raises(NumbreError, match="got patch 4, stride 5"):
        occlusion_saliency(recognizer.model, np.zeros((28, 28), np.float32), patch=4, stride=5)


# --- inside the network ---------------------------------------------------------------------------

def test_folded_filters_are_the_weights_the_first_convolution_applies_to_pixels() -> None:
    """A 3x3 kernel on the 2x2-unshuffled image is a 6x6 kernel moved 2 px at a time on the pixels."""
    torch.manual_seed(0)
    network = create_model("numbre-fast").eval()  # pixel-unshuffle stem, random weights
    layers = list(network)
    first_conv = next(index for index, layer in enumerate(layers) if isinstance(layer, nn.Conv2d))
    filters, total, note = first_layer_filters(network)
    conv = layers[first_conv]
    assert total == conv.out_channels == len(filters)
    assert filters.shape[1:] == (6, 6) and "6x6" in note
    pixels = layers[0](torch.rand(1, 1, 28, 28))  # the model's own input normalisation
    with torch.inference_mode():
        expected = conv(nn.Sequential(*layers[1:first_conv])(pixels))
        folded = F.conv2d(pixels, torch.from_numpy(filters)[:, None], stride=2, padding=2)
    assert torch.allclose(folded, expected, atol=1e-4)


def test_an_mlps_filters_are_its_first_layers_28x28_templates(tiny_models) -> None:
    network, _ = load_torch_model(tiny_models["mlp"])
    filters, total, note = first_layer_filters(network)
    dense = next(layer for layer in network.modules() if isinstance(layer, nn.Linear))
    assert total == 25 and filters.shape == (25, 28, 28) and "25 units" in note
    assert np.array_equal(filters, dense.weight.detach().numpy().reshape(25, 28, 28))


# --- the explanation and its figure ---------------------------------------------------------------

def panels(figure) -> dict[str, list]:
    """The figure's axes grouped by the part they show."""
    groups: dict[str, list] = {}
    for axis in figure.axes:
        groups.setdefault(axis.get_label(), []).append(axis)
    return groups


def bars_top_down(axis) -> list[tuple[str, float]]:
    """(label, bar length) of a horizontal bar chart, read from the top down as a person does."""
    labels = {round(y): label.get_text() for y, label in zip(axis.get_yticks(), axis.get_yticklabels(),
                                                               strict=True)}
    bars = sorted(((bar.get_y() + bar.get_height() / 2, bar.get_width()) for bar in axis.patches),
                  reverse=True)
    return [(labels[round(y)], width) for y, width in bars]


def test_the_shipped_models_figure_shows_every_part_with_the_right_labels(recognizer, tmp_path) -> None:
    image = drawn(3)
    explanation = explain(image)
    prediction = recognizer.predict(image)
    network, model_file = load_torch_model()
    convs = [layer for layer in network.modules() if isinstance(layer, nn.Conv2d)]

    # the data: the recognizer's own answer and calibrated probabilities, the one preprocessing
    assert explanation.model == model_file.architecture and explanation.answer == "3"
    assert np.array_equal(explanation.image, prediction.image)
    logits = recognizer.model.logits(prediction.image[None])[0]
    calibrated = softmax(logits[None] / recognizer.rejector.temperature)[0]
    order = np.argsort(-calibrated)[:3]
    assert [name for name, _ in explanation.top] == [model_file.class_names[i] for i in order]
    assert [p for _, p in explanation.top] == pytest.approx(calibrated[order].tolist(), abs=1e-6)
    assert np.array_equal(explanation.saliency, occlusion_saliency(recognizer.model, prediction.image))

    # the figure: input + saliency + one per filter + one per convolution + top 3
    figure = explanation_figure(explanation)
    parts = panels(figure)
    assert len(figure.axes) == 2 + convs[0].out_channels + len(convs) + 1
    assert {name: len(axes) for name, axes in parts.items()} == {
        "input": 1, "saliency": 1, "top": 1, "filter": convs[0].out_channels, "activation": len(convs)}
    assert np.array_equal(parts["input"][0].images[0].get_array(), prediction.image)
    assert np.array_equal(parts["saliency"][0].images[1].get_array(), explanation.saliency)
    top = parts["top"][0]
    names = [name for name, _ in explanation.top]
    assert top.get_title() == "top 3: " + ", ".join(names)
    assert bars_top_down(top) == [(name, pytest.approx(p)) for name, p in explanation.top]
    assert "'3'" in parts["saliency"][0].get_title()
    with torch.inference_mode():
        x = torch.from_numpy(prediction.image[None, None])
        shapes = []
        for layer in network:
            x = layer(x)
            if isinstance(layer, nn.ReLU) and x.ndim == 4:  # after a convolution, not a dense layer
                shapes.append(tuple(x.shape[1:]))
    for axis, shape in zip(parts["activation"], shapes, strict=True):
        assert f"{shape[0]} maps {shape[1]}x{shape[2]}" in axis.get_title()
    figure.clf()

    # the PNG: the figure at 100 dpi, with what it shows recorded in its text chunk
    path = save_explanation_png(explanation, tmp_path / "three.png")
    with Image.open(path) as picture:
        assert json.loads(picture.text[PNG_KEY]) == explanation.summary()
        pixels = np.asarray(picture.convert("L"))
    assert pixels.shape[1] == 1200 and pixels.std() > 20  # a page of pictures, not a blank canvas


def test_a_model_with_a_not_a_digit_class_names_it(tiny_models) -> None:
    explanation = explain(drawn(5), tiny_models["eleven"])
    assert explanation.answer == NOT_A_DIGIT
    assert explanation.top[0][0] == NOT_A_DIGIT
    assert sum(p for _, p in explanation.top) <= 1.0 + 1e-9
    top = panels(explanation_figure(explanation))["top"][0]
    assert bars_top_down(top)[0] == (NOT_A_DIGIT, pytest.approx(explanation.top[0][1]))
    assert top.get_title().startswith(f"top 3: {NOT_A_DIGIT}, ")


def test_an_mlp_has_templates_and_no_activation_panels(tiny_models, tmp_path) -> None:
    explanation = explain(drawn(2), tiny_models["mlp"])
    assert explanation.activations == ()
    figure = explanation_figure(explanation)
    parts = panels(figure)
    assert len(parts["filter"]) == 25 and "activation" not in parts
    assert len(figure.axes) == 2 + 25 + 0 + 1
    assert "multilayer perceptron" in figure.subfigs[2].get_suptitle()
    figure.clf()


def test_blank_and_several_digit_images_are_refused_with_the_reason() -> None:
    with pytest.raises(ImageError, match="no digit found"):
        explain(np.full((100, 100), 255, np.uint8))
    two = np.concatenate([glyph(4), glyph(2)], axis=1)
    with pytest.raises(ImageError, match="several digits; explain looks at one"):
        explain(two)


# --- the command ----------------------------------------------------------------------------------

def test_explain_writes_the_png_beside_and_prints_the_top_three(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(drawn(7)).save("seven.png")
    result = run("explain", "seven.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    explanation = explain("seven.png")
    assert lines[0] == f"seven.png: {explanation.model} answers 7"
    assert [line.split()[0] for line in lines[1:4]] == [name for name, _ in explanation.top]
    assert lines[1].split()[1] == f"{explanation.top[0][1]:.2%}"
    assert lines[4].startswith("wrote seven.explain.png (input, saliency, ")
    with Image.open(tmp_path / "seven.explain.png") as picture:
        assert json.loads(picture.text[PNG_KEY])["answer"] == "7"


def test_explain_with_a_model_file_and_an_output_path(tiny_models, tmp_path) -> None:
    Image.fromarray(drawn(5)).save(tmp_path / "five.png")
    out = tmp_path / "pictures" / "five.png"
    out.parent.mkdir()
    result = run("explain", str(tmp_path / "five.png"), "--model", str(tiny_models["eleven"]), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("numbre-fast answers not a digit")
    with Image.open(out) as picture:
        summary = json.loads(picture.text[PNG_KEY])
    assert summary["model"] == "numbre-fast" and summary["top"][0]["class"] == NOT_A_DIGIT
    assert [layer["layer"] for layer in summary["activations"]] == ["conv 1 + ReLU", "conv 2 + ReLU",
                                                                    "conv 3 + ReLU"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["missing.png"], "no such file: missing.png"),
    (["blank.png"], "no digit found"),
    (["seven.png", "--model", "model.onnx"], "is an ONNX export: it has no layers to look inside"),
    (["seven.png", "--model", "nowhere.safetensors"], "no model file at nowhere.safetensors"),
])
def test_explain_errors_are_one_line_with_exit_status_2(tmp_path, monkeypatch, arguments, message) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(drawn(7)).save("seven.png")
    Image.fromarray(np.zeros((50, 50), np.uint8)).save("blank.png")
    result = run("explain", *arguments)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("numbre: error: ")
    assert not list(tmp_path.glob("*.explain.png"))


def test_explain_without_the_training_extra_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(drawn(7)).save("seven.png")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in an inference-only install
    result = run("explain", "seven.png")
    assert result.exit_code == 2
    assert result.stderr == ("numbre: error: explain needs PyTorch and matplotlib: "
                             "pip install 'numbre[train]'\n")
