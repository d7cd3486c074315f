"""`numbre batch` on a local Ray of 2 CPUs: the same records as `numbre predict`, error rows,
a killed worker, and resuming.

Ray is started once for the module (about ten seconds); the commands run in this process and use
it. The images are drawn digits on small canvases, generated once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from numbre.batch.inputs import expand
from numbre.batch.run import run_batch
from numbre.batch.store import Store, read_records
from numbre.cli import cli
from numbre.data.drawn import drawn_digit, drawn_number, glyph

ray = pytest.importorskip("ray")  # the cluster extra; part of the test extra, so present in CI

COUNT = 2000
BAD = {"text.png": b"not an image at all\n", "empty.png": b"", "truncated.png": None}


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """COUNT drawn digits in two subfolders, plus three files that are not images."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(7)
    for index in range(COUNT):
        folder = root / f"box-{index % 2}"
        folder.mkdir(exist_ok=True)
        image = drawn_digit(glyph(index % 10, rng), rng, canvas=84, style="canvas")
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    for name, data in BAD.items():
        if data is None:
            data = (root / "box-0" / "00000.png").read_bytes()[:60]
        (root / "box-1" / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def predicted(archive: Path) -> dict[str, dict]:
    """`numbre predict --json` on every file of the archive, by file."""
    result = run("predict", "--json", str(archive / "box-0"), str(archive / "box-1"))
    assert result.exit_code == 1  # the unreadable files
    return {record["file"]: record for record in json_lines(result.output)}


@pytest.fixture(scope="module")
def first_run(local_ray, archive: Path, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("batch") / "out"
    result = run("batch", str(archive), "-o", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result.output


def comparable(records: dict[str, dict]) -> dict[str, dict]:
    """Records with an error's text left out: `predict` names the file in it, a batch has the bytes."""
    return {file: ({"file": file, "error": True} if "error" in record else record)
            for file, record in records.items()}


def test_batch_gives_the_records_of_predict(first_run, predicted, archive):
    out, output = first_run
    records = read_records(out)
    by_file = {record["file"]: record for record in records}
    assert len(records) == len(by_file) == COUNT + len(BAD)
    assert comparable(by_file) == comparable(predicted)
    errors = sorted(Path(file).name for file, record in by_file.items() if "error" in record)
    assert errors == sorted(BAD)
    rejected = sum(1 for record in records if "error" not in record and record["digit"] is None)
    assert f"read {COUNT + len(BAD)} images" in output
    assert f"{rejected} rejected, {len(BAD)} unreadable; 0 already in" in output
    assert "not an image" in by_file[str(archive / "box-1" / "text.png")]["error"]
    # a Parquet folder any reader opens as one table: the temporary files and manifest are hidden
    assert pq.read_table(out).num_rows == COUNT + len(BAD)


def test_a_second_run_reads_nothing_and_a_deleted_row_is_read_again(first_run, archive, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    archive_root = archive
    parts = sorted(out.glob("part-*.parquet"))

    again = run("batch", str(archive_root), "-o", str(out), "--no-progress")
    assert again.exit_code == 0, again.output
    assert f"read 0 images: 0 rejected, 0 unreadable; {COUNT + len(BAD)} already in" in again.output
    assert sorted(out.glob("part-*.parquet")) == parts

    table = pq.read_table(parts[0])
    dropped = table.column("file").to_pylist()[:25]
    pq.write_table(table.slice(25), parts[0])
    resumed = run("batch", str(archive_root), "-o", str(out), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert "read 25 images" in resumed.output
    new = sorted(set(out.glob("part-*.parquet")) - set(parts))
    added = [file for part in new for file in pq.read_table(part).column("file").to_pylist()]
    assert sorted(added) == sorted(dropped)
    files = [record["file"] for record in read_records(out)]
    assert len(files) == len(set(files)) == COUNT + len(BAD)
    assert sorted(read_records(out), key=lambda r: r["file"]) == sorted(read_records(first_run[0]),
                                                                        key=lambda r: r["file"])


def map_workers() -> list[psutil.Process]:
    """The Ray Data actors of this test's Ray: processes below this one titled ray::MapWorker."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith("ray::MapWorker"):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_killed_worker_loses_and_doubles_nothing(local_ray, archive, predicted, tmp_path):
    killed: list[int] = []

    def kill_one(part: Path) -> None:
        if not killed:
            workers = map_workers()
            assert workers, "no ray::MapWorker process found to kill"
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)

    out = tmp_path / "out"
    summary = run_batch(expand([str(archive)]), out, workers=2, part_rows=50, progress=False,
                        on_part=kill_one)
    assert killed, "the run wrote no part to kill a worker after"
    assert summary.read == COUNT + len(BAD)
    assert summary.parts > 2  # the kill came while most of the work was still to do
    records = read_records(out)
    rows = [file for part in Store(out, "digit", "parquet").parts()
            for file in pq.read_table(part).column("file").to_pylist()]
    assert sorted(rows) == sorted(predicted)  # every image exactly once, before any deduplication
    assert comparable({r["file"]: r for r in records}) == comparable(predicted)


def test_numbers_as_json_lines_from_a_list_file_match_read(local_ray, tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "numbers"
    folder.mkdir()
    names = []
    for index in range(40):
        digits = [glyph(int(d), rng) for d in str(rng.integers(10, 1000))]
        Image.fromarray(drawn_number(digits, rng, height=80)).save(folder / f"n{index}.png")
        names.append(f"numbers/n{index}.png")
    listing = tmp_path / "scans.txt"
    listing.write_text("# scanned forms\n" + "\n".join([*names, "numbers/gone.png"]) + "\n\n")
    out = tmp_path / "out"

    result = run("batch", str(listing), "-o", str(out), "--mode", "number", "--format", "jsonl",
                 "--workers", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    stored = [json.loads(line) for part in sorted(out.glob("part-*.jsonl"))
              for line in part.read_text().splitlines()]
    expected = json_lines(run("read", "--json", *[str(tmp_path / name) for name in names]).output)
    gone = str(tmp_path / "numbers" / "gone.png")
    assert sorted(stored, key=lambda r: r["file"]) == sorted(
        [*expected, {"file": gone, "error": f"no such file: {gone} (listed in {listing})"}],
        key=lambda r: r["file"])
    assert "read 41 images" in result.output and "1 unreadable" in result.output


def test_resuming_in_another_mode_is_refused(first_run, archive):
    result = run("batch", str(archive), "-o", str(first_run[0]), "--mode", "number")
    assert result.exit_code == 2
    assert "holds a batch of another kind" in result.output


def test_clear_errors(tmp_path, archive, monkeypatch):
    nothing = run("batch", str(tmp_path / "none-*.png"), "-o", str(tmp_path / "out"))
    assert nothing.exit_code == 2
    assert "numbre: error: no images matched" in nothing.output

    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = run("batch", str(archive / "box-0"), "-o", str(blocker / "out"))
    assert unwritable.exit_code == 2
    assert "is a file, not a folder" in unwritable.output and "Traceback" not in unwritable.output

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    missing = run("batch", str(archive / "box-0"), "-o", str(tmp_path / "fresh"))
    assert missing.exit_code == 2
    assert "numbre: error: numbre batch needs Ray, which is not installed: pip install 'numbre[cluster]'" \
        in missing.output


def test_a_model_that_cannot_load_is_refused_before_ray_starts(archive, tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a model")
    result = run("batch", str(archive / "box-0"), "-o", str(tmp_path / "out"), "--model", str(broken))
    assert result.exit_code == 2
    assert result.output.startswith("numbre: error: ") and "model.onnx" in result.output
    assert "Traceback" not in result.output
