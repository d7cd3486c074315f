"""`/api/corrections`: off by default, bounded, named by the server, written whole or not at all.

Servers run in a thread over loopback HTTP (webhelpers.live_server) with the shipped model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import numbre.data.corrections as corrections_module
from numbre.cli import cli
from numbre.data.corrections import CorrectionLimits, CorrectionStore, load_corrections, read_corrections
from numbre.errors import NumbreError
from numbre.reading.images import grey_pixels, open_image
from numbre.reading.recognize import Recognizer
from numbre.web.app import create_app
from numbre.web.corrections import store_environment, store_from_environment
from webhelpers import ONE, PNG, live_server, strokes_png

FLAGGED_ONE = [[(60, 120), (150, 40), (150, 240)]]  # a 1 with a long flag: the shipped model reads a 7
NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}(-28x28\.png|-drawn\.png|\.json)$")


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@contextmanager
def serving(recognizer: Recognizer, store: CorrectionStore | None) -> Iterator[httpx.Client]:
    with live_server(create_app(recognizer, corrections=store)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_corrections_are_off_by_default_and_say_how_to_turn_them_on(recognizer: Recognizer,
                                                                     tmp_path: Path) -> None:
    with serving(recognizer, None) as client:
        response = client.post("/api/corrections?label=1", content=strokes_png(ONE), headers=PNG)
        assert response.status_code == 403
        assert response.json() == {"error": "this server does not keep corrections; its operator can turn "
                                            "them on with `numbre serve --corrections DIR` (or "
                                            "NUMBRE_SERVE_CORRECTIONS=DIR)"}
        status = client.get("/api/corrections").json()
        assert status["enabled"] is False and "--corrections DIR" in status["message"]
        assert client.get("/api/ready").json()["status"] == "ready"
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "--corrections DIRECTORY" in help_text and "(default: off" in help_text


def test_a_correction_keeps_the_drawing_as_drawn_and_as_the_network_saw_it(recognizer: Recognizer,
                                                                             tmp_path: Path) -> None:
    folder = tmp_path / "corrections"
    drawing = strokes_png(FLAGGED_ONE)
    with serving(recognizer, CorrectionStore(folder)) as client:
        assert client.get("/api/corrections").json() == {"enabled": True, "count": 0, "max_count": 10_000,
                                                         "bytes": 0, "max_bytes": 200_000_000}
        response = client.post("/api/corrections?label=1", content=drawing, headers=PNG)
        assert response.status_code == 201, response.text
        answer = response.json()
        assert (answer["label"], answer["read_as"], answer["count"]) == (1, 7, 1)
        status = client.get("/api/corrections").json()
        on_disk = sum(path.stat().st_size for path in folder.iterdir())
        assert status["count"] == 1 and status["bytes"] == on_disk
    names = files_in(folder)
    assert len(names) == 3 and all(NAME.match(name) for name in names), names
    assert names == sorted(f"{answer['name']}{suffix}" for suffix in ("-28x28.png", "-drawn.png", ".json"))
    with Image.open(folder / f"{answer['name']}-drawn.png") as drawn:
        expected = np.round(grey_pixels(open_image(drawing)) * 255).astype(np.uint8)
        assert drawn.mode == "L" and np.array_equal(np.asarray(drawn), expected)
    images, labels, [correction] = load_corrections(folder)
    seen = recognizer.predict(drawing).image
    assert labels.tolist() == [1] and correction.read_as == 7 and correction.source == "web page"
    assert np.abs(images[0].astype(int) - np.round(seen * 255)).max() <= 1
    record = json.loads((folder / f"{answer['name']}.json").read_text())
    assert record["model"].startswith("numbre-robust ") and record["confidence"] > 0.5


def test_nothing_the_client_sends_becomes_a_path(recognizer: Recognizer, tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "corrections"
    with serving(recognizer, CorrectionStore(folder)) as client:
        upload = {"file": ("../../../escaped.png", strokes_png(ONE), "image/png")}
        response = client.post("/api/corrections", params={"label": 1, "name": "../../escaped2",
                                                             "path": str(tmp_path / "escaped3.png")},
                               files=upload)
        assert response.status_code == 201, response.text
    assert all(NAME.match(name) for name in files_in(folder)) and len(files_in(folder)) == 3
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize("label", ["10", "-1", "seven", "1.5", None])
def test_a_label_that_is_not_a_digit_is_refused(recognizer: Recognizer, tmp_path: Path, label) -> None:
    folder = tmp_path / "corrections"
    with serving(recognizer, CorrectionStore(folder)) as client:
        query = "" if label is None else f"?label={label}"
        response = client.post(f"/api/corrections{query}", content=strokes_png(ONE), headers=PNG)
    assert response.status_code == 422 and response.json()["error"].startswith("query.label: ")
    assert files_in(folder) == []


def test_bytes_that_are_not_an_image_are_refused(recognizer: Recognizer, tmp_path: Path) -> None:
    folder = tmp_path / "corrections"
    with serving(recognizer, CorrectionStore(folder)) as client:
        text = client.post("/api/corrections?label=1", content=b"hello",
                           headers={"Content-Type": "text/plain"})
        broken = client.post("/api/corrections?label=1", content=strokes_png(ONE)[:60], headers=PNG)
    assert text.status_code == 415 and "not an image" in text.json()["error"]
    assert broken.status_code == 422 and broken.json()["error"]
    assert files_in(folder) == []


def test_a_full_folder_answers_507_with_what_to_do(recognizer: Recognizer, tmp_path: Path) -> None:
    folder = tmp_path / "corrections"
    with serving(recognizer, CorrectionStore(folder, CorrectionLimits(max_count=2))) as client:
        statuses = [client.post(f"/api/corrections?label={digit}", content=strokes_png(ONE), headers=PNG)
                    for digit in (1, 2, 3)]
        assert [response.status_code for response in statuses] == [201, 201, 507]
        assert statuses[2].json()["error"] == (
            "the corrections folder is full: it holds 2 corrections, its limit; train with them, then move "
            "them elsewhere, or raise the limit (--corrections-max-count)")
        assert client.get("/api/corrections").json()["count"] == 2
    assert [correction.label for correction in read_corrections(folder)] == [1, 2]


def test_the_byte_limit_counts_every_file_in_the_folder(recognizer: Recognizer, tmp_path: Path) -> None:
    folder = tmp_path / "corrections"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(b"x" * 5000)  # not a correction, but it takes room all the same
    with serving(recognizer, CorrectionStore(folder, CorrectionLimits(max_bytes=6000))) as client:
        response = client.post("/api/corrections?label=1", content=strokes_png(ONE), headers=PNG)
    assert response.status_code == 507
    assert re.fullmatch(r"the corrections folder is full: it holds 5,000 bytes and this correction needs "
                        r"[\d,]+ more, over its 6,000 byte limit; train with them, then move them elsewhere, "
                        r"or raise the limit \(--corrections-max-bytes\)", response.json()["error"])
    assert files_in(folder) == ["notes.txt"]


def test_requests_at_once_never_take_the_folder_past_its_limit(recognizer: Recognizer,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "corrections"
    drawing = strokes_png(ONE)
    with serving(recognizer, CorrectionStore(folder, CorrectionLimits(max_count=5))) as client, \
            ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: client.post("/api/corrections?label=1", content=drawing,
                                                    headers=PNG).status_code, range(12)))
    assert sorted(codes) == [201] * 5 + [507] * 7
    assert len(read_corrections(folder)) == 5 and len(files_in(folder)) == 15


def test_a_failed_write_leaves_nothing_behind(recognizer: Recognizer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The record is written last; when any write fails (here the record's, as on a full disk), the
    files already written are removed and no temporary file stays: the folder is as it was."""
    folder = tmp_path / "corrections"
    real_write = corrections_module.atomic_write

    def failing_write(path: Path, data: bytes) -> None:
        if path.suffix == ".json":
            raise NumbreError(f"could not write {path}: No space left on device; the previous file, if any, "
                              "is unchanged")
        real_write(path, data)

    with serving(recognizer, CorrectionStore(folder)) as client:
        first = client.post("/api/corrections?label=4", content=strokes_png(ONE), headers=PNG)
        assert first.status_code == 201
        kept = files_in(folder)
        monkeypatch.setattr(corrections_module, "atomic_write", failing_write)
        response = client.post("/api/corrections?label=1", content=strokes_png(ONE), headers=PNG)
        assert response.status_code == 500
        assert response.json()["error"].startswith("the server could not keep the correction (the correction "
                                                   "was not kept: could not write ")
        assert "No space left on device" in response.json()["error"]
    assert files_in(folder) == kept  # the first correction only: no image of the second, no .part file
    assert [correction.label for correction in read_corrections(folder)] == [4]


