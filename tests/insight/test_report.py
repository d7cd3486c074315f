"""`numbre report` on runs trained on the synthetic dataset: every figure's content, the page in a real
browser, the perturbations behind the robustness curves, and the command's errors."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from numbre.cli import cli
from numbre.insight.evaluate import evaluate_network
from numbre.insight.report import ReportOptions, build_report
from numbre.insight.report.predictions import reliability
from numbre.insight.report.robustness import PERTURBATIONS, noise, rotate, scale, shift, thicken, thin
from numbre.insight.report.run import load_run, unique_labels
from numbre.model.network import load_torch_model
from numbre.training.config import TrainConfig
from numbre.training.loop import MODEL, Trainer
from webhelpers import headless_chromium

# Trained on 120 images for 2 epochs: about 70% right on the synthetic test set, so there are
# mistakes to show and a reliability diagram with more than one filled bin.
WEAK = dict(model="seed-cnn-a", epochs=2, batch_size=32, lr=1e-3, threads=1, val_split=0.25, max_train=160)
# numbre's small model with the "not a digit" class: 11 outputs for 10 data classes.
REJECTING = dict(model="numbre-fast", epochs=1, batch_size=32, optimizer="sgd", lr=0.05,
                 schedule="onecycle", warmup_start=0.0, drop_last=True, negatives=0.2, val_split=0.2,
                 threads=1, max_train=200)
OPTIONS = ReportOptions(robustness_images=100)
CAPTION = re.compile(r"true (\S+)\npred (.+) (\d+\.\d)%")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    for name, settings in (("weak", WEAK), ("rejecting", REJECTING)):
        Trainer(TrainConfig(**settings), tiny, folder / name, progress=False).run()
    return {"weak": folder / "weak", "rejecting": folder / "rejecting"}


@pytest.fixture(scope="module")
def report(runs, tiny, tmp_path_factory):
    """The weak run's report, with the rejecting model in its robustness curves."""
    built = build_report(runs["weak"], tiny, tmp_path_factory.mktemp("report"),
                         compare=(runs["rejecting"] / MODEL,), options=OPTIONS)
    assert built.answers.metrics.errors >= 20, "the weak model must err for the gallery tests"
    return built


def titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes]


def test_confusion_matrix_counts_every_test_image_once_and_matches_evaluate(report, runs, tiny) -> None:
    figure = report.figures["confusion"]
    assert len(figure.axes) == 1
    axis = figure.axes[0]
    shown = np.asarray(axis.images[0].get_array().data)
    assert shown.shape == (10, 10) and shown.sum() == len(tiny.y_test) == 200
    network, model_file = load_torch_model(runs["weak"])
    assert np.array_equal(shown, evaluate_network(network, model_file, tiny).confusion)
    cells = [int(text.get_text()) for text in axis.texts]
    assert sum(cells) == 200 and cells == shown.ravel().tolist()
    assert [label.get_text() for label in axis.get_xticklabels()] == list(tiny.class_names)
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("predicted", "true")


def test_sample_grid_shows_training_images_under_their_labels(report, tiny) -> None:
    figure = report.figures["samples"]
    assert len(figure.axes) == 3 * 10
    assert titles(figure) == [tiny.class_names[tiny.y_train[i]] for i in report.sample_indices]
    assert titles(figure) == list(tiny.class_names) * 3  # one column per class
    for axis, index in zip(figure.axes, report.sample_indices, strict=True):
        assert np.array_equal(axis.images[0].get_array(), tiny.x_train[index])


def test_training_curves_plot_the_saved_history(report, runs) -> None:
    history = json.loads((runs["weak"] / "history.json").read_text())
    figure = report.figures["history"]
    assert titles(figure) == ["loss", "accuracy"]
    for axis, metric in zip(figure.axes, ("loss", "acc"), strict=True):
        lines = {line.get_label(): line for line in axis.get_lines()}
        assert sorted(lines) == ["training", "validation"]
        for label, prefix in (("training", "train"), ("validation", "val")):
            assert list(lines[label].get_xdata()) == [1, 2]
            expected = [row[f"{prefix}_{metric}"] for row in history]
            assert list(lines[label].get_ydata()) == pytest.approx(expected)


def test_mistakes_gallery_is_worst_first_with_true_and_predicted_labels(report, tiny) -> None:
    figure, answers = report.figures["misclassified"], report.answers
    shown = report.shown_errors
    assert len(figure.axes) == len(shown) == min(40, answers.metrics.errors)
    confidences = []
    for axis, index in zip(figure.axes, shown, strict=True):
        true, predicted, percent = CAPTION.fullmatch(axis.get_title()).groups()
        probabilities = answers.probabilities[index]
        assert true == tiny.class_names[tiny.y_test[index]]
        assert predicted == tiny.class_names[int(probabilities.argmax())] != true
        assert float(percent) == pytest.approx(100 * probabilities.max(), abs=0.051)
        assert np.array_equal(axis.images[0].get_array(), tiny.x_test[index])
        confidences.append(probabilities.max())
    assert confidences == sorted(confidences, reverse=True)
    unshown = np.setdiff1d(np.flatnonzero(answers.predicted != tiny.y_test), shown)
    assert (answers.confidence[unshown] <= confidences[-1]).all()


