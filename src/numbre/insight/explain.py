"""Look inside a model's decision on one image: what it saw, where it looked, what it computes.

    explanation = explain("digit.png")               # the shipped model, or explain(path, model_file)
    save_explanation_png(explanation, "digit.explain.png")

The picture answers "why did it say that?" in five parts: the preprocessed
28x28 input (from the one pipeline, exactly what the network saw), an
occlusion saliency map, the first layer's filters, the activations of every
convolution layer, and the three most likely classes with their calibrated
probabilities.

`occlusion_saliency` runs on ONNX Runtime and needs no torch, so the web page
can show it too. Filters and activations read the torch layers, and the
figure needs matplotlib: both come with the `train` extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbre.errors import ImageError, ModelFileError, NumbreError
from numbre.model.onnx_model import OnnxModel
from numbre.model.probabilities import log_softmax, softmax
from numbre.reading.images import ImageSource
from numbre.reading.preprocess import SIDE

TOP = 3
MAX_FILTERS = 64  # an MLP's first layer has up to 512 units; 64 panels already fill a page
PNG_KEY = "numbre-explain"  # the PNG text chunk holding what the figure shows, as JSON


# --- saliency, torch-free ----------------------------------------------------------------------

def occlusion_saliency(model: OnnxModel, image28: np.ndarray, patch: int = 4, stride: int = 1, *,
                       target: int | None = None) -> np.ndarray:
    """(28, 28) float32 in [0, 1]: how much blanking each pixel's neighbourhood lowers the answer.

    Every `patch` x `patch` square (moved by `stride`) is set to 0, the
    background of a white-on-black digit, so occluding means erasing ink. A
    square's score is the drop in the log-probability of `target` (default:
    the model's answer for the intact image); a pixel's saliency is the mean
    score of the squares covering it, negatives (erasing helped) count as 0,
    and the map is scaled so its maximum is 1. A square over blank background
    leaves the image unchanged and scores exactly 0, so only squares touching
    ink are run, all in one batch.
    """
    image = np.asarray(image28, dtype=np.float32)
    if image.shape != (SIDE, SIDE):
        raise ImageError(f"saliency needs a preprocessed {SIDE}x{SIDE} image, got shape {image.shape}; "
                         "run it through numbre.reading.preprocess.to_mnist first")
    if not 1 <= patch <= SIDE or not 1 <= stride <= patch:
        raise NumbreError(f"occlusion needs a patch of 1-{SIDE} px and a stride of 1 to the patch size "
                          f"(larger strides leave pixels unexplained), got patch {patch}, stride {stride}")
    starts = list(range(0, SIDE - patch + 1, stride))
    if starts[-1] != SIDE - patch:
        starts.append(SIDE - patch)  # so the last rows and columns are covered too
    squares = [(top, left) for top in starts for left in starts
               if image[top:top + patch, left:left + patch].any()]
    saliency = np.zeros((SIDE, SIDE), np.float64)
    if not squares:
        return saliency.astype(np.float32)
    batch = np.repeat(image[None], len(squares) + 1, axis=0)  # copy 0 stays intact: the reference
    for index, (top, left) in enumerate(squares, start=1):
        batch[index, top:top + patch, left:left + patch] = 0.0
    log_probabilities = log_softmax(model.logits(batch))
    if target is None:
        target = int(np.argmax(log_probabilities[0]))
    drops = log_probabilities[0, target] - log_probabilities[1:, target]
    covered = np.zeros((SIDE, SIDE), np.float64)
    for top in starts:
        for left in starts:
            covered[top:top + patch, left:left + patch] += 1
    for (top, left), drop in zip(squares, drops, strict=True):
        saliency[top:top + patch, left:left + patch] += drop
    saliency = np.clip(saliency / covered, 0.0, None)
    peak = saliency.max()
    return (saliency / peak if peak > 0 else saliency).astype(np.float32)


# --- the explanation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Explanation:
    """Everything the figure shows, as data."""

    model: str  # the architecture's name
    model_path: Path | None
    answer: str  # the digit the Recognizer names, or its reason for naming none ("not a digit")
    image: np.ndarray  # (28, 28) float32: what the network saw
    saliency: np.ndarray  # (28, 28) float32 in [0, 1], for the top class
    top: tuple[tuple[str, float], ...]  # (class name, calibrated probability), most likely first
    filters: np.ndarray  # (F, h, w) first-layer weights as pixel-space images
    filters_total: int  # the first layer's unit count (filters holds at most MAX_FILTERS of them)
    filters_note: str  # what a filter image means for this architecture
    activations: tuple[tuple[str, np.ndarray], ...]  # (name, (C, H, W)) per convolution layer

    def summary(self) -> dict[str, Any]:
        """The figure's content as JSON-ready data (also stored in the PNG it is drawn to)."""
        return {"model": self.model, "answer": self.answer,
                "top": [{"class": name, "probability": round(p, 6)} for name, p in self.top],
                "filters": len(self.filters), "filters_total": self.filters_total,
                "activations": [{"layer": name, "shape": list(maps.shape)}
                                for name, maps in self.activations]}


