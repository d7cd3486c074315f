"""What an outside probe of model files, image reading and command output found, held shut.

- Model files whose weights hold NaN or infinity (with valid digests: anyone can compute a
  SHA-256) are refused when saved, exported and loaded, in both formats; a model whose finite
  weights overflow answers an error, never a bare NaN in JSON; and reading a line stays bounded
  by the input whatever numbers the model gives (`read_line.best_path`).
- No source is read past the image limit plus one byte: /dev/zero, /dev/urandom, a pipe, a FIFO,
  standard input. Checked in a child process whose peak memory is its own (os.wait4).
- Decoder bombs within the pixel limit: a 1.5 kB WebP of 39 MP and a 250 kB float TIFF of 39 MP
  are refused from their header, before any pixel is decoded.
- Output: model text in error lines is cut short, class names in evaluate's table and file names
  in predict/read output are escaped, --json is valid UTF-8 JSON for any file name, and predict
  prints a class's name (a Fashion-MNIST model says "Sandal", not 5).

`python tests/reading/test_probe_files.py` prints the peak memory of each probe case as a table.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper
from PIL import Image
from safetensors.numpy import save_file

from numbre.cli import cli
from numbre.errors import ImageError, ModelFileError
from numbre.model.export import export_onnx
from numbre.model.file import (
    FORMAT,
    FORMAT_VERSION,
    INPUT_SPEC,
    META_DIGEST,
    load_model_file,
    meta_digest,
    save_model_file,
    weights_digest,
)
from numbre.model.metrics import compute_metrics
from numbre.model.network import load_torch_model, state_to_numpy
from numbre.model.onnx_model import META_KEY, OnnxModel, seal_onnx
from numbre.model.zoo import create_model
from numbre.reading.images import _webp_size, load_image, read_at_most
from numbre.reading.limits import MAX_BYTES
from numbre.reading.read_line import best_path
from numbre.reading.recognize import Prediction, Reading, Recognizer

DIGITS = [str(digit) for digit in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
PYTHON = sys.executable
NUMBRE = str(Path(sys.executable).with_name("numbre"))
CHILD_PEAK_MB = 400  # the whole child's peak RSS, imports and model included (a generous bound)
DECODE_PEAK_MB = 250  # a child that only imports the image reader and refuses a bomb


# --- model files -------------------------------------------------------------------------------

def model_tensors(name: str = "numbre-fast") -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return state_to_numpy(create_model(name))


def model_meta(architecture: str = "numbre-fast", names: list[str] = DIGITS) -> dict:
    return {"architecture": architecture, "class_names": names, "input": INPUT_SPEC}


def write_with_digests(path: Path, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """A model file exactly as `save_model_file` writes one, digests and all, without its checks:
    what a stranger (or numbre before this fix) can hand over."""
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "weights_sha256": weights_digest(tensors)}
    meta[META_DIGEST] = meta_digest(meta)
    save_file(tensors, str(path), metadata={"numbre": json.dumps(meta, sort_keys=True)})
    return path


def poisoned(tensors: dict[str, np.ndarray], value: float, name: str | None = None) -> tuple[dict, str]:
    """`tensors` with one value of one float tensor (the first weight, or `name`) set to `value`."""
    name = name or next(key for key in sorted(tensors) if key.endswith("weight"))
    changed = {key: array.copy() for key, array in tensors.items()}
    changed[name].reshape(-1)[0] = value
    return changed, name


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> Path:
    tensors, _ = poisoned(model_tensors(), np.nan)
    return write_with_digests(tmp_path_factory.mktemp("nan") / "model.safetensors", tensors, model_meta())


@pytest.fixture(scope="module")
def clean_onnx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    save_model_file(folder / "model.safetensors", model_tensors(), model_meta())
    return export_onnx(folder / "model.safetensors", folder / "model.onnx")


def resealed(source: Path, out: Path, change) -> Path:
    """An ONNX export with its initializers changed by `change(name, array) -> array`, sealed again
    with numbre's own digests: only the content checks can refuse it."""
    proto = onnx.load(str(source))
    for index, tensor in enumerate(proto.graph.initializer):
        array = numpy_helper.to_array(tensor)
        updated = change(tensor.name, array)
        if updated is not array:
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(updated, tensor.name))
    meta = json.loads({entry.key: entry.value for entry in proto.metadata_props}[META_KEY])
    seal_onnx(proto, meta)
    out.write_bytes(proto.SerializeToString())
    return out


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_save_model_file_refuses_non_finite_weights_and_writes_nothing(value: float, tmp_path: Path) -> None:
    tensors, name = poisoned(model_tensors(), value)
    path = tmp_path / "model.safetensors"
    with pytest.raises(ModelFileError) as refused:
        save_model_file(path, tensors, model_meta())
    message = str(refused.value)
    assert f"was not written: weight tensor {name!r} holds NaN or infinite values" in message
    assert "retrain it" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_model_file_with_nan_weights_and_valid_digests_is_refused_at_load(nan_model: Path) -> None:
    name = next(key for key in sorted(model_tensors()) if key.endswith("weight"))
    with pytest.raises(ModelFileError, match=rf"is refused: weight tensor '{name}' holds NaN or infinite"):
        load_model_file(nan_model)


