"""Training the CTC line network: the loss falls, one seed gives one model, the ONNX export reads
lines in a process without torch, and a changed file is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from numbre.data.drawn import glyph
from numbre.data.lines import make_lines
from numbre.errors import ModelFileError, TrainingError
from numbre.model.line_model import LineModel
from numbre.model.line_net import export_line_onnx
from numbre.reading.line_reader import prepare_line
from numbre.reading.preprocess import ink_map
from numbre.training.lines import LineTrainConfig, batches, train_lines

DIGITS = np.stack([glyph(digit, np.random.default_rng(10 * copy + digit)) for copy in range(3)
                   for digit in range(10)])
LABELS = np.tile(np.arange(10), 3).astype(np.uint8)


@pytest.fixture(scope="module")
def prepared() -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
    images, labels = [], []
    for line in make_lines(48, 5, DIGITS, LABELS):
        found = prepare_line(ink_map(line.image))
        images.append(np.round(found.image * 255).astype(np.uint8))
        labels.append(line.labels)
    return images, labels


def test_a_short_run_lowers_the_loss_and_repeats_from_its_seed(prepared) -> None:
    images, labels = prepared
    config = LineTrainConfig(epochs=3, batch=8, learning_rate=3e-3, seed=2, threads=1)
    model, history = train_lines(images, labels, config, report=lambda _: None)
    assert len(history.loss) == 3 and history.loss[-1] < 0.8 * history.loss[0]
    again, repeat = train_lines(images, labels, config, report=lambda _: None)
    assert repeat.loss == history.loss
    for (name, value), (_, other) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(value, other), name


def test_without_threads_the_tuner_times_steps_and_its_changes_are_reported(prepared, monkeypatch) -> None:
    from numbre.training import threads

    timed: list[float] = []

    class Decisive(threads.ThreadTuner):
        """Decides at once, as a trial beside another training would: one thread is faster."""

        def step_done(self, seconds: float) -> threads.ThreadChange | None:
            timed.append(seconds)
            if self.changes:
                return None
            self.changes.append(threads.ThreadChange(1, {2: 1.0, 1: 0.05}, 1.0))
            self._switch(1)
            return self.changes[-1]

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "ThreadTuner", Decisive)
    before = torch.get_num_threads()
    try:
        said: list[str] = []
        images, labels = prepared
        _, history = train_lines(images[:16], labels[:16], LineTrainConfig(epochs=2, batch=8),
                                 report=said.append)
        assert history.threads == [1, 1] and len(timed) == 4 and all(value > 0 for value in timed)
        assert said[0] == ("other programs keep 1.0 cores busy; a step took 2 threads 1000 ms, "
                           "1 thread 50 ms: training on 1")
        _, told = train_lines(images[:16], labels[:16], LineTrainConfig(epochs=1, batch=8, threads=2),
                              report=said.append)
        assert told.threads == [2] and len(timed) == 4  # --threads: no tuner
    finally:
        torch.set_num_threads(before)


def test_lines_of_similar_width_are_batched_together() -> None:
    widths = np.array([40, 400, 44, 404, 48, 408, 52, 412])
    groups = batches(widths, 4, np.random.default_rng(0))
    found = sorted(sorted(widths[group].tolist()) for group in groups)
    assert found == [[40, 44, 48, 52], [400, 404, 408, 412]]


def test_a_line_too_short_for_its_labels_is_refused() -> None:
    with pytest.raises(TrainingError, match="line 0 has 5 labels for 4 frames"):
        train_lines([np.zeros((32, 16), np.uint8)], [(1, 2, 3, 4, 5)], LineTrainConfig(epochs=1))


def test_the_export_reads_lines_without_torch_and_refuses_a_changed_file(prepared, tmp_path: Path) -> None:
    images, labels = prepared
    model, _ = train_lines(images[:16], labels[:16], LineTrainConfig(epochs=1, batch=8, threads=1),
                           report=lambda _: None)
    path = tmp_path / "line.onnx"
    export_line_onnx(model, path, {"lines": 16})
    line = make_lines(1, 99, DIGITS, LABELS)[0]
    np.save(tmp_path / "line.npy", line.image)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # importing torch now fails
        import numpy as np
        from numbre.model.line_model import CLASSES, LineModel
        from numbre.reading.line_reader import prepare_line, read_tokens
        from numbre.reading.preprocess import ink_map
        model = LineModel.load({str(path)!r})
        found = ink_map(np.load({str(tmp_path / "line.npy")!r}))
        logits = model.logits(prepare_line(found).image)
        line = read_tokens(found, model)
        assert logits.shape[1] == CLASSES and len(line.tokens) == len(line.boxes)
        print("frames", logits.shape[0], "meta", model.meta["lines"], model.meta["kind"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "meta 16 ctc-line" in done.stdout
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"changed\.onnx was modified after export"):
        LineModel.load(changed)
