"""Ten thousand damaged or hostile model files per format, fed to the loaders people use.

Each mutant is a real file on disk, loaded the way numbre loads it: safetensors
through `load_torch_model` (read, verify, build the network), ONNX through
`Recognizer.load` (read, verify, start ONNX Runtime). Every one must end in a
one-line `ModelFileError` naming the file, or, for a byte change that leaves
the content as it was (spacing in the JSON header), load the original model.
Hostile files with correct digests (anyone can compute a SHA-256) must be
refused by the check made for them, never by luck further on.

The loops run in a child process (this file run as a script), so a crash
shows as a signal instead of taking pytest down, a hang hits the timeout, and
the child's peak memory is its own. The mutants come from a seeded generator:
a failure names its case number, and `PYTHONPATH=tests python tests/model/test_fuzz_modelfile.py
onnx 10000 0` replays the run and prints its figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from fuzzhelpers import damage, peak_rss_mb

TESTS = Path(__file__).resolve().parents[1]  # the shared helpers (fuzzhelpers) live there
CASES = 10_000  # per format
SEED = 20_240_601
PEAK_RSS_MB = {"safetensors": 900, "onnx": 500}  # the child's whole life, imports included
SLOWEST_CASE_S = 1.0  # CPU seconds; a refusal takes about a millisecond, the deepest JSON 0.1 s

Mutant = tuple[str, bytes, str | None]  # (what was done, the file's bytes, part of the required refusal)


# --- safetensors ----------------------------------------------------------------------------------

def safetensors_original(folder: Path) -> Path:
    """The shipped model, written again by this numbre so it carries both digests."""
    from numbre.model.file import load_model_file, save_model_file

    shipped = load_model_file()
    path = folder / "original.safetensors"
    save_model_file(path, shipped.tensors, shipped.meta)
    return path


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + size]), data[8 + size:]


def join_safetensors(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def sealed_safetensors(tensors: dict, meta: object) -> bytes:
    """A well-formed safetensors file whose numbre metadata is `meta` with correct digests (if a dict)."""
    from safetensors.numpy import save

    from numbre.model.file import META_DIGEST, meta_digest, weights_digest

    if isinstance(meta, dict):
        meta = {**meta, "weights_sha256": weights_digest(tensors)}
        meta[META_DIGEST] = meta_digest(meta)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return save(tensors, metadata={"numbre": text})


def hostile_safetensors(original: bytes, rng: random.Random) -> Mutant:
    """A file that is well-formed at some level but wrong at another, with the refusal it must get."""
    import numpy as np
    from safetensors.numpy import load

    header, body = split_safetensors(original)
    meta = json.loads(header["__metadata__"]["numbre"])
    tensors = load(original)
    name = rng.choice(sorted(tensors))
    case = rng.randrange(16)
    if case == 0:  # a length field declaring more header than any file holds
        length = struct.pack("<Q", rng.choice((2**63, 2**64 - 1, 2**40)))
        return "huge header length", length + original[8:], "not a readable model file"
    if case == 1:  # a tensor declaring a shape its bytes cannot hold
        entry = header[name]
        entry["shape"] = rng.choice(([2**32, 2**32], [2**62], [10**9, 10**9, 10**9], [-1]))
        return "huge declared shape", join_safetensors(header, body), "not a readable model file"
    if case == 2:  # offsets beyond the file
        header[name]["data_offsets"] = [0, rng.choice((2**62, len(body) + 8, 2**64 - 1))]
        return "offsets beyond the file", join_safetensors(header, body), "not a readable model file"
    if case == 3:
        header[name]["dtype"] = rng.choice(("F64", "I8", "BOGUS", "F8_E4M3", "BOOL"))
        return "wrong dtype", join_safetensors(header, body), None
    if case == 4:  # metadata fields of the wrong type, digests correct
        key = rng.choice(("class_names", "architecture", "format_version", "weights_sha256", "format"))
        meta[key] = rng.choice((None, 7, 1.5, "text", [], [1, 2], {"a": 1}, ["x"] * 5000, True))
        return f"wrong type of {key}", sealed_safetensors(tensors, meta), None
    if case == 5:
        kind = rng.choice(("list", "string", "number", "deep", "huge number", "not json"))
        text = {"list": "[1, 2, 3]", "string": '"numbre"', "number": "12",
                "deep": "[" * 100_000 + "]" * 100_000, "huge number": "1" * 100_000,
                "not json": "{'architecture': numbre"}[kind]
        return f"metadata that is {kind}", sealed_safetensors(tensors, text), None
    if case == 6:  # another shape for a tensor, digests correct: the network cannot take it
        tensors[name] = np.zeros((3, 5), np.float32)
        return "resealed wrong shape", sealed_safetensors(tensors, meta), "does not fit architecture"
    if case == 7:  # (torch fills in a missing batch-norm step count itself: that file is still whole)
        del tensors[rng.choice([key for key in sorted(tensors) if not key.endswith("num_batches_tracked")])]
        return "resealed missing tensor", sealed_safetensors(tensors, meta), "does not fit architecture"
    if case == 8:
        meta["architecture"] = rng.choice(("nope", "", "seed-cnn-b", "../../etc/passwd"))
        return "resealed other architecture", sealed_safetensors(tensors, meta), None
    if case == 9:
        return "foreign safetensors", _foreign_safetensors(rng), "not a numbre model"
    if case == 10:
        from numbre.model.onnx_model import DEFAULT_ONNX

        return "an ONNX file", DEFAULT_ONNX.read_bytes(), "not a readable model file"
    if case == 11:
        return "random bytes", rng.randbytes(rng.randint(0, 4096)), "not a readable model file"
    if case == 12:
        return "empty file", b"", "not a readable model file"
    if case == 13:  # a changed value in the metadata, the weights digest left as it was
        meta["class_names"] = [*meta["class_names"][:-1], "cat"]
        text = json.dumps(meta, sort_keys=True)
        header["__metadata__"]["numbre"] = text
        return "changed metadata", join_safetensors(header, body), "metadata does not match"
    if case == 14:
        from numbre.model.file import FORMAT_VERSION

        meta["format_version"] = FORMAT_VERSION + 1
        return "newer format", sealed_safetensors(tensors, meta), "upgrade numbre"
    header.pop(name)
    return "tensor listed nowhere", join_safetensors(header, body), "not a readable model file"


def _foreign_safetensors(rng: random.Random) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    metadata = rng.choice((None, {"format": "pt"}, {"numbre-ish": "{}"}))
    return save({"weight": np.ones((4, 4), np.float32)}, metadata=metadata)


def safetensors_mutants(original: bytes, count: int, seed: int) -> Iterator[Mutant]:
    rng = random.Random(seed)
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    for _ in range(count):
        if rng.random() < 0.2:
            yield hostile_safetensors(original, rng)
        else:
            kind, data = damage(original, rng, (0, header_end))
            yield kind, data, None


def safetensors_loader(original: Path) -> tuple[Callable[[Path], object], Callable[[object], bool]]:
    """The loader under test and a check that what it loaded is the original model."""
    import numpy as np

    from numbre.model.file import load_model_file
    from numbre.model.network import load_torch_model

    reference = load_model_file(original)

    def same(loaded) -> bool:
        tensors, expected = loaded[1].tensors, reference.tensors
        return loaded[1].meta == reference.meta and tensors.keys() == expected.keys() and all(
            value.dtype == expected[key].dtype and np.array_equal(value, expected[key])
            for key, value in tensors.items())

    return load_torch_model, same


# --- ONNX -----------------------------------------------------------------------------------------

def onnx_original(folder: Path) -> Path:
    """The shipped ONNX model, sealed again by this numbre so it carries all three digests."""
    import onnx

    from numbre.model.onnx_model import DEFAULT_ONNX, META_KEY, seal_onnx

    proto = onnx.load(str(DEFAULT_ONNX))
    meta = json.loads({entry.key: entry.value for entry in proto.metadata_props}[META_KEY])
    seal_onnx(proto, meta)
    path = folder / "original.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def hostile_onnx(original: bytes, rng: random.Random) -> Mutant:
    """A parseable ONNX model, changed and sealed again with correct digests, and the refusal it must get."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from numbre.model.onnx_model import META_KEY

    proto = onnx.load_from_string(original)
    meta = json.loads({entry.key: entry.value for entry in proto.metadata_props}[META_KEY])
    graph = proto.graph
    case = rng.randrange(14)
    expected = "which numbre models do not use"
    if case == 0:  # used by the graph, ONNX Runtime folds it into a 1 GB tensor while loading (2.1 GB peak)
        shape = numpy_helper.from_array(np.array([1, 1, 2**14, 2**14], np.int64), "bomb_shape")
        graph.initializer.append(shape)
        graph.node.insert(0, helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"],
                                              value=numpy_helper.from_array(np.ones(1, np.float32))))
        what = "ConstantOfShape bomb"
    elif case == 1:
        op = rng.choice(("Expand", "Tile", "Resize", "Pad", "Range", "OneHot", "Upsample"))
        graph.node.append(helper.make_node(op, ["image", "image"], ["unused"]))
        what = f"{op} node"
    elif case == 2:
        tensor = graph.initializer[rng.randrange(len(graph.initializer))]
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", rng.choice(("/etc/passwd", "../../secret.bin", "weights.bin"))
        what, expected = "external data", "keeps its data in another file"
    elif case == 3:
        domain = rng.choice(("custom", "ai.onnx.ml"))
        graph.node.append(helper.make_node("Evil", ["image"], ["unused"], domain=domain))
        what = "custom-domain operator"
    elif case == 4:
        branch = helper.make_graph([], "branch", [], [helper.make_tensor_value_info("image", 1, None)])
        if rng.random() < 0.5:
            graph.node.append(helper.make_node("If", ["image"], ["unused"], then_branch=branch,
                                               else_branch=branch))
        else:  # an allowed operator carrying a graph all the same
            graph.node.append(helper.make_node("Identity", ["image"], ["unused"], body=branch))
            expected = "holding a graph"
        what = "subgraph"
    elif case == 5:
        tensor = max(graph.initializer, key=lambda item: len(item.raw_data))
        tensor.dims[:] = rng.choice(([2**31, 2**31], [10**12], [2**40, 4]))
        what, expected = "huge declared initializer", "declares"
    elif case == 6:
        node = next(node for node in graph.node if node.op_type in ("QLinearConv", "Conv", "MaxPool"))
        attribute = next(item for item in node.attribute if item.name in ("pads", "kernel_shape", "strides"))
        attribute.ints[:] = [rng.choice((10**6, 2**31 - 1, 4096))] * len(attribute.ints)
        what, expected = "huge window", "far beyond a 28x28 image"
    elif case == 7:
        graph.input[0].type.tensor_type.shape.dim[2].dim_value = rng.choice((280, 1, 100_000))
        what, expected = "other input shape", "(N, 1, 28, 28)"
    elif case == 8:
        meta["class_names"] = rng.choice((None, 5, "0123456789", [1, 2], [], ["x"] * 5000))
        what, expected = "class names of the wrong type", "class names"
    elif case == 9:
        meta["rejection"] = {**meta.get("rejection", {}),
                             "temperature": rng.choice(("hot", 0, -1.0, None, True, [1]))}
        what, expected = "rejection of the wrong type", "rejection policy"
    elif case == 10:  # the metadata changed, the digests left as they were
        entry = next(entry for entry in proto.metadata_props if entry.key == META_KEY)
        entry.value = entry.value.replace('"9"', '"nine"')
        return "changed metadata", proto.SerializeToString(), "metadata do not match"
    elif case == 11:  # a node changed, the digests left as they were
        node = next(node for node in graph.node if node.op_type == "Relu")
        node.op_type = "Sigmoid"
        return "changed graph", proto.SerializeToString(), "graph and weights do not match"
    elif case == 12:
        sparse = helper.make_sparse_tensor(helper.make_tensor("v", 1, [1], [1.0]),
                                           helper.make_tensor("i", 7, [1], [0]), [2**20, 2**20])
        graph.sparse_initializer.append(sparse)
        what, expected = "sparse initializer", "sparse weights"
    else:
        foreign = helper.make_model(helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "foreign",
            [helper.make_tensor_value_info("x", 1, [1, 1, 28, 28])],
            [helper.make_tensor_value_info("y", 1, None)]))
        return "foreign ONNX model", foreign.SerializeToString(), "not a numbre model"
    reseal(proto, meta)
    return what, proto.SerializeToString(), expected