def test_export_refuses_a_model_file_with_nan_weights(nan_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="holds NaN or infinite values"):
        export_onnx(nan_model, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_an_onnx_file_with_non_finite_initializers_is_refused_at_load(clean_onnx: Path, tmp_path: Path,
                                                                       value: float) -> None:
    target = max(onnx.load(str(clean_onnx)).graph.initializer, key=lambda tensor: len(tensor.raw_data)).name

    def poison(name: str, array: np.ndarray) -> np.ndarray:
        if name != target:
            return array
        array = array.copy()
        array.reshape(-1)[3] = value
        return array

    path = resealed(clean_onnx, tmp_path / "poisoned.onnx", poison)
    with pytest.raises(ModelFileError, match=rf"poisoned.onnx is refused: weight tensor '{target}' holds"):
        OnnxModel.load(path)
    result = CliRunner().invoke(cli, ["predict", "--model", str(path), "-"], input=b"\x89PNG")
    assert result.exit_code == 2 and "holds NaN or infinite values" in result.output
    assert "Traceback" not in result.output


def test_predict_and_read_with_a_nan_model_file_exit_2_with_the_reason(nan_model: Path,
                                                                       tmp_path: Path) -> None:
    image = tmp_path / "seven.png"
    Image.fromarray(np.pad(np.full((40, 8), 255, np.uint8), 20)).save(image)
    for command in (["predict", "--json"], ["predict"]):
        result = CliRunner().invoke(cli, [*command, "--model", str(nan_model), str(image)])
        assert result.exit_code == 2, result.output
        assert "holds NaN or infinite values" in result.output and "NaN," not in result.output
        assert "nan%" not in result.output
    # In a child with a memory cap: before, this never finished (1.8 GB after 60 s).
    status, stdout, stderr, _ = measured_child([NUMBRE, "read", "--json", "--model", str(nan_model),
                                                str(image)], cap_gb=2, timeout=240)
    assert status == 2 and "holds NaN or infinite values" in stderr and stdout == "", stderr[-500:]


def test_evaluate_refuses_a_nan_model_instead_of_reporting_chance(nan_model: Path, tiny_folder: Path) -> None:
    """Before: 9.8% accuracy on MNIST, no warning. Now the model does not load."""
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(cli, ["evaluate", str(nan_model), "--data", str(tiny_folder), "--no-png",
                                          *extra])
        assert result.exit_code == 2, result.output
        assert "holds NaN or infinite values" in result.output
        assert "accuracy" not in result.output


@pytest.fixture(scope="module")
def overflowing_onnx(clean_onnx: Path, tmp_path_factory) -> Path:
    """Finite weights (each below float32's 3.4e38) whose sums overflow: the digests and the load
    checks pass, and the network answers infinity, then NaN."""
    return resealed(clean_onnx, tmp_path_factory.mktemp("overflow") / "overflow.onnx",
                    lambda name, array: np.full_like(array, 3e38) if array.dtype == np.float32 else array)


def test_a_model_that_answers_nan_gives_an_error_never_nan_json(overflowing_onnx: Path,
                                                               tmp_path: Path) -> None:
    recognizer = Recognizer.load(overflowing_onnx)
    image = np.pad(np.full((40, 8), 1.0, np.float32), 20)
    noise = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    assert not np.isfinite(recognizer.model.logits(noise)).any()  # every logit overflows
    with pytest.raises(ModelFileError, match="answered NaN or infinity for this image"):
        recognizer.predict(image)
    with pytest.raises(ModelFileError, match="answered NaN or infinity for this image"):
        recognizer.read(image)
    path = tmp_path / "one.png"
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    for command in ("predict", "read"):
        result = subprocess.run([NUMBRE, command, "--json", "--model", str(overflowing_onnx), str(path)],
                                capture_output=True, timeout=300)
        assert result.returncode == 1, result.stderr
        answer = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
        assert "answered NaN or infinity" in answer["error"]


def test_reading_a_line_with_nan_scores_ends_and_covers_it() -> None:
    """Before: with NaN scores no slice had a way back and the walk back never ended (1.8 GB after
    60 s, 5.4 GB after 10 min). Run in a child with a memory cap, so the old code fails, not hangs."""
    code = textwrap.dedent("""
        import json, resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from numbre.reading.read_line import best_path
        spans = np.array([(0, 1), (1, 2), (0, 2), (2, 3), (1, 3), (3, 4), (2, 4)], np.int64)
        for scores in (np.full(7, np.nan), np.array([np.nan, 1, np.inf, -np.inf, 0, np.nan, 2.0])):
            print(json.dumps([spans[k].tolist() for k in best_path(spans, 4, scores)]))
        # No run of candidates covers slice 1: no reading, and the walk back ends.
        print(json.dumps(best_path(np.array([(0, 1), (2, 3)], np.int64), 3, np.array([1.0, 1.0]))))
    """)
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    *covers, uncovered = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(covers) == 2 and uncovered == []
    for covered in covers:
        assert covered[0][0] == 0 and covered[-1][1] == 4
        assert all(left[1] == right[0] for left, right in itertools.pairwise(covered))
    assert best_path(np.array([(0, 1), (1, 2), (0, 2)], np.int64), 2, np.array([0.5, -0.5, 0.1])) == [2]


def test_json_shapes_refuse_non_finite_numbers() -> None:
    blank = np.zeros((28, 28), np.float32)
    broken = Prediction(3, float("nan"), (float("nan"),) * 10, blank)
    for shape in (broken, Reading(None, (broken,))):
        with pytest.raises(ModelFileError, match="probability of nan"):
            shape.to_dict()
    fine = Prediction(3, 0.5, (0.5,) + (0.5 / 9,) * 9, blank)
    assert json.dumps(fine.to_dict(), allow_nan=False)


# --- unbounded reads ---------------------------------------------------------------------------

def measured_child(command: list[str], stdin=None, timeout: float = 300,
                   cap_gb: int = 3) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, peak RSS in MB) of `command`, the peak the child's own.

    A small Python parent starts the command and reports its rusage (os.wait4), so the peak is
    this child's alone. The command may use at most `cap_gb` GB of address space, so code that reads
    without bound fails quickly instead of filling a shared machine's memory.
    """
    wrapper = textwrap.dedent("""
        import os, resource, subprocess, sys, threading
        def cap():
            limit = int(sys.argv[1]) << 30
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        child = subprocess.Popen(sys.argv[3:], preexec_fn=cap)
        timer = threading.Timer(float(sys.argv[2]), child.kill)  # a hang ends here, not in an orphan
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        timer.cancel()
        sys.stderr.write("\\nPEAK_KB=%d STATUS=%d" % (usage.ru_maxrss, os.waitstatus_to_exitcode(status)))
    """)
    result = subprocess.run([PYTHON, "-c", wrapper, str(cap_gb), str(timeout), *command], stdin=stdin,
                            capture_output=True, timeout=timeout + 60)
    stderr = result.stderr.decode(errors="replace")
    body, _, tail = stderr.rpartition("\nPEAK_KB=")
    peak_kb, status = tail.split(" STATUS=")
    return int(status), result.stdout.decode(errors="replace"), body, int(peak_kb) / 1024


LIMIT_MESSAGE = "holds more than the 20 MB limit (reading stopped there); give an image file of at most"


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_predict_a_device_reads_at_most_the_limit(device: str) -> None:
    """Before: /dev/zero reached 7 GB in 12 s, /dev/urandom 2.4 GB (stat says 0 bytes)."""
    status, stdout, stderr, peak_mb = measured_child([NUMBRE, "predict", device])
    assert status == 1, stderr[-500:]  # predict's status when an input fails (the others are still read)
    assert f"numbre: error: {device} {LIMIT_MESSAGE}" in stderr and stdout == ""
    assert "Traceback" not in stderr
    assert peak_mb < CHILD_PEAK_MB, f"{device}: {peak_mb:.0f} MB"


def test_predict_standard_input_and_a_pipe_read_at_most_the_limit(tmp_path: Path) -> None:
    """Before: `numbre predict - < /dev/zero` reached 5.8 GB: standard input was read whole."""
    with open("/dev/zero", "rb") as zero:
        status, _, stderr, peak_mb = measured_child([NUMBRE, "predict", "-"], stdin=zero)
    assert status == 1 and f"standard input {LIMIT_MESSAGE}" in stderr, stderr[-500:]
    assert peak_mb < CHILD_PEAK_MB
    endless = subprocess.Popen(["cat", "/dev/zero"], stdout=subprocess.PIPE)
    try:
        status, _, stderr, peak_mb = measured_child([NUMBRE, "read", "--json", "-"], stdin=endless.stdout)
    finally:
        endless.kill()
        endless.wait()
    assert status == 1 and f"standard input {LIMIT_MESSAGE}" in stderr, stderr[-500:]
    assert peak_mb < CHILD_PEAK_MB
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat /dev/zero > '{fifo}'"], stderr=subprocess.DEVNULL)
    try:
        status, _, stderr, peak_mb = measured_child([NUMBRE, "predict", str(fifo)])
    finally:
        writer.kill()
        writer.wait()
    assert status == 1 and f"{fifo} {LIMIT_MESSAGE}" in stderr, stderr[-500:]
    assert peak_mb < CHILD_PEAK_MB


def test_read_at_most_reads_the_limit_plus_one_byte() -> None:
    class Endless(io.RawIOBase):
        given = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            self.given += len(buffer)
            buffer[:] = b"\0" * len(buffer)
            return len(buffer)

    source = Endless()
    with pytest.raises(ImageError, match="the input holds more than the 20 MB limit"):
        read_at_most(io.BufferedReader(source, buffer_size=1 << 16), MAX_BYTES)
    assert MAX_BYTES < source.given <= MAX_BYTES + (1 << 16)  # the limit, one byte, the buffer's rounding
    assert read_at_most(io.BytesIO(b"x" * 1000), 1000) == b"x" * 1000
    with pytest.raises(ImageError):
        read_at_most(io.BytesIO(b"x" * 1001), 1000)


# --- decoder bombs -----------------------------------------------------------------------------

BOMB_SIDE = 6245  # 6245 x 6245 = 39 megapixels, under the 40 MP pixel limit


def make_bombs(folder: Path) -> dict[str, Path]:
    """The probe's bombs, real files Pillow decodes: a 1.5 kB lossless WebP and a 250 kB deflated
    float TIFF, each 39 MP. Made in a child process so their encoding costs this one nothing."""
    code = textwrap.dedent(f"""
        from PIL import Image
        side = {BOMB_SIDE}
        Image.new("RGB", (side, side), "white").save("{folder}/white.webp", "WEBP", lossless=True)
        Image.new("F", (side, side), 0.0).save("{folder}/float.tif", "TIFF", compression="tiff_adobe_deflate")
    """)
    subprocess.run([PYTHON, "-c", code], check=True, timeout=300)
    return {"webp": folder / "white.webp", "tiff": folder / "float.tif"}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    return make_bombs(tmp_path_factory.mktemp("bombs"))


DECODE = textwrap.dedent("""
    import sys
    from numbre.errors import ImageError
    from numbre.reading.images import load_image
    try:
        load_image(sys.argv[1])
        print("decoded")
    except ImageError as error:
        print(error)
