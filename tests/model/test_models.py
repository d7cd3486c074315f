"""Every registered model is tested by being registered: shapes, gradients, counts, recipes."""

from __future__ import annotations

import pytest
import torch

from numbre.errors import NumbreError
from numbre.model.zoo import count_macs, count_parameters, create_model, get_entry, list_models

# Parameter counts Keras' summary() gives for the four classic models (PRODUCT.md).
KERAS_PARAMETERS = {"seed-cnn-a": 34_826, "numbre-mlp": 106_391, "mlp-3-hidden": 270_218,
                    "seed-cnn-b": 555_158}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes_and_finite(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    images = torch.rand(8, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (8, 10)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_class_count_and_recipe(name: str) -> None:
    assert create_model(name, num_classes=7)(torch.rand(2, 1, 28, 28)).shape == (2, 7)
    recipe = get_entry(name).recipe
    assert recipe.epochs >= 1 and recipe.batch_size >= 1 and recipe.lr > 0
    assert count_macs(create_model(name)) > count_parameters(create_model(name)) // 2


@pytest.mark.parametrize(("name", "expected"), KERAS_PARAMETERS.items())
def test_classic_models_match_keras_parameter_counts(name: str, expected: int) -> None:
    assert count_parameters(create_model(name)) == expected


def test_classic_recipes_are_the_articles() -> None:
    assert (get_entry("seed-cnn-a").recipe.epochs, get_entry("seed-cnn-a").recipe.batch_size,
            get_entry("seed-cnn-a").recipe.val_split) == (5, 32, 0.25)
    assert (get_entry("numbre-mlp").recipe.epochs, get_entry("numbre-mlp").recipe.batch_size) == (20, 128)
    assert (get_entry("mlp-3-hidden").recipe.epochs, get_entry("mlp-3-hidden").recipe.batch_size) == (10, 32)
    assert (get_entry("seed-cnn-b").recipe.epochs, get_entry("seed-cnn-b").recipe.batch_size) == (10, 200)


def test_macs_of_a_known_model() -> None:
    # seed-cnn-b: conv 24*24*30*25 + dense 4320*128 + 128*10
    assert count_macs(create_model("seed-cnn-b")) == 24 * 24 * 30 * 25 + 4320 * 128 + 128 * 10


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(NumbreError, match=r"unknown model 'nope'.*seed-cnn-a"):
        create_model("nope")