def require_train_extra() -> None:
    """Filters, activations and the figure need torch and matplotlib: say how to get them."""
    try:
        import matplotlib  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise NumbreError("explain needs PyTorch and matplotlib: pip install 'numbre[train]'") from None


def explain(image: ImageSource, model: Path | str | None = None) -> Explanation:
    """Explain the answer of `model` (a model file or run folder; None: the shipped model) for
    `image`, read as one digit through the same preprocessing and Recognizer as `numbre predict`."""
    require_train_extra()
    from numbre.model.network import load_torch_model
    from numbre.reading.recognize import EMPTY, SEVERAL, Recognizer

    if model is not None and Path(model).suffix == ".onnx":
        raise ModelFileError(f"{model} is an ONNX export: it has no layers to look inside; "
                             "give the model file (.safetensors) or run folder it came from")
    network, model_file = load_torch_model(model)
    recognizer = Recognizer.load(model)
    if recognizer.meta.get("source_weights_sha256") != model_file.meta["weights_sha256"]:
        raise ModelFileError(f"{recognizer.model.path} is not an export of {model_file.path}; "
                             f"delete it and run `numbre export {model_file.path}` again")
    prediction = recognizer.predict(image)
    if prediction.reason == EMPTY:
        raise ImageError("no digit found: the image is blank or nearly blank")
    if prediction.reason == SEVERAL:
        raise ImageError("the image holds several digits; explain looks at one: crop one digit out "
                         "(`numbre read` reads whole numbers)")
    top = top_classes(recognizer, prediction.image)
    names = recognizer.model.class_names
    saliency = occlusion_saliency(recognizer.model, prediction.image, target=names.index(top[0][0]))
    filters, total, note = first_layer_filters(network)
    answer = str(prediction.digit) if prediction.digit is not None else str(prediction.reason)
    return Explanation(model_file.architecture, model_file.path, answer, prediction.image, saliency,
                       top, filters, total, note, tuple(conv_activations(network, prediction.image)))


def top_classes(recognizer, image28: np.ndarray, count: int = TOP) -> tuple[tuple[str, float], ...]:
    """The `count` most likely classes of the prepared image, by the calibrated softmax over all of
    the model's classes: for a model with a "not a digit" class, P(digit k) is
    (1 - P(not a digit)) * P(k | a digit), the Recognizer's digit probability scaled down."""
    names = recognizer.model.class_names
    logits = recognizer.model.logits(image28[None]).astype(np.float64)
    full = softmax(logits / recognizer.rejector.temperature)[0]
    order = np.argsort(-full, kind="stable")[:count]
    return tuple((names[index], float(full[index])) for index in order)


# --- inside the torch model --------------------------------------------------------------------

def _leaves(network) -> list:
    """The network's layers in the order a Sequential runs them."""
    return [module for module in network.modules() if not any(True for _ in module.children())]