""")


@pytest.mark.parametrize(("kind", "mode", "megabytes"), [("webp", "RGBA", 624), ("tiff", "F", 468)])
def test_a_small_file_claiming_39_megapixels_is_refused_before_decoding(bombs, kind: str, mode: str,
                                                                        megabytes: int) -> None:
    """Before: the WebP cost 600 MB above the loaded model, the float TIFF 453 MB."""
    path = bombs[kind]
    assert path.stat().st_size < 300_000
    status, stdout, stderr, peak_mb = measured_child([PYTHON, "-c", DECODE, str(path)])
    assert status == 0, stderr[-500:]
    assert (f"is a {BOMB_SIDE}x{BOMB_SIDE} {kind.upper()} of mode {mode}, which would take {megabytes} MB "
            "to decode, over the 160 MB limit; refused before decoding") in stdout
    assert peak_mb < DECODE_PEAK_MB, f"{kind}: {peak_mb:.0f} MB"


def test_webp_sizes_are_read_from_every_kind_of_header() -> None:
    """Lossy (VP8), lossless (VP8L) and extended (VP8X: alpha, EXIF) headers give Pillow's size."""
    picture = Image.new("RGB", (123, 45), "white")
    for options in ({"lossless": False}, {"lossless": True}, {"exif": Image.Exif().tobytes()}):
        buffer = io.BytesIO()
        picture.save(buffer, "WEBP", **options)
        assert _webp_size(buffer.getvalue()) == (123, 45)
    buffer = io.BytesIO()
    translucent = picture.convert("RGBA")
    translucent.putalpha(128)
    translucent.save(buffer, "WEBP", lossless=False)
    assert buffer.getvalue()[12:16] == b"VP8X" and _webp_size(buffer.getvalue()) == (123, 45)
    assert _webp_size(b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 14) is None and _webp_size(b"\x89PNG") is None