def test_prediction_grid_captions_predicted_over_actual_and_marks_mistakes(report, tiny) -> None:
    figure, answers = report.figures["predictions"], report.answers
    assert len(figure.axes) == 30
    assert figure.get_suptitle() == "predicted / actual"
    for index, axis in enumerate(figure.axes):
        predicted = int(answers.probabilities[index].argmax())
        assert axis.get_title() == f"{predicted} / {tiny.y_test[index]}"
        wrong = predicted != tiny.y_test[index]
        assert axis.title.get_color() == ("#c62828" if wrong else "black")


def test_per_class_bars_are_precision_and_recall_from_the_confusion_matrix(report, tiny) -> None:
    axis = report.figures["per-class"].axes[0]
    confusion = report.answers.metrics.confusion
    precision, recall = axis.containers
    assert (precision.get_label(), recall.get_label()) == ("precision", "recall")
    with np.errstate(invalid="ignore"):
        expected_precision = np.nan_to_num(np.diag(confusion) / confusion.sum(axis=0))
    expected_recall = np.diag(confusion) / confusion.sum(axis=1)
    assert [bar.get_height() for bar in precision] == pytest.approx(expected_precision)
    assert [bar.get_height() for bar in recall] == pytest.approx(expected_recall)
    assert [label.get_text() for label in axis.get_xticklabels()] == list(tiny.class_names)


def test_reliability_table_by_hand() -> None:
    table = reliability(np.array([0.05, 0.15, 0.18, 0.95, 1.0]), np.array([0, 1, 0, 1, 0]), bins=10)
    assert table.counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table.accuracy[[0, 1, 9]].tolist() == [0.0, 0.5, 0.5]
    assert np.isnan(table.accuracy[2])
    assert table.confidence[[0, 1, 9]] == pytest.approx([0.05, 0.165, 0.975])
    # |0 - 0.05| * 1 + |0.5 - 0.165| * 2 + |0.5 - 0.975| * 2, over 5 answers
    assert table.expected_calibration_error == pytest.approx((0.05 + 0.67 + 0.95) / 5)


def test_reliability_diagram_shows_the_binned_accuracy(report) -> None:
    figure, answers = report.figures["reliability"], report.answers
    top, bottom = figure.axes
    table = reliability(answers.confidence, answers.correct)
    bars = [patch.get_height() for patch in top.patches]
    assert bars == pytest.approx(table.accuracy[table.counts > 0].tolist())
    assert [patch.get_height() for patch in bottom.patches] == table.counts.tolist()
    assert sum(table.counts) == 200
    assert f"{table.expected_calibration_error:.2%}" in top.get_title()


def test_robustness_panels_have_one_line_per_model(report, tiny) -> None:
    figure, curves = report.figures["robustness"], report.robustness
    assert titles(figure) == ["rotated", "shifted", "scaled", "thickened", "thinned", "noised"]
    assert list(curves.accuracy) == ["weak", "rejecting"]
    for axis, perturbation in zip(figure.axes, PERTURBATIONS, strict=True):
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == ["weak", "rejecting"]
        for line, label in zip(lines, ("weak", "rejecting"), strict=True):
            assert list(line.get_xdata()) == list(perturbation.levels)
            assert list(line.get_ydata()) == curves.accuracy[label][perturbation.name]
    # Unperturbed, the curve is the plain accuracy on the first 100 test images.
    clean = float((report.answers.predicted[:100] == tiny.y_test[:100]).mean())
    assert curves.accuracy["weak"]["rotated"][3] == pytest.approx(clean)
    assert curves.accuracy["weak"]["thinned"][0] == pytest.approx(clean)
    assert curves.accuracy["weak"]["noised"][-1] < clean  # heavy noise must cost something


def test_page_opens_in_chromium_with_every_image_loaded(report) -> None:
    html = report.html_path.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.html_path.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = page.locator("h2").all_inner_texts()
        page.close()
    assert len(images) == len(report.png_paths) == 8
    assert all(complete and width > 0 for _, complete, width in images), images
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert headings[:3] == ["Training images", "Training curves", "Confusion matrix"]
    assert "Model summary" in headings and "Robustness" in headings
    for key, path in report.png_paths.items():  # the PNGs beside the page are the embedded ones
        assert base64.b64encode(path.read_bytes()).decode() in html, key
    assert "Total params: 34,826" in html  # the layer table of seed-cnn-a


def test_a_damaged_or_missing_history_is_named(runs, tmp_path) -> None:
    import shutil

    from numbre.errors import NumbreError
    from numbre.insight.report import sections

    folder = tmp_path / "copy"
    shutil.copytree(runs["weak"], folder)
    (folder / "history.json").write_text('[{"epoch": "x"}]')
    with pytest.raises(NumbreError, match=r"history.json is not a training history \(a list of per-epoch "
                                          r"records of numbers\); rebuild the report from the model file"):
        load_run(folder)
    (folder / "history.json").unlink()
    section, figure = sections.history(load_run(folder), str(folder / MODEL))
    assert figure is None
    assert section.note == (f"No training curves: the run folder {folder} holds no history.json, the "
                            "per-epoch history `numbre train` writes; the rest of this report comes from "
                            "its model file.")


