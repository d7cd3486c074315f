"""`numbre export`: a model file as ONNX, so reading digits needs ONNX Runtime and not torch.

The ONNX file carries the model file's metadata (architecture, classes, recipe,
data checksum, test figures) under the metadata key "numbre", plus a SHA-256
of its own weights so a changed file is refused like a changed model file.
Every export is checked: ONNX Runtime must give the same logits as torch.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np

from numbre.atomic import atomic_write
from numbre.errors import NumbreError
from numbre.onnx_model import META_KEY, OnnxModel, initializer_digest

OPSET = 17
MAX_LOGIT_DIFFERENCE = 1e-4  # float32 kernels differ in summation order, not in results


def export_onnx(model: Path | str | None, out: Path | str, *, check: bool = True) -> Path:
    """Write `model` (a model file or run folder; None: the shipped model) as ONNX to `out`."""
    import onnx
    import torch

    from numbre.checkpoint import load_torch_model

    network, model_file = load_torch_model(model)
    network = network.float().eval()
    example = torch.rand(2, 1, 28, 28)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its successor
        torch.onnx.export(network, (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {**model_file.meta, "source_weights_sha256": model_file.meta["weights_sha256"],
            "onnx_weights_sha256": initializer_digest(proto), "opset": OPSET}
    meta.pop("weights_sha256", None)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)
    proto.producer_name = "numbre"
    onnx.checker.check_model(proto)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, proto.SerializeToString())
    if check:
        check_export(network, out)
    return out


def check_export(network, path: Path, count: int = 64) -> float:
    """Largest logit difference between torch and ONNX Runtime on random and blank inputs."""
    import torch

    generator = np.random.default_rng(0)
    images = generator.random((count, 28, 28), dtype=np.float32)
    images[: count // 4] = 0.0
    with torch.inference_mode():
        expected = network(torch.from_numpy(images[:, None])).numpy()
    difference = float(np.abs(OnnxModel.load(path).logits(images) - expected).max())
    if difference > MAX_LOGIT_DIFFERENCE:
        raise NumbreError(f"the ONNX export of {path} differs from the torch model by {difference:.2e} "
                          "in its logits; the file was written but should not be used")
    return difference