def first_layer_filters(network) -> tuple[np.ndarray, int, str]:
    """(F, h, w) images of the first layer's weights, its unit count, and what they show.

    A convolution after a pixel-unshuffle stem (numbre's models) sees each 2x2
    block as 4 channels; its k x k kernel is folded back into the 2k x 2k
    pixel pattern it really weighs. An MLP's first dense layer weighs all
    784 pixels: each unit is a 28x28 template.
    """
    from torch import nn

    layers = _leaves(network)
    unshuffle = 1
    for layer in layers:
        if isinstance(layer, nn.PixelUnshuffle):
            unshuffle *= layer.downscale_factor
        elif isinstance(layer, nn.Conv2d):
            weights = layer.weight.detach().float().cpu().numpy()  # (out, in, k, k)
            out, channels, height, width = weights.shape
            kernel = f"{height}x{width}"
            if unshuffle > 1 and channels == unshuffle**2:
                r = unshuffle  # channel i*r + j holds pixel (i, j) of each r x r block
                weights = weights.reshape(out, r, r, height, width).transpose(0, 3, 1, 4, 2)
                images = weights.reshape(out, height * r, width * r)
                note = (f"conv 1: {out} filters {kernel} over {r}x{r}-unshuffled pixels, "
                        f"drawn as the {height * r}x{width * r} pixel weights they apply")
            elif channels == 1:
                images, note = weights[:, 0], f"conv 1: {out} filters {kernel}"
            else:
                images = weights.mean(axis=1)
                note = f"conv 1: {out} filters {kernel}, mean over {channels} inputs"
            return images[:MAX_FILTERS], out, note
        elif isinstance(layer, nn.Linear):
            weights = layer.weight.detach().float().cpu().numpy()
            if weights.shape[1] != SIDE * SIDE:
                break
            shown = min(len(weights), MAX_FILTERS)
            note = (f"dense 1: {len(weights)} units, each a 28x28 pixel template"
                    + (f" (first {shown} shown)" if shown < len(weights) else ""))
            return weights[:shown].reshape(-1, SIDE, SIDE), len(weights), note
    raise ModelFileError("the model's first layer is neither a convolution nor a dense layer on the "
                         "28x28 pixels; it has no filters to show")