def test_a_model_file_has_no_curves_and_says_so_and_11_classes_fit(runs, tiny, tmp_path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a model file's report goes to report-<run name> in the working folder
    built = build_report(runs["rejecting"] / MODEL, tiny, options=OPTIONS)
    assert built.html_path == Path("report-rejecting") / "report.html" and built.html_path.is_file()
    assert "history" not in built.figures and "history" not in built.png_paths
    html = built.html_path.read_text()
    assert "No training curves:" in html and "history.json" in html
    axis = built.figures["confusion"].axes[0]
    shown = np.asarray(axis.images[0].get_array().data)
    assert shown.shape == (10, 11) and shown.sum() == 200  # no row for "not a digit": it is never true
    assert [label.get_text() for label in axis.get_xticklabels()][-1] == "not a digit"
    rejected = int(shown[:, 10].sum())
    assert f"{rejected:,} test images were answered &quot;not a digit&quot;" in html
    assert len(built.figures["per-class"].axes[0].containers[0]) == 10


def test_perturbations_do_what_they_say() -> None:
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 6:22, 12:16] = 1.0  # a vertical bar, 16 x 4 px, centred
    for perturbation in PERTURBATIONS:
        assert np.array_equal(perturbation.apply(image, perturbation.identity), image), perturbation.name
    turned = rotate(image, 90)
    assert np.array_equal(turned > 0.5, np.rot90(image, axes=(1, 2)) > 0.5)  # now a horizontal bar
    moved = shift(np.repeat(image, 40, axis=0), 3)
    rows, columns = np.indices((28, 28))
    centres = [((rows * m).sum() / m.sum() - 13.5, (columns * m).sum() / m.sum() - 13.5) for m in moved]
    assert all(sorted(map(abs, centre)) == [0.0, 3.0] for centre in centres)
    assert len({centre for centre in centres}) == 4  # all four directions occur
    assert (moved.sum(axis=(1, 2)) == image.sum()).all()  # nothing pushed off the edge
    small = scale(image, 0.5) > 0.5
    assert np.ptp(np.flatnonzero(small.any(axis=2))) + 1 == 8  # 16 px tall -> 8
    assert (thicken(image, 1) > 0.5).sum() == 18 * 6 - 4 and (thin(image, 1) > 0.5).sum() == 14 * 2
    noisy = noise(np.zeros((100, 28, 28), np.float32), 0.2)
    assert noisy.min() == 0.0 and noisy.max() <= 1.0  # clipped: half the noise is below black
    assert noisy.mean() == pytest.approx(0.2 / np.sqrt(2 * np.pi), rel=0.05)  # E[max(0, N(0, 0.2))]


def test_cli_writes_the_report_into_the_run_folder(runs, tiny_folder) -> None:
    result = run("report", str(runs["weak"]), "--data", str(tiny_folder), "--robustness-images", "50", "-q")
    assert result.exit_code == 0, result.output
    folder = runs["weak"] / "report"
    assert result.output.startswith(f"wrote {folder / 'report.html'} and 8 PNGs beside it in ")
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(["report.html", "samples.png", "history.png", "confusion.png", "per-class.png",
                            "misclassified.png", "predictions.png", "reliability.png", "robustness.png"])
    assert "Accuracy on the first 50 test images as they are rotated" in (folder / "report.html").read_text()


def test_legend_names_say_which_run_a_model_file_came_from(runs) -> None:
    assert load_run(runs["weak"]).label == "weak"
    assert load_run(runs["weak"] / MODEL).label == "weak"
    assert load_run(runs["weak"] / "best.safetensors").label == "weak (best)"
    assert unique_labels(["weak", "weak", "other", "weak"]) == ["weak", "weak (2)", "other", "weak (3)"]


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_errors_are_one_line_with_exit_status_2(runs, tmp_path, monkeypatch) -> None:
    line = one_error_line(run("report", str(tmp_path / "missing")))
    assert line == (f"numbre: error: no run folder or model file at {tmp_path / 'missing'}; give the folder "
                    "`numbre train --out DIR` wrote, or a .safetensors model file")
    line = one_error_line(run("report", str(tmp_path)))
    assert line.startswith(f"numbre: error: {tmp_path} holds no model.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    assert "is not a readable model file" in one_error_line(run("report", str(tmp_path / "bad.safetensors")))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the train extra were not installed
    line = one_error_line(run("report", str(runs["weak"])))
    assert line == "numbre: error: reports need matplotlib: pip install 'numbre[train]'"
    monkeypatch.setitem(sys.modules, "torch", None)
    line = one_error_line(run("report", str(runs["weak"])))
    assert line == "numbre: error: this command needs PyTorch: pip install 'numbre[train]'"
