"""The whole-number line network (torch): convolutions down the height, then along the line.

Input (N, 1, 32, W), output (N, W / 4, 12) logits per 4-column frame (blank,
0-9, "not a digit"), trained with CTC loss (numbre.training.lines). Only
convolutions, ReLU and max pooling: small, fast in ONNX Runtime on one thread,
and free of the recurrent layers whose exported graphs hold loops. Its view
along the line is about 66 input columns (two to three digit widths at 28 px
tall), enough to tell the right half of a 0 from a 1 and a joined "11" from a 4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from numbre.atomic import atomic_save
from numbre.model.line_model import CLASSES, HEIGHT, KIND, STRIDE
from numbre.model.onnx_model import seal_onnx

WIDTHS = (16, 32, 48, 64)  # channels of the four 3x3 convolution stages
FEATURES = 96  # channels of each frame after the height is folded away


def _stage(inputs: int, outputs: int, pool: tuple[int, int]) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
            nn.MaxPool2d(pool, pool)]


class LineNet(nn.Module):
    """32 px tall lines -> per-frame class logits; frames are STRIDE input columns each."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, features: int = FEATURES) -> None:
        super().__init__()
        a, b, c, d = widths
        self.widths, self.features = tuple(widths), features
        # 32 x W -> 16 x W/2 -> 8 x W/4 -> 4 x W/4 -> 2 x W/4
        self.convolutions = nn.Sequential(*_stage(1, a, (2, 2)), *_stage(a, b, (2, 2)),
                                          *_stage(b, c, (2, 1)), *_stage(c, d, (2, 1)))
        self.fold = nn.Sequential(nn.Conv2d(d, features, (2, 3), padding=(0, 1)), nn.ReLU())
        self.context = nn.Sequential(nn.Conv2d(features, features, (1, 5), padding=(0, 2)), nn.ReLU(),
                                     nn.Conv2d(features, features, (1, 5), padding=(0, 2)), nn.ReLU())
        self.classify = nn.Conv2d(features, CLASSES, 1)

    def forward(self, line: torch.Tensor) -> torch.Tensor:
        frames = self.fold(self.convolutions(line))  # (N, F, 1, T)
        frames = frames + self.context(frames)
        return self.classify(frames).squeeze(2).transpose(1, 2)  # (N, T, CLASSES)


def save_checkpoint(model: LineNet, path: Path, meta: dict[str, Any]) -> None:
    """Weights and the facts of their training, written atomically."""
    state = {"widths": model.widths, "features": model.features, "state": model.state_dict(), "meta": meta}
    atomic_save(path, lambda temporary: torch.save(state, temporary))


def load_checkpoint(path: Path) -> tuple[LineNet, dict[str, Any]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = LineNet(tuple(state["widths"]), int(state["features"]))
    model.load_state_dict(state["state"])
    return model.eval(), dict(state["meta"])


def export_line_onnx(model: LineNet, path: Path, meta: dict[str, Any]) -> None:
    """Write `model` as a sealed ONNX file (input "line" (1, 1, 32, W), output "logits"), atomically."""
    import io
    import warnings

    import onnx

    model = model.eval()
    example = torch.zeros(1, 1, HEIGHT, 64)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its successor
        torch.onnx.export(model, (example,), buffer, input_names=["line"], output_names=["logits"],
                          dynamic_axes={"line": {3: "width"}, "logits": {1: "frames"}}, opset_version=17,
                          do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    seal_onnx(proto, {**json.loads(json.dumps(meta)), "kind": KIND, "stride": STRIDE, "height": HEIGHT,
                      "class_names": ["blank", *map(str, range(10)), "not a digit"]})
    data = proto.SerializeToString()
    atomic_save(path, lambda temporary: temporary.write_bytes(data))