def conv_activations(network, image28: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, (C, H, W) maps) for every convolution, taken after its ReLU when one follows
    before the next convolution (what the next layer sees), else straight from the convolution."""
    import torch
    from torch import nn

    layers = _leaves(network)
    convs = [index for index, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    taps = []
    for number, index in enumerate(convs, start=1):
        end = convs[number] if number < len(convs) else len(layers)
        relu = next((layers[i] for i in range(index + 1, end) if isinstance(layers[i], nn.ReLU)), None)
        conv = layers[index]
        name = f"conv {number}" + (" + ReLU" if relu is not None else "")
        taps.append((name, relu if relu is not None else conv))
    captured: dict[str, np.ndarray] = {}

    def keeper(name: str):
        def keep(_module, _inputs, output) -> None:  # returning None leaves the output as it is
            captured[name] = output[0].detach().float().cpu().numpy()

        return keep

    hooks = [module.register_forward_hook(keeper(name)) for name, module in taps]
    try:
        with torch.inference_mode():
            network.float().eval()(torch.from_numpy(np.asarray(image28, np.float32)[None, None]))
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, captured[name]) for name, _ in taps]


# --- the figure --------------------------------------------------------------------------------

def explanation_figure(explanation: Explanation):
    """The matplotlib Figure: input, saliency and top 3 on the first row, the filters below, then
    one panel per convolution layer. Each axes carries a label naming its part, for tests."""
    from numbre.insight.plots import pyplot

    plt = pyplot()
    count = len(explanation.filters)
    columns = min(count, 16)
    rows = math.ceil(count / columns)
    layers = len(explanation.activations)
    heights = [3.2, 0.8 * rows + 0.4, 3.8 if layers else 0.5]  # inches per part
    figure = plt.figure(figsize=(12, sum(heights)), layout="constrained")
    parts = figure.subfigures(3, 1, height_ratios=heights)
    answer = explanation.answer if explanation.answer[:1].isdigit() else f"'{explanation.answer}'"
    figure.suptitle(f"{explanation.model} answers {answer}", fontsize=12)

    first = parts[0].subplots(1, 3, width_ratios=[1, 1, 1.5])
    _image(first[0], explanation.image, "input", "input: what the network saw (28x28)")
    _image(first[1], explanation.image, "saliency",
           f"occlusion saliency for '{explanation.top[0][0]}'", overlay=explanation.saliency)
    _top(first[2], explanation.top)

    parts[1].suptitle(explanation.filters_note + " (red: positive weight, blue: negative)", fontsize=9)
    grid = parts[1].subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(grid.flat):
        if index >= count:
            axis.remove()
            continue
        weights = explanation.filters[index]
        limit = float(np.abs(weights).max()) or 1.0
        axis.imshow(weights, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        axis.set_label("filter")
        axis.axis("off")

    if layers:
        parts[2].suptitle("activations of each convolution layer (every channel; bright: strong)",
                          fontsize=9)
        for axis, (name, maps) in zip(np.atleast_1d(parts[2].subplots(1, layers)), explanation.activations,
                                      strict=True):
            axis.imshow(mosaic(maps), cmap="magma", interpolation="nearest")
            axis.set_title(f"{name}: {maps.shape[0]} maps {maps.shape[1]}x{maps.shape[2]}", fontsize=9)
            axis.set_label("activation")
            axis.axis("off")
    else:
        parts[2].suptitle("no convolution layers: this model is a multilayer perceptron", fontsize=9)
    return figure


def _image(axis, image: np.ndarray, label: str, title: str, overlay: np.ndarray | None = None) -> None:
    axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest",
                alpha=1.0 if overlay is None else 0.5)
    if overlay is not None:
        axis.imshow(overlay, cmap="inferno", vmin=0.0, vmax=1.0, alpha=0.7, interpolation="nearest")
    axis.set_title(title, fontsize=9)
    axis.set_label(label)
    axis.set_xticks([])
    axis.set_yticks([])


def _top(axis, top: tuple[tuple[str, float], ...]) -> None:
    names = [name for name, _ in top]
    values = [value for _, value in top]
    positions = np.arange(len(top))[::-1]  # the most likely on top
    axis.barh(positions, values, color=["#d62728", *["#7f7f7f"] * (len(top) - 1)])
    axis.set_yticks(positions, labels=names)
    axis.set_xlim(0, 1.18)
    axis.set_xticks([0, 0.5, 1], labels=["0", "50%", "100%"])
    for position, value in zip(positions, values, strict=True):
        axis.text(value + 0.02, position, percent(value), va="center", fontsize=9)
    axis.set_title(f"top {len(top)}: " + ", ".join(names), fontsize=9)
    axis.set_label("top")


def percent(value: float) -> str:
    """99.98%, 1.20%, 0.0038%: small probabilities keep three significant digits, not 0.00%."""
    return f"{value:.2%}" if value >= 0.01 else f"{value * 100:.2g}%"


def mosaic(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """(C, H, W) -> one 2-D image with the channels tiled in a near-square grid, scaled together
    (so a weak channel looks weak); the gaps between tiles are NaN, drawn as background."""
    channels, height, width = maps.shape
    columns = math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / columns)
    peak = float(np.abs(maps).max()) or 1.0
    canvas = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, np.float32)
    for index, channel in enumerate(maps):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = channel / peak
    return canvas


def save_explanation_png(explanation: Explanation, path: Path | str) -> Path:
    """Draw the figure to a PNG; its text chunk PNG_KEY holds `summary()` as JSON."""
    from numbre.insight.plots import save_png_with_text

    rows = explanation.summary()
    return save_png_with_text(explanation_figure(explanation), path, PNG_KEY, rows)
