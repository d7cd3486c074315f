"""IDX files: encoding, parsing, gzip detection and the error for every kind of damage."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from datahelpers import gz
from numbre.data import idx
from numbre.errors import DataError


def _images(count: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def test_encode_writes_the_idx_header_then_the_bytes() -> None:
    images = _images(3)
    data = idx.encode(images)
    assert data[:4] == b"\x00\x00\x08\x03"  # two zero bytes, type 0x08 (ubyte), 3 dimensions
    assert struct.unpack(">3I", data[4:16]) == (3, 28, 28)
    assert len(data) == 16 + 3 * 28 * 28
    assert data[16:] == images.tobytes()

    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    assert idx.encode(labels) == b"\x00\x00\x08\x01" + struct.pack(">I", 6) + bytes([3, 1, 4, 1, 5, 9])


def test_images_round_trip() -> None:
    images = _images(11)
    parsed = idx.parse(idx.encode(images), "images", 3)
    assert parsed.dtype == np.uint8
    assert parsed.shape == (11, 28, 28)
    np.testing.assert_array_equal(parsed, images)


def test_labels_round_trip() -> None:
    labels = np.arange(25, dtype=np.uint8) % 10
    parsed = idx.parse(idx.encode(labels), "labels", 1)
    assert parsed.dtype == np.uint8
    assert parsed.shape == (25,)
    np.testing.assert_array_equal(parsed, labels)


def test_encode_converts_other_integer_types_to_bytes() -> None:
    labels = np.array([0, 7, 255], dtype=np.int64)
    data = idx.encode(labels)
    assert data[-3:] == bytes([0, 7, 255])
    np.testing.assert_array_equal(idx.parse(data, "labels", 1), [0, 7, 255])


def test_empty_arrays_round_trip() -> None:
    parsed = idx.parse(idx.encode(np.zeros((0, 28, 28), dtype=np.uint8)), "empty", 3)
    assert parsed.shape == (0, 28, 28)


def test_read_bytes_gives_the_same_bytes_for_gzipped_and_plain_files(tmp_path) -> None:
    data = idx.encode(_images(5))
    plain = tmp_path / "plain-idx3-ubyte"
    packed = tmp_path / "packed-idx3-ubyte.gz"
    plain.write_bytes(data)
    packed.write_bytes(gz(data))
    assert packed.read_bytes() != data
    assert idx.read_bytes(plain) == data
    assert idx.read_bytes(packed) == data


def test_read_bytes_detects_gzip_by_content_not_by_name(tmp_path) -> None:
    data = idx.encode(_images(2))
    (tmp_path / "misnamed.gz").write_bytes(data)  # .gz name, plain content
    (tmp_path / "misnamed").write_bytes(gz(data))  # plain name, gzip content
    assert idx.read_bytes(tmp_path / "misnamed.gz") == data
    assert idx.read_bytes(tmp_path / "misnamed") == data


def test_missing_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "nowhere-idx3-ubyte"
    with pytest.raises(DataError) as caught:
        idx.read_bytes(path)
    assert str(caught.value) == f"cannot read {path}: No such file or directory"


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda packed: packed[: len(packed) // 2], "Compressed file ended before"),
        (lambda packed: packed[:-8] + bytes(8), "CRC check failed"),
        (lambda packed: packed[:10] + b"\xff" * 40 + packed[50:], "invalid"),
    ],
    ids=["truncated", "bad-crc", "garbled-stream"],
)
def test_damaged_gzip_names_the_file_and_the_problem(tmp_path, damage, detail) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(gz(idx.encode(_images(4)))))
    with pytest.raises(DataError) as caught:
        idx.read_bytes(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is a damaged gzip file (")
    assert detail in message
    assert message.endswith("; delete it and fetch it again")


def test_truncated_payload() -> None:
    data = idx.encode(_images(3))[:-100]
    with pytest.raises(DataError) as caught:
        idx.parse(data, "t10k-images-idx3-ubyte", 3)
    assert str(caught.value) == (
        "t10k-images-idx3-ubyte is truncated: header promises 2,352 bytes of data "
        "for shape (3, 28, 28), file has 2,252"
    )


def test_payload_longer_than_the_header_says() -> None:
    data = idx.encode(np.arange(10, dtype=np.uint8)) + b"\x00\x01"
    with pytest.raises(DataError) as caught:
        idx.parse(data, "labels-file", 1)
    assert str(caught.value) == (
        "labels-file is longer than its header says: header promises 10 bytes of data "
        "for shape (10,), file has 12"
    )


def test_truncated_inside_the_header() -> None:
    data = idx.encode(_images(1))[:10]  # magic + 1.5 of the 3 dimension fields
    with pytest.raises(DataError) as caught:
        idx.parse(data, "short", 3)
    assert str(caught.value) == "short is truncated inside its header"


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x08"])
def test_shorter_than_the_magic_number(data) -> None:
    with pytest.raises(DataError) as caught:
        idx.parse(data, "tiny", 1)
    assert str(caught.value) == f"tiny is not an IDX file: only {len(data)} bytes"


def test_bad_magic_number() -> None:
    data = b"PK\x03\x04" + bytes(100)  # a zip file, say
    with pytest.raises(DataError) as caught:
        idx.parse(data, "archive", 3)
    assert str(caught.value) == "archive is not an IDX file: bad magic number 504b0304"


def test_wrong_type_code() -> None:
    floats = np.zeros(4, dtype=">f4")
    data = b"\x00\x00\x0d\x01" + struct.pack(">I", 4) + floats.tobytes()  # 0x0D is float32
    with pytest.raises(DataError) as caught:
        idx.parse(data, "floats", 1)
    assert str(caught.value) == "floats holds IDX type 0x0d; numbre reads unsigned-byte (0x08) data"


def test_labels_where_images_are_expected() -> None:
    data = idx.encode(np.arange(10, dtype=np.uint8))
    with pytest.raises(DataError) as caught:
        idx.parse(data, "train-images-idx3-ubyte", 3)
    assert str(caught.value) == (
        "train-images-idx3-ubyte has 1 dimensions; expected images (3 dimensions)"
    )


def test_images_where_labels_are_expected() -> None:
    data = idx.encode(_images(2))
    with pytest.raises(DataError) as caught:
        idx.parse(data, "train-labels-idx1-ubyte", 1)
    assert str(caught.value) == (
        "train-labels-idx1-ubyte has 3 dimensions; expected labels (1 dimension)"
    )