def test_images_within_the_budget_still_read() -> None:
    """A 10 MP WebP (160 MB counted) and a 13 MP float image (156 MB) are at the budget's edge."""
    buffer = io.BytesIO()
    Image.new("L", (3162, 3162), 255).save(buffer, "WEBP", lossless=True)
    assert load_image(buffer.getvalue()).shape == (3162, 3162)
    buffer = io.BytesIO()
    Image.new("F", (3600, 3600), 0.0).save(buffer, "TIFF", compression="tiff_adobe_deflate")
    assert load_image(buffer.getvalue()).shape == (3600, 3600)
    buffer = io.BytesIO()
    Image.new("F", (3700, 3700), 0.0).save(buffer, "TIFF", compression="tiff_adobe_deflate")
    with pytest.raises(ImageError, match="which would take 164 MB to decode, over the 160 MB limit"):
        load_image(buffer.getvalue())


# --- output hygiene ----------------------------------------------------------------------------

def test_a_huge_architecture_name_is_cut_in_error_lines(tmp_path: Path) -> None:
    """Before: a 10 MB architecture name became a 10 MB error line."""
    path = tmp_path / "long.safetensors"
    save_model_file(path, model_tensors(), model_meta(architecture="A" * 10_000_000))
    with pytest.raises(ModelFileError) as refused:
        load_torch_model(path)
    assert "unknown model 'AAAA" in str(refused.value) and len(str(refused.value)) < 1_000
    assert "A" * 199 + "\u2026" in str(refused.value)
    for command in (["evaluate", str(path), "--no-png"], ["predict", "--model", str(path), "-"]):
        result = CliRunner().invoke(cli, command, input=b"")
        assert result.exit_code == 2 and len(result.output) < 1_000, len(result.output)