def reseal(proto, meta: dict) -> None:
    """`seal_onnx` for a hostile model: digests that match, even of weights `seal_onnx` would refuse."""
    from numbre.errors import ModelFileError
    from numbre.model.file import META_DIGEST, meta_digest
    from numbre.model.onnx_model import META_KEY, initializer_digest, model_digest

    others = [entry for entry in proto.metadata_props if entry.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(others)
    with contextlib.suppress(ModelFileError):  # weights refused before any digest is compared
        meta["onnx_weights_sha256"] = initializer_digest(proto)
    meta["onnx_model_sha256"] = model_digest(proto)
    meta[META_DIGEST] = meta_digest(meta)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)


def onnx_mutants(original: bytes, count: int, seed: int) -> Iterator[Mutant]:
    import onnx

    rng = random.Random(seed)
    proto = onnx.load_from_string(original)
    weights = sorted((original.find(tensor.raw_data), len(tensor.raw_data))
                     for tensor in proto.graph.initializer if len(tensor.raw_data) > 64)
    structure_end = weights[0][0] if weights else len(original)  # nodes come before the weights
    for index in range(count):
        if rng.random() < 0.2:
            yield hostile_onnx(original, rng)
        elif index % 50 == 0:
            yield "safetensors given as ONNX", safetensors_bytes(), "not an ONNX file"
        else:
            kind, data = damage(original, rng, (0, structure_end))
            yield kind, data, None


