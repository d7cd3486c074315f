"""The contest and saliency API over loopback HTTP against the real model, and the contest set's files.

The contest's promises: a game's digits come without their answers; an answer reveals the test
label and the served model's own answer, scored both ways; a bad id, guess or count is refused as
JSON with a status and a reason. The shipped set must be the shipped model's hardest MNIST test
digits (remade by scripts/make_contest_set.py when the model changes), and a server running
another model answers with that model. Saliency must be exactly `numbre.insight.explain`'s, coloured.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from modelhelpers import untrained_model_file
from numbre.insight.contest import (
    ContestError,
    answered_by,
    ask_model,
    hardest_digits,
    load_contest_set,
    save_contest_set,
)
from numbre.insight.explain import occlusion_saliency
from numbre.reading.recognize import Recognizer
from numbre.web.app import _add_error_handlers, create_app
from numbre.web.contest import CONTEST_FOLDER, contest_router
from numbre.web.uploads import png_base64
from webhelpers import ONE, PNG, live_server, strokes_png

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_contest_set.py"


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def shipped():
    return load_contest_set(CONTEST_FOLDER)


@pytest.fixture(scope="module")
def client(recognizer: Recognizer):
    with live_server(create_app(recognizer)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def decode_png(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """The response is `{"error": message}` with `status`, and the message holds every word."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], body["error"]
    return body["error"]


# --- a game's digits ---------------------------------------------------------------------------

def test_digits_come_without_their_answers(client: httpx.Client, shipped, recognizer: Recognizer) -> None:
    response = client.get("/api/contest", params={"count": 10})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"digits", "total", "model"}
    assert body["total"] == len(shipped) == 60 and body["model"] == recognizer.meta["architecture"]
    ids = [digit["id"] for digit in body["digits"]]
    assert len(ids) == 10 == len(set(ids)) and all(0 <= index < 60 for index in ids)
    for digit in body["digits"]:
        assert set(digit) == {"id", "image"}  # nothing that gives the answer away
        image = decode_png(digit["image"])
        assert image.size == (28, 28) and image.mode == "L"
        assert np.array_equal(np.asarray(image), shipped.images[digit["id"]])
    for word in ("label", "truth", "model_digit", "confidence", "right"):
        assert word not in response.text


def test_the_count_is_bounded_by_the_set(client: httpx.Client) -> None:
    assert len(client.get("/api/contest").json()["digits"]) == 10  # the page's game
    assert len(client.get("/api/contest", params={"count": 1}).json()["digits"]) == 1
    everything = client.get("/api/contest", params={"count": 60}).json()["digits"]
    assert sorted(digit["id"] for digit in everything) == list(range(60))
    refused(client.get("/api/contest", params={"count": 0}), 422, "count", "greater than or equal to 1")
    refused(client.get("/api/contest", params={"count": 61}), 422, "count", "less than or equal to 60")
    refused(client.get("/api/contest", params={"count": "ten"}), 422, "count", "integer")


# --- answers -----------------------------------------------------------------------------------

def test_an_answer_reveals_the_truth_and_scores_both_players(client: httpx.Client, shipped) -> None:
    for index in (0, 1, 17, 42, 59):
        truth = int(shipped.labels[index])
        model = int(shipped.answers.digits[index])
        for guess in (truth, (truth + 1) % 10):
            body = client.post("/api/contest/answer", json={"id": index, "guess": guess}).json()
            assert body == {"id": index, "guess": guess, "truth": truth,
                            "model": {"digit": model,
                                      "confidence": round(float(shipped.answers.confidences[index]), 6)},
                            "person_right": guess == truth, "model_right": model == truth}
    # the set is the model's hardest: its misreadings come first, so it loses the first digit
    assert client.post("/api/contest/answer", json={"id": 0, "guess": 0}).json()["model_right"] is False


def test_bad_answers_are_refused_as_json(client: httpx.Client) -> None:
    answer = "/api/contest/answer"
    refused(client.post(answer, json={"id": 60, "guess": 3}), 404, "no contest digit 60", "0 to 59")
    refused(client.post(answer, json={"id": -1, "guess": 3}), 422, "body.id", "greater than or equal to 0")
    refused(client.post(answer, json={"id": 3, "guess": 10}), 422, "body.guess", "less than or equal to 9")
    refused(client.post(answer, json={"id": 3, "guess": "7"}), 422, "body.guess", "integer")
    refused(client.post(answer, json={"id": 3}), 422, "body.guess", "required")
    refused(client.post(answer, content=b"7", headers={"Content-Type": "application/json"}), 422, "body")
    refused(client.post(answer, content=b"{", headers={"Content-Type": "application/json"}), 422, "JSON")
    refused(client.get(answer), 405)
    assert client.post(answer, json={"id": 3, "guess": 3}).status_code == 200  # still serving