def test_long_class_names_are_cut_in_the_recognizer_error(tmp_path: Path) -> None:
    names = ["x" * 1_000_000] * 3
    path = tmp_path / "three.safetensors"
    save_model_file(path, model_tensors_for(3), model_meta(names=names))
    with pytest.raises(ModelFileError, match="tells 3 classes apart") as refused:
        Recognizer.load(export_onnx(path, tmp_path / "three.onnx"))
    assert len(str(refused.value)) < 1_000


def model_tensors_for(classes: int) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    return state_to_numpy(create_model("numbre-fast", num_classes=classes))


def test_class_names_with_control_characters_are_escaped_in_evaluate_s_table() -> None:
    from numbre.insight.evaluate import format_report

    names = ["\x1b[2J\x1b[31mred", "<b>bold</b>", "tab\there", "new\nline", *DIGITS[4:]]
    labels = np.arange(10).repeat(3)
    logits = np.eye(10)[labels] * 5
    report = format_report(compute_metrics(logits, labels, names))
    assert "\x1b" not in report and "\t" not in report
    assert "\\x1b[2J\\x1b[31mred" in report and "tab\\there" in report and "new\\nline" in report
    assert "<b>bold</b>" in report  # inert in a terminal; the HTML report escapes it (report/html.py)
    assert len(report.splitlines()) == 2 + 1 + 10 + 3 + 10  # one line per class in each table
    long_name = format_report(compute_metrics(logits, labels, ["y" * 5000, *DIGITS[1:]]))
    assert max(len(line) for line in long_name.splitlines()) < 200