def safetensors_bytes() -> bytes:
    from numbre.model.file import DEFAULT_MODEL

    return DEFAULT_MODEL.read_bytes()


def onnx_loader(original: Path) -> tuple[Callable[[Path], object], Callable[[object], bool]]:
    import onnx

    from numbre.reading.recognize import Recognizer

    reference = onnx.load(str(original))

    def same(loaded) -> bool:
        return onnx.load_from_string(loaded.model.data) == reference

    return Recognizer.load, same


# --- the loop (in the child process) -------------------------------------------------------------

def fuzz(kind: str, count: int, seed: int) -> dict:
    """Feed `count` mutants to the loader of `kind`; return counts, times, peak memory and failures."""
    from numbre.errors import ModelFileError

    with tempfile.TemporaryDirectory(prefix="numbre-fuzz-", dir=memory_folder()) as folder:
        original = (safetensors_original if kind == "safetensors" else onnx_original)(Path(folder))
        load, same = (safetensors_loader if kind == "safetensors" else onnx_loader)(original)
        mutants = (safetensors_mutants if kind == "safetensors" else onnx_mutants)(
            original.read_bytes(), count, seed)
        outcomes: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        failures: list[str] = []
        slowest, slowest_kind, started = 0.0, "", time.perf_counter()
        for case, (what, data, expected) in enumerate(mutants):
            kinds[what] += 1
            # A new file each time: truncating one in place makes ext4 flush it (2.6 ms, not 0.3).
            path = Path(folder) / f"mutant-{case}{original.suffix}"
            path.write_bytes(data)
            began = time.thread_time()  # CPU time: a busy machine must not look like a slow loader;
            # this thread's (everything runs on it), which costs 1 us to read, all threads' 400
            try:
                loaded = load(path)
            except ModelFileError as error:
                message = str(error)
                outcomes["refused"] += 1
                if "\n" in message or str(path) not in message:
                    failures.append(f"case {case} ({what}): not one line naming the file: {message!r}")
                elif expected is not None and expected not in message:
                    failures.append(f"case {case} ({what}): refused without {expected!r}: {message}")
            except BaseException as error:  # any other exception is the finding
                failures.append(f"case {case} ({what}): {type(error).__name__}: {str(error)[:300]}")
            else:
                if expected is None and same(loaded):
                    outcomes["loaded unchanged content"] += 1
                else:
                    failures.append(f"case {case} ({what}): a changed file was loaded")
            if (took := time.thread_time() - began) > slowest:
                slowest, slowest_kind = took, what
            path.unlink()
    return {"kind": kind, "cases": sum(kinds.values()), "outcomes": dict(outcomes),
            "mutations": dict(kinds.most_common()), "seconds": round(time.perf_counter() - started, 2),
            "slowest_case_cpu_ms": round(slowest * 1000, 1), "slowest_case": slowest_kind,
            "peak_rss_mb": peak_rss_mb(),
            "failures": failures[:20], "failure_count": len(failures)}


