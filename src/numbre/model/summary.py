"""A model's layer table, as Keras' `summary()` prints it: layer (type), output shape, parameters.

Learners coming from the Keras tutorials read models through that table, so numbre shows its
models the same way. Output shapes are measured, not inferred: forward hooks record what each
layer returns for one dummy 1x1x28x28 image, so the table is right for any registered model.
PyTorch computes image shapes as (None, channels, height, width); the printed table writes them
channels last, (None, height, width, channels), as Keras does, so a tutorial's table and numbre's
can be read side by side. `ModelSummary` and the JSON keep PyTorch's order and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from numbre.errors import NumbreError

INPUT_SHAPE = (1, 1, 28, 28)  # one grey 28x28 image, as every numbre model takes it


@dataclass(frozen=True)
class LayerRow:
    """One call of one layer during the dummy forward pass."""

    name: str  # Keras-style: the type in snake case, numbered from the second one on (conv2d_1)
    kind: str  # the module's class name
    output_shape: tuple[int | None, ...]  # batch dimension as None, as Keras shows it
    parameters: int  # the layer's own parameters; 0 when a layer is called a second time


@dataclass(frozen=True)
class ModelSummary:
    title: str
    rows: tuple[LayerRow, ...]
    total: int
    trainable: int
    buffers: int  # values that are state but not parameters (batch-norm running statistics)

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    def to_dict(self) -> dict:
        return {"title": self.title, "shape_order": "channels first (None, C, H, W), as PyTorch computes",
                "total": self.total, "trainable": self.trainable,
                "non_trainable": self.non_trainable, "buffers": self.buffers,
                "layers": [{"name": row.name, "type": row.kind, "output_shape": list(row.output_shape),
                            "parameters": row.parameters} for row in self.rows]}


def _snake_case(name: str) -> str:
    """Conv2d -> conv2d, MaxPool2d -> max_pool2d, ReLU -> relu, PixelUnshuffle -> pixel_unshuffle."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name).lower()


def _shape(output) -> tuple[int | None, ...]:
    if isinstance(output, torch.Tensor):
        return (None, *output.shape[1:])
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return _shape(output[0])  # the first output is what the next layer takes
    return ()


def summarize(model: nn.Module, title: str = "model") -> ModelSummary:
    """The layer table of `model`: every layer without sub-layers (and every container that holds
    parameters itself), in the order the forward pass calls them."""
    rows: list[LayerRow] = []
    counted: set[int] = set()
    numbering: dict[str, int] = {}

    def record(module: nn.Module, _inputs, output) -> None:
        kind = type(module).__name__
        base = _snake_case(kind)
        number = numbering.get(base, 0)
        numbering[base] = number + 1
        own = 0 if id(module) in counted else sum(p.numel() for p in module.parameters(recurse=False))
        counted.add(id(module))
        rows.append(LayerRow(base if number == 0 else f"{base}_{number}", kind, _shape(output), own))

    hooks = [module.register_forward_hook(record) for module in model.modules()
             if not list(module.children()) or list(module.parameters(recurse=False))]
    was_training = model.training
    model.eval()  # batch-norm must not update its statistics on the dummy image
    try:
        device = next(model.parameters(), torch.empty(0)).device
        with torch.inference_mode():
            model(torch.zeros(INPUT_SHAPE, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return ModelSummary(title, tuple(rows), total, trainable, buffers)


def format_shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if size is None else str(size) for size in shape) + ")"


def channels_last(shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """(None, C, H, W) -> (None, H, W, C), Keras' order; other shapes (None, features) stay as they are."""
    if len(shape) == 4:
        return (shape[0], shape[2], shape[3], shape[1])
    return shape


def format_summary(summary: ModelSummary) -> str:
    """The table as text, laid out like Keras' `model.summary()`, image shapes channels last as Keras
    prints them (the header says so)."""
    cells = [(f"{row.name} ({row.kind})", format_shape(channels_last(row.output_shape)),
              f"{row.parameters:,}") for row in summary.rows]
    header = ("Layer (type)", "Output Shape (N, H, W, C)", "Param #")
    widths = [max(minimum, len(header[i]) + 2, *(len(cell[i]) + 2 for cell in cells))
              for i, minimum in enumerate((29, 26, 10))]
    width = sum(widths) + 1

    def line(cell: tuple[str, str, str]) -> str:
        return (" " + "".join(text.ljust(size) for text, size in zip(cell, widths, strict=True))).rstrip()

    lines = [f'Model: "{summary.title}"', "_" * width, line(header), "=" * width]
    for index, cell in enumerate(cells):
        lines.append(line(cell))
        if index < len(cells) - 1:
            lines.append("")
    lines += ["=" * width, f"Total params: {summary.total:,}", f"Trainable params: {summary.trainable:,}",
              f"Non-trainable params: {summary.non_trainable:,}"]
    if summary.buffers:
        lines.append(f"Buffers (batch-norm running statistics, not parameters): {summary.buffers:,}")
    lines.append("_" * width)
    return "\n".join(lines)


def load_for_summary(model: str | None) -> tuple[nn.Module, str]:
    """A network and its title from a model file, a run folder or a registered model name
    (freshly initialised, with the outputs its recipe trains, as `numbre models` counts them);
    the shipped model when `model` is None."""
    from numbre.model.network import load_torch_model
    from numbre.model.zoo import create_model, get_entry, list_models

    if model is not None and not Path(model).exists():
        if model in list_models():
            return create_model(model, get_entry(model).mnist_outputs), model
        raise NumbreError(f"{model} is neither a model file, a run folder nor a registered model; "
                          f"give a path or one of: {', '.join(list_models())}")
    network, model_file = load_torch_model(model)
    return network, model_file.architecture