def test_file_names_with_tabs_newlines_and_bad_bytes_keep_one_line_each(tmp_path: Path) -> None:
    """Before: a newline or tab broke the tab-separated output; --json held lone surrogates."""
    folder = tmp_path / "odd"
    folder.mkdir()
    pixels = np.pad(np.full((40, 8), 0, np.uint8), 20, constant_values=255)
    raw_names = [b"tab\there.png", b"new\nline.png", b"esc\x1b[31m.png", b"latin\xe9.png", b"back\\slash.png"]
    for raw in raw_names:
        Image.fromarray(pixels).save(os.path.join(os.fsencode(folder), raw), "PNG")
    for command in ("predict", "read"):
        text = subprocess.run([NUMBRE, command, str(folder)], capture_output=True, timeout=300)
        assert text.returncode == 0, text.stderr
        rows = text.stdout.decode("utf-8").splitlines()
        assert len(rows) == len(raw_names) and all(row.count("\t") == 2 for row in rows), rows
        shown = sorted(row.split("\t")[0].rsplit("/", 1)[1] for row in rows)
        assert shown == sorted(["tab\\there.png", "new\\nline.png", "esc\\x1b[31m.png", "latin\\xe9.png",
                                "back\\\\slash.png"])
        lines = subprocess.run([NUMBRE, command, "--json", str(folder)], capture_output=True, timeout=300)
        decoded = [json.loads(line) for line in lines.stdout.decode("utf-8", errors="strict").splitlines()]
        files = sorted(entry["file"].rsplit("/", 1)[1] for entry in decoded)
        assert files == sorted(["tab\there.png", "new\nline.png", "esc\x1b[31m.png", "latin\\xe9.png",
                                "back\\slash.png"])
        assert all(not 0xD800 <= ord(char) < 0xE000 for entry in decoded for char in entry["file"])


def test_predict_names_the_class_of_a_model_whose_classes_are_not_digits(tmp_path: Path) -> None:
    """A Fashion-MNIST model's answer is "Sandal", not its index 5 (the JSON keeps the index)."""
    path = tmp_path / "fashion.safetensors"
    save_model_file(path, model_tensors(), model_meta(names=FASHION))
    image = tmp_path / "item.png"
    Image.fromarray(np.pad(np.full((40, 8), 0, np.uint8), 20, constant_values=255)).save(image)
    text = CliRunner().invoke(cli, ["predict", "--model", str(path), str(image)])
    as_json = CliRunner().invoke(cli, ["predict", "--json", "--model", str(path), str(image)])
    assert text.exit_code == 0 and as_json.exit_code == 0, text.output + as_json.output
    index = json.loads(as_json.output)["digit"]
    assert text.output.split("\t")[1] == FASHION[index]


if __name__ == "__main__":  # the probe's cases, measured in child processes
    import tempfile

    print("| case | exit | peak RSS of the child, MB | answer |\n|---|---:|---:|---|")
    for device in ("/dev/zero", "/dev/urandom"):
        status, _, stderr, peak = measured_child([NUMBRE, "predict", device])
        print(f"| numbre predict {device} | {status} | {peak:.0f} | {stderr.strip()[:70]} |")
    with open("/dev/zero", "rb") as zero:
        status, _, stderr, peak = measured_child([NUMBRE, "predict", "-"], stdin=zero)
    print(f"| numbre predict - < /dev/zero | {status} | {peak:.0f} | {stderr.strip()[:70]} |")
    with tempfile.TemporaryDirectory() as folder:
        made = make_bombs(Path(folder))
        baseline = measured_child([PYTHON, "-c", DECODE.replace("load_image(sys.argv[1])", "pass"), "x"])[3]
        print(f"| import of the image reader alone | 0 | {baseline:.0f} | |")
        for kind, path in made.items():
            status, stdout, _, peak = measured_child([PYTHON, "-c", DECODE, str(path)])
            print(f"| {path.stat().st_size:,} B {kind} of 39 MP, load_image | {status} | {peak:.0f} | "
                  f"{stdout.strip()[:70]} |")