def test_a_correction_counts_only_once_its_record_is_written(tmp_path: Path) -> None:
    """Images without their record (a save cut off by a crash) are neither listed nor trained on."""
    folder = tmp_path / "corrections"
    store = CorrectionStore(folder)
    store.save(np.full((280, 280), 255, np.uint8), np.zeros((28, 28), np.float32), 3)
    (folder / "20990101T000000.000000Z-0123abcd-28x28.png").write_bytes(b"half a save")
    assert store.usage().count == 1 and [item.label for item in read_corrections(folder)] == [3]
    images, labels, _ = load_corrections(folder)
    assert images.shape == (1, 28, 28) and labels.tolist() == [3]


def test_serve_hands_the_folder_to_its_worker_processes(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c", CorrectionLimits(max_count=7, max_bytes=9000))
    again = store_from_environment(store_environment(store))
    assert again is not None and again.folder == store.folder and again.limits == store.limits
    assert store_from_environment(store_environment(None)) is None
    environment = {"NUMBRE_SERVE_CORRECTIONS": "x", "NUMBRE_SERVE_CORRECTIONS_MAX_COUNT": "many"}
    with pytest.raises(NumbreError, match=r"NUMBRE_SERVE_CORRECTIONS_MAX_COUNT='many' is not a whole number"):
        store_from_environment(environment)


def test_serve_refuses_a_corrections_folder_it_cannot_make(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--corrections", str(blocker / "corrections")])
    assert result.exit_code == 2
    assert f"--corrections {blocker / 'corrections'}: {blocker} is a file, not a folder" in result.output


def test_a_wrong_method_on_corrections_names_both_methods_it_serves(recognizer: Recognizer) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(create_app(recognizer))
    answer = client.request("DELETE", "/api/corrections")
    assert answer.status_code == 405 and answer.json() == {"error": "Method Not Allowed"}
    assert answer.headers["allow"] == "GET, HEAD, POST"
    assert client.request("PUT", "/api/predict").headers["allow"] == "POST"