def test_another_served_model_is_played_with_its_own_answers(tmp_path: Path, shipped) -> None:
    from numbre.model.export import export_onnx

    untrained = untrained_model_file("numbre-fast", tmp_path)
    other = Recognizer.load(export_onnx(untrained, tmp_path / "other.onnx"))
    expected = ask_model(other, shipped.images, shipped.labels)
    assert not np.array_equal(expected.digits, shipped.answers.digits)  # an untrained model reads otherwise
    with live_server(create_app(other)) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/api/contest").json()["model"] == "numbre-fast"
        for index in range(0, 60, 7):
            model = client.post("/api/contest/answer", json={"id": index, "guess": 0}).json()["model"]
            assert model == {"digit": int(expected.digits[index]),
                             "confidence": round(float(expected.confidences[index]), 6)}


def test_a_server_without_a_contest_set_says_so(recognizer: Recognizer, tmp_path: Path) -> None:
    from numbre.web.limits import WorkPool

    app = FastAPI()
    app.include_router(contest_router(recognizer, max_bytes=10**6, pool=WorkPool(1),
                                      folder=tmp_path / "nothing"))
    _add_error_handlers(app)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        refused(client.get("/api/contest"), 404, "this server has no contest", "no contest set at",
                "make_contest_set.py")
        refused(client.post("/api/contest/answer", json={"id": 0, "guess": 1}), 404, "no contest")
        assert client.post("/api/saliency", content=strokes_png(ONE), headers=PNG).status_code == 200


# --- the contest set's files ---------------------------------------------------------------------

def test_the_shipped_set_was_made_by_the_shipped_model(shipped, recognizer: Recognizer) -> None:
    _, recomputed = answered_by(shipped, recognizer)
    assert not recomputed, ("the shipped model changed since the contest set was made; remake it: "
                            "python scripts/make_contest_set.py")
    fresh = ask_model(recognizer, shipped.images, shipped.labels)
    assert np.array_equal(fresh.digits, shipped.answers.digits)
    assert np.allclose(fresh.confidences, shipped.answers.confidences, atol=1e-6)
    assert shipped.source["command"] == "python scripts/make_contest_set.py"


@pytest.mark.mnist
def test_the_shipped_set_is_the_shipped_models_hardest_mnist_digits(mnist, shipped, recognizer) -> None:
    assert shipped.source["dataset_sha256"] == mnist.checksum
    indices = shipped.source["test_indices"]
    assert np.array_equal(shipped.images, mnist.x_test[indices])
    assert np.array_equal(shipped.labels, mnist.y_test[indices])
    remade = hardest_digits(recognizer, mnist, 60, shipped.source["command"])
    assert remade.source["test_indices"] == indices, "remake it: python scripts/make_contest_set.py"
    every = ask_model(recognizer, mnist.x_test, mnist.y_test.astype(np.int64))
    misread = int((every.digits != mnist.y_test).sum())
    right = shipped.model_right
    assert right.sum() == max(0, 60 - misread) and not right[:min(misread, 60)].any()  # misreadings first
    probabilities = shipped.answers.label_probabilities
    assert np.all(np.diff(probabilities[right]) >= 0) and np.all(np.diff(probabilities[~right]) >= 0)


def test_the_script_writes_the_same_bytes_every_time(tiny_folder: Path, tiny, tmp_path: Path) -> None:
    outputs = []
    out = tmp_path / "contest"
    for _ in range(2):  # the second run overwrites the first
        result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tiny_folder), "--count", "12",
                                 "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "12 digits from" in result.stdout
        outputs.append({path.name: path.read_bytes() for path in sorted(out.iterdir())})
    assert outputs[0] == outputs[1] and sorted(outputs[0]) == ["contest.json", "contest.png"]
    listing = json.loads(outputs[0]["contest.json"])
    assert listing["source"]["command"] == (f"python scripts/make_contest_set.py --data {tiny_folder} "
                                            f"--count 12 --out {out}")
    written = load_contest_set(out)
    assert np.array_equal(written.images, tiny.x_test[written.source["test_indices"]])
    assert np.array_equal(written.labels, tiny.y_test[written.source["test_indices"]])