def memory_folder() -> str | None:
    """/dev/shm when it is there: ten thousand files written to ext4 cost seconds of flushing."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def run_child(kind: str, count: int = CASES, seed: int = SEED) -> dict:
    """This file as a script, in a fresh interpreter; its last output line is the JSON report."""
    result = subprocess.run([sys.executable, __file__, kind, str(count), str(seed)], capture_output=True,
                            text=True, timeout=300,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, f"the {kind} fuzz died with {result.returncode}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_report(report: dict) -> None:
    assert report["failures"] == [], f"{report['failure_count']} failures, first ones:\n" + \
        "\n".join(report["failures"])
    assert report["cases"] == CASES and sum(report["outcomes"].values()) == CASES
    assert report["outcomes"]["refused"] >= CASES * 0.9  # nearly every change is caught, not ignored
    assert report["slowest_case_cpu_ms"] < SLOWEST_CASE_S * 1000, report
    assert report["peak_rss_mb"] < PEAK_RSS_MB[report["kind"]], report


# --- the tests ------------------------------------------------------------------------------------

def test_ten_thousand_mutated_safetensors_files_are_refused_cleanly() -> None:
    report = run_child("safetensors")
    check_report(report)
    assert {"huge header length", "huge declared shape", "resealed wrong shape", "changed metadata",
            "foreign safetensors", "flip", "truncate"} <= report["mutations"].keys()


def test_ten_thousand_mutated_onnx_files_are_refused_cleanly() -> None:
    report = run_child("onnx")
    check_report(report)
    assert {"ConstantOfShape bomb", "external data", "changed graph", "changed metadata", "subgraph",
            "huge window", "flip", "truncate"} <= report["mutations"].keys()


def test_a_bomb_with_correct_digests_is_refused_before_onnx_runtime(tmp_path: Path) -> None:
    """The same bomb, loaded in this process: refused in milliseconds, with memory to spare."""
    import pytest

    from numbre.errors import ModelFileError
    from numbre.reading.recognize import Recognizer

    original = onnx_original(tmp_path).read_bytes()
    rng = random.Random(0)
    while (mutant := hostile_onnx(original, rng))[0] != "ConstantOfShape bomb":
        pass
    path = tmp_path / "bomb.onnx"
    path.write_bytes(mutant[1])
    began = time.process_time()  # CPU time: a busy machine stretches the wall clock, not the work done
    with pytest.raises(ModelFileError, match=r"operator ai.onnx.ConstantOfShape, which numbre models do not"):
        Recognizer.load(path)
    assert time.process_time() - began < 0.5


def test_a_resealed_original_still_loads_and_reads_digits(tmp_path: Path) -> None:
    """The checks refuse what is hostile, not what numbre writes: the sealed shipped model still works."""
    from numbre.model.network import load_torch_model
    from numbre.reading.recognize import Recognizer

    recognizer = Recognizer.load(onnx_original(tmp_path))
    assert {"onnx_model_sha256", "meta_sha256", "onnx_weights_sha256"} <= recognizer.meta.keys()
    blank = recognizer.predict(bytes(_blank_png()))
    assert blank.digit is None and blank.reason == "empty"
    _, model_file = load_torch_model(safetensors_original(tmp_path))
    assert len(model_file.meta["meta_sha256"]) == 64


def _blank_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, "PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    kind, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(fuzz(kind, count, seed)))

