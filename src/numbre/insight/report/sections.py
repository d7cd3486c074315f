"""The report's parts, in page order: each is a heading, a sentence, a figure and/or a table.

Each function takes what the report measured and returns the section (text and table) with the
figure that goes in it, so what the page says and what the figure shows come from the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from numbre.data import Dataset
from numbre.insight.report import figures
from numbre.insight.report.html import Section, html_table
from numbre.insight.report.predictions import Answers, reliability
from numbre.insight.report.robustness import RobustnessCurves
from numbre.insight.report.run import LoadedModel
from numbre.model.summary import ModelSummary, format_shape

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Part = tuple[Section, "Figure | None"]


def samples(dataset: Dataset, indices: np.ndarray, per_class: int) -> Part:
    names = dataset.class_names
    return (Section("samples", "Training images",
                    f"The first {per_class} training images of each class, with their labels."),
            figures.image_grid(dataset.x_train[indices], [names[dataset.y_train[i]] for i in indices],
                               columns=dataset.num_classes))


def history(model: LoadedModel, source_name: str) -> Part:
    title = "Training curves"
    if not model.history and model.run_folder is not None:
        return (Section("history", title, note=(
            f"No training curves: the run folder {model.run_folder} holds no history.json, the per-epoch "
            "history `numbre train` writes; the rest of this report comes from its model file.")), None)
    if not model.history:
        return (Section("history", title, note=(
            f"No training curves: {source_name} is a model file, and the per-epoch history lives in the "
            "run folder `numbre train --out DIR` writes (history.json). Build the report from that "
            "folder to see them.")), None)
    return (Section("history", title, "Loss and accuracy per epoch, from the run's history. Training "
                    "figures are running means over each epoch, with augmentation and label smoothing "
                    "when the recipe uses them; validation is measured after the epoch."),
            figures.history_figure(model.history))


def confusion(answers: Answers, dataset: Dataset, model_names: Sequence[str], architecture: str) -> Part:
    counts = answers.metrics.confusion[: dataset.num_classes]  # "not a digit" is never a true label
    return (Section("confusion", "Confusion matrix",
                    f"Rows: the true class; columns: the model's answer. The {int(counts.sum()):,} cells "
                    f"add up to the {len(answers.labels):,} test images."),
            figures.confusion_figure(counts, dataset.class_names, model_names,
                                     f"{architecture} on {dataset.name} test "
                                     f"({answers.metrics.accuracy:.2%})"))


def per_class(answers: Answers, dataset: Dataset, model_names: Sequence[str]) -> Part:
    metrics, names = answers.metrics, dataset.class_names
    rows = [(name, f"{metrics.precision[i]:.4f}", f"{metrics.recall[i]:.4f}", f"{metrics.f1[i]:.4f}",
             f"{int(metrics.confusion[i].sum()):,}") for i, name in enumerate(names)]
    text = ("Precision: of the images the model called this class, the share that were. Recall: of the "
            "images of this class, the share the model found.")
    if len(model_names) > len(names):
        rejected = int(metrics.confusion[:, len(names):].sum())
        text += f' {rejected:,} test images were answered "{model_names[-1]}" (counted as errors).'
    table = html_table(("class", "precision", "recall", "F1", "test images"), rows,
                       (False, True, True, True, True))
    return (Section("per-class", "Per-class precision and recall", text, table=table),
            figures.per_class_figure(names, metrics.precision[: len(names)], metrics.recall[: len(names)]))


def mistakes(answers: Answers, dataset: Dataset, model_names: Sequence[str], shown: np.ndarray) -> Part:
    title = "Misclassified test digits, worst first"
    if not len(shown):
        return Section("misclassified", title, note="No test image is misclassified."), None
    names, predicted, confidence = dataset.class_names, answers.predicted, answers.confidence
    errors = int((~answers.correct).sum())
    captions = [f"true {names[answers.labels[i]]}\npred {model_names[predicted[i]]} {confidence[i]:.1%}"
                for i in shown]
    return (Section("misclassified", title,
                    f"{errors:,} of {len(answers.labels):,} test images are misclassified. Shown: the "
                    f"{len(shown)} the model was surest about, with the true label, the model's answer "
                    "and its confidence in that answer."),
            figures.image_grid(dataset.x_test[shown], captions, columns=10))


def predictions(answers: Answers, dataset: Dataset, model_names: Sequence[str], count: int) -> Part:
    shown = np.arange(min(count, len(answers.labels)))
    captions = [f"{model_names[answers.predicted[i]]} / {dataset.class_names[answers.labels[i]]}"
                for i in shown]
    colours = ["black" if answers.correct[i] else figures.WRONG for i in shown]
    return (Section("predictions", "Test predictions", f"The first {len(shown)} test images, captioned "
                    '"predicted / actual" (wrong answers in red).'),
            figures.image_grid(dataset.x_test[shown], captions, columns=10, title="predicted / actual",
                               colours=colours))


def calibration(answers: Answers) -> Part:
    return (Section("reliability", "Reliability (calibration)",
                    "Test answers grouped by the model's confidence: a calibrated model is right 90% of the "
                    "time when it says 90%, and its bars reach the diagonal. Bars below it: overconfident; "
                    "above it: underconfident (as label smoothing makes a model)."),
            figures.reliability_figure(reliability(answers.confidence, answers.correct)))


def robustness(curves: RobustnessCurves) -> Part:
    return (Section("robustness", "Robustness",
                    f"Accuracy on the first {curves.images:,} test images as they are rotated, shifted, "
                    "scaled, thickened, thinned and noised; one line per model."),
            figures.robustness_figure(curves))


def layers(summary: ModelSummary) -> Part:
    rows = [(f"{row.name} ({row.kind})", format_shape(row.output_shape), f"{row.parameters:,}")
            for row in summary.rows]
    return (Section("summary", "Model summary",
                    f"Total params: {summary.total:,}; trainable: {summary.trainable:,}; non-trainable: "
                    f"{summary.non_trainable:,}; batch-norm running statistics: {summary.buffers:,}. "
                    "Output shapes are (batch, channels, height, width).",
                    table=html_table(("Layer (type)", "Output Shape", "Param #"), rows,
                                     (False, False, True))),
            None)