@pytest.mark.parametrize(("arguments", "message"), [
    (["--count", "0"], "count must be between 1 and 200, the test set's size; got 0"),
    (["--count", "201"], "count must be between 1 and 200, the test set's size; got 201"),
    (["--data", "/no/such/folder"], "--data /no/such/folder: no such file or folder"),
])
def test_the_script_refuses_bad_input_in_one_line(arguments: list[str], message: str, tiny_folder: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tiny_folder), *arguments,
                             "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("make_contest_set: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_a_damaged_set_is_refused_with_its_reason(shipped, tmp_path: Path) -> None:
    save_contest_set(shipped, tmp_path)
    assert np.array_equal(load_contest_set(tmp_path).images, shipped.images)  # the files round-trip
    listing = json.loads((tmp_path / "contest.json").read_text())
    listing["digits"] = listing["digits"][:-11]  # 49 digits: the sprite holds rows for 60
    (tmp_path / "contest.json").write_text(json.dumps(listing))
    with pytest.raises(ContestError, match="the sprite is 280x168 pixels, not the size of 49 digits"):
        load_contest_set(tmp_path)
    (tmp_path / "contest.json").write_text("{")
    with pytest.raises(ContestError, match=r"damaged .*make_contest_set\.py"):
        load_contest_set(tmp_path)
    save_contest_set(shipped, tmp_path)
    (tmp_path / "contest.png").unlink()
    with pytest.raises(ContestError, match=r"contest.png is missing"):
        load_contest_set(tmp_path)


# --- saliency ----------------------------------------------------------------------------------

def test_saliency_is_the_library_map_as_a_heat_map(client: httpx.Client, recognizer: Recognizer) -> None:
    png = strokes_png(ONE)
    body = client.post("/api/saliency", content=png, headers=PNG).json()
    prediction = recognizer.predict(png)
    expected = occlusion_saliency(recognizer.model, prediction.image, target=1)
    assert body["digit"] == body["target"] == prediction.digit == 1
    assert body["image"] == png_base64(prediction.image)
    values = np.array(body["values"])
    assert values.shape == (28, 28) and values.max() == 1.0 and values.min() == 0.0
    assert np.abs(values - expected).max() <= 5e-5
    heat = np.asarray(decode_png(body["saliency"]))
    assert heat.shape == (28, 28, 4)
    assert np.abs(heat[..., 3].astype(int) - np.round(255 * expected)).max() <= 1  # alpha is the saliency
    assert (heat[..., 3] > 0).sum() > 20 and (heat[..., 3][expected == 0] == 0).all()
    assert (heat[..., 0] == 255).all() and heat[values == 1.0][0, 1] == 0  # the peak is pure red
    assert heat[..., 3][prediction.image == 0].max() < heat[..., 3].max()  # ink matters more than paper
    multipart = client.post("/api/saliency", files={"file": ("one.png", png, "image/png")}).json()
    assert multipart == body


def test_saliency_of_an_empty_pad_is_null(client: httpx.Client) -> None:
    body = client.post("/api/saliency", content=strokes_png([]), headers=PNG).json()
    assert body["reason"] == "empty" and body["digit"] is None
    assert body["target"] is None and body["saliency"] is None and body["values"] is None


def test_saliency_refuses_what_predict_refuses(client: httpx.Client) -> None:
    refused(client.post("/api/saliency", content=b"hello, world", headers={"Content-Type": "text/plain"}),
            415, "text, not an image")
    refused(client.post("/api/saliency", content=b"\x89PNG\r\n\x1a\n broken", headers=PNG), 422)
    refused(client.post("/api/saliency", files={"picture": ("one.png", strokes_png(ONE), "image/png")}),
            422, "no file field 'file'")
    refused(client.post("/api/saliency", content=b"", headers=PNG), 422, "holds no image")


def test_saliency_keeps_to_the_servers_pixel_limit(recognizer: Recognizer) -> None:
    from numbre.web.limits import ServeLimits

    with (live_server(create_app(recognizer, limits=ServeLimits(max_pixels=50_000))) as url,
          httpx.Client(base_url=url, timeout=30) as client):
        refused(client.post("/api/saliency", content=strokes_png(ONE), headers=PNG), 422, "pixels")
        small = strokes_png([[(75, 20), (70, 120)]], size=(140, 140), pen=9)
        assert client.post("/api/saliency", content=small, headers=PNG).json()["digit"] == 1
