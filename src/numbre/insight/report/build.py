"""Builds the report: runs the model on the test set, makes every figure, writes the PNGs and the page.

One pass over the test set gives the probabilities that the confusion matrix, the per-class
figures, the mistakes gallery, the prediction grid and the reliability diagram all read; the
robustness curves score a subset, because each perturbation level is another pass.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from numbre import __version__
from numbre.atomic import atomic_write
from numbre.data import Dataset
from numbre.insight.evaluate import check_classes
from numbre.insight.report import figures, sections
from numbre.insight.report.html import Section, render_page
from numbre.insight.report.predictions import Answers, answer_test_set, predict_classes
from numbre.insight.report.robustness import RobustnessCurves, robustness_curves
from numbre.insight.report.run import LoadedModel, load_run, unique_labels
from numbre.model.summary import ModelSummary, summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HTML_NAME = "report.html"


@dataclass(frozen=True)
class ReportOptions:
    robustness_images: int = 1000  # the first N test images; 26 passes over 1,000 fit the time budget
    gallery: int = 40  # misclassified digits shown
    samples_per_class: int = 3  # training images per class in the sample grid
    predictions: int = 30  # test images in the "predicted / actual" grid


@dataclass
class Report:
    html_path: Path
    png_paths: dict[str, Path]  # section key -> PNG file
    figures: dict[str, Figure]  # section key -> the figure in that PNG, for inspection
    answers: Answers
    shown_errors: np.ndarray  # test-image indices in the mistakes gallery, in order
    sample_indices: np.ndarray  # training-image indices in the sample grid, in order
    robustness: RobustnessCurves
    summary: ModelSummary
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage


def sample_indices(labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """Row r of the grid holds the r-th image of each class, so the columns are the classes."""
    firsts = [np.flatnonzero(labels == label)[:per_class] for label in range(num_classes)]
    return np.array([found[row] for row in range(per_class) for found in firsts if row < len(found)],
                    dtype=np.int64)


class _Clock:
    """Seconds per stage, for the time budget."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self.last, 3)
        self.last = now


def _facts(main: LoadedModel, others: list[LoadedModel], dataset: Dataset, answers: Answers,
           summary: ModelSummary) -> list[tuple[str, str]]:
    metrics = answers.metrics
    facts = [("model", str(main.model_file.path)), ("architecture", main.model_file.architecture),
             ("parameters", f"{summary.total:,}"), ("classes", ", ".join(main.model_file.class_names)),
             ("test data", f"{dataset.name}, {len(dataset.x_test):,} images "
                           f"(checksum {dataset.checksum[:12]})"),
             ("test accuracy", f"{metrics.accuracy:.2%} ({metrics.errors:,} errors), "
                               f"loss {metrics.loss:.4f}")]
    if main.model_file.meta.get("command"):
        facts.append(("trained with", main.model_file.meta["command"]))
    if others:
        facts.append(("compared with", ", ".join(str(model.model_file.path) for model in others)))
    facts.append(("built", f"{time.strftime('%Y-%m-%d %H:%M')} by numbre {__version__}"))
    return facts


def build_report(source: LoadedModel | Path | str, dataset: Dataset, out_dir: Path | None = None,
                 compare: tuple[LoadedModel | Path | str, ...] = (),
                 options: ReportOptions | None = None) -> Report:
    """Write `out_dir`/report.html and one PNG per figure for `source`, a run folder or model file
    (or one already loaded with `load_run`); `compare` adds models to the robustness curves.
    Default out_dir: <run>/report, or report-<name> in the working folder for a model file
    (which may sit in a read-only install)."""
    options = options or ReportOptions()
    clock = _Clock()
    figures.require_matplotlib()
    main = source if isinstance(source, LoadedModel) else load_run(source)
    others = [model if isinstance(model, LoadedModel) else load_run(model) for model in compare]
    for model in (main, *others):
        check_classes(model.model_file.class_names, model.model_file.path, dataset,
                      advice="report on the data it was trained on (--data)")
    if out_dir is None:
        safe_name = re.sub(r"[^\w.-]+", "-", main.label).strip("-")
        out_dir = main.run_folder / "report" if main.run_folder else Path(f"report-{safe_name}")
    model_names = main.model_file.class_names
    clock.lap("load")

    answers = answer_test_set(main.network, dataset.x_test, dataset.y_test, model_names)
    clock.lap("test set")
    count = min(options.robustness_images, len(dataset.x_test))
    labels = unique_labels([main.label, *(model.label for model in others)])
    scorers = {label: predict_classes(model.network) for label, model in zip(labels, (main, *others),
                                                                              strict=True)}
    curves = robustness_curves(scorers, dataset.x_test[:count], dataset.y_test[:count].astype(np.int64))
    clock.lap("robustness")

    summary = summarize(main.network, main.model_file.architecture)
    shown_samples = sample_indices(dataset.y_train, dataset.num_classes, options.samples_per_class)
    shown_errors = answers.errors_worst_first()[: options.gallery]
    parts = [
        sections.samples(dataset, shown_samples, options.samples_per_class),
        sections.history(main, str(main.model_file.path)),
        sections.confusion(answers, dataset, model_names, main.model_file.architecture),
        sections.per_class(answers, dataset, model_names),
        sections.mistakes(answers, dataset, model_names, shown_errors),
        sections.predictions(answers, dataset, model_names, options.predictions),
        sections.calibration(answers),
        sections.robustness(curves),
        sections.layers(summary),
    ]
    built: dict[str, Figure] = {}
    page_sections: list[Section] = []
    for section, figure in parts:
        if figure is not None:
            built[section.key] = figure
            section = dataclasses.replace(section, png=figures.png_bytes(figure))
        page_sections.append(section)
    clock.lap("figures")

    page = render_page(f"numbre report: {main.label}", _facts(main, others, dataset, answers, summary),
                       page_sections)
    png_paths = {section.key: out_dir / f"{section.key}.png" for section in page_sections if section.png}
    for section in page_sections:
        if section.png is not None:
            atomic_write(png_paths[section.key], section.png)
    html_path = out_dir / HTML_NAME
    atomic_write(html_path, page.encode())
    clock.lap("write")
    return Report(html_path, png_paths, built, answers, shown_errors, shown_samples, curves, summary,
                  clock.seconds)
