"""Where datasets come from: IDX folders (gzipped or not), .npz files and Debian's Fashion-MNIST."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from datahelpers import TEST, TRAIN, gz, idx_files, make_arrays, sha256, write_mnist_folder
from numbre.data import idx
from numbre.data.dataset import cache_root, load_dataset, load_folder, load_npz
from numbre.data.known import FASHION_CLASSES, FASHION_MNIST, IDX_FILES, LABEL_FILES
from numbre.errors import DataError

FASHION_FOLDER = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return make_arrays()


def expected_checksum(arrays: dict[str, np.ndarray]) -> str:
    """The documented definition: SHA-256 of the lines 'name digest' of the four IDX files."""
    lines = [f"{name} {sha256(data)}" for name, data in idx_files(arrays).items()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def assert_same_arrays(dataset, arrays: dict[str, np.ndarray]) -> None:
    parts = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    for name, part in zip(IDX_FILES, parts, strict=True):
        assert part.dtype == np.uint8, name
        np.testing.assert_array_equal(part, arrays[name], err_msg=name)


def write_npz(path: Path, arrays: dict[str, np.ndarray], **changes) -> Path:
    keys = dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays.values(), strict=True))
    keys.update(changes)
    np.savez(path, **{key: value for key, value in keys.items() if value is not None})
    return path


@pytest.mark.parametrize(
    ("gzipped", "dotted"),
    [(True, False), (False, False), (False, True), (True, True)],
    ids=["gzipped", "plain", "dotted-plain", "dotted-gzipped"],
)
def test_idx_folder(tmp_path, arrays, gzipped, dotted) -> None:
    folder = write_mnist_folder(tmp_path / "my-digits", arrays, gzipped=gzipped, dotted=dotted)
    expected_names = {name.replace("-idx", ".idx") if dotted else name for name in IDX_FILES}
    assert {path.name.removesuffix(".gz") for path in folder.iterdir()} == expected_names

    dataset = load_dataset(folder)

    assert dataset.name == "my-digits"
    assert dataset.source == str(folder)
    assert dataset.x_train.shape == (TRAIN, 28, 28)
    assert dataset.x_test.shape == (TEST, 28, 28)
    assert_same_arrays(dataset, arrays)
    assert dataset.class_names == tuple("0123456789")
    assert dataset.num_classes == 10
    assert dataset.file_sha256 == {name: sha256(data) for name, data in idx_files(arrays).items()}
    assert dataset.checksum == expected_checksum(arrays)
    np.testing.assert_array_equal(dataset.class_counts("train"), [5] * 10)
    np.testing.assert_array_equal(dataset.class_counts("test"), [2] * 10)


def test_folder_may_mix_gzipped_and_plain_files(tmp_path, arrays) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for index, (name, data) in enumerate(idx_files(arrays).items()):
        if index % 2:
            (folder / f"{name}.gz").write_bytes(gz(data))
        else:
            (folder / name.replace("-idx", ".idx")).write_bytes(data)
    dataset = load_folder(folder)
    assert_same_arrays(dataset, arrays)
    assert dataset.checksum == expected_checksum(arrays)


def test_npz_gives_the_same_checksum_as_the_idx_folder(tmp_path, arrays) -> None:
    from_folder = load_dataset(write_mnist_folder(tmp_path / "folder", arrays))
    npz = write_npz(tmp_path / "digits.npz", arrays)

    from_npz = load_dataset(npz)

    assert from_npz.name == "digits"
    assert from_npz.source == str(npz)
    assert_same_arrays(from_npz, arrays)
    assert from_npz.file_sha256 == from_folder.file_sha256
    assert from_npz.checksum == from_folder.checksum == expected_checksum(arrays)
    assert from_npz.class_names == tuple("0123456789")


def test_npz_with_wider_integer_types_in_range_is_the_same_data(tmp_path, arrays) -> None:
    wide = {name: array.astype(np.int64) for name, array in arrays.items()}
    dataset = load_npz(write_npz(tmp_path / "wide.npz", wide))
    assert_same_arrays(dataset, arrays)
    assert dataset.checksum == expected_checksum(arrays)


def test_different_data_gives_a_different_checksum(tmp_path, arrays) -> None:
    changed = {name: array.copy() for name, array in arrays.items()}
    changed[IDX_FILES[0]][0, 0, 0] ^= 1
    assert load_npz(write_npz(tmp_path / "a.npz", arrays)).checksum != load_npz(
        write_npz(tmp_path / "b.npz", changed)
    ).checksum


def test_classes_txt_names_the_classes(tmp_path, arrays) -> None:
    folder = write_mnist_folder(tmp_path / "letters", arrays)
    names = [f"class {letter}" for letter in "ABCDEFGHIJ"]
    (folder / "classes.txt").write_text("\n".join(names) + "\n\n")
    dataset = load_folder(folder)
    assert dataset.class_names == tuple(names)
    assert dataset.num_classes == 10


def test_classes_txt_with_too_few_names(tmp_path, arrays) -> None:
    folder = write_mnist_folder(tmp_path / "letters", arrays)
    (folder / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(DataError) as caught:
        load_folder(folder)
    assert str(caught.value) == f"{folder / 'classes.txt'} names 3 classes but labels go up to 9"


def test_labels_decide_the_class_count_without_classes_txt(tmp_path, arrays) -> None:
    fewer = dict(arrays)
    for name in LABEL_FILES.values():
        fewer[name] = arrays[name] % 4
    dataset = load_folder(write_mnist_folder(tmp_path / "four", fewer))
    assert dataset.class_names == ("0", "1", "2", "3")


@pytest.mark.parametrize(
    ("split", "image_file", "label_file", "word"),
    [
        ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "training"),
        ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "test"),
    ],
)
def test_mismatched_counts_of_images_and_labels(tmp_path, arrays, split, image_file, label_file, word):
    arrays[label_file] = arrays[label_file][:-1]
    folder = write_mnist_folder(tmp_path / "bad", arrays)
    count = len(arrays[image_file])
    with pytest.raises(DataError) as caught:
        load_folder(folder)
    assert str(caught.value) == f"{folder}: {count:,} {word} images but {count - 1:,} labels"


def test_images_that_are_not_28x28(tmp_path, arrays) -> None:
    arrays["t10k-images-idx3-ubyte"] = np.zeros((TEST, 32, 32), dtype=np.uint8)
    folder = write_mnist_folder(tmp_path / "cifar-ish", arrays)
    with pytest.raises(DataError) as caught:
        load_folder(folder)
    assert str(caught.value) == (
        f"{folder}: test images are 32x32; numbre's models take 28x28 images"
    )


def test_missing_file_names_it_and_the_four_expected(tmp_path, arrays) -> None:
    folder = write_mnist_folder(tmp_path / "partial", arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as caught:
        load_folder(folder)
    assert str(caught.value) == (
        f"{folder} has no t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz); an MNIST-format "
        "folder holds the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    )


def test_damaged_file_in_a_folder_names_the_file(tmp_path, arrays) -> None:
    folder = write_mnist_folder(tmp_path / "damaged", arrays)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="damaged gzip file") as caught:
        load_folder(folder)
    assert str(caught.value).startswith(f"{path} is a damaged gzip file")


def test_truncated_file_in_a_folder_names_the_file(tmp_path, arrays) -> None:
    folder = write_mnist_folder(tmp_path / "short", arrays, gzipped=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError) as caught:
        load_folder(folder)
    assert str(caught.value).startswith(f"{folder}/train-images-idx3-ubyte is truncated: ")


def test_npz_lacking_keys(tmp_path, arrays) -> None:
    path = write_npz(tmp_path / "half.npz", arrays, x_test=None, y_test=None)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value) == (
        f"{path} lacks x_test, y_test; an .npz dataset holds x_train, y_train, x_test, y_test"
    )


def test_npz_with_float_images(tmp_path, arrays) -> None:
    floats = arrays["train-images-idx3-ubyte"].astype(np.float32) / 255
    path = write_npz(tmp_path / "floats.npz", arrays, x_train=floats)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value) == f"{path}: x_train must hold integers 0-255 (uint8), got float32"


def test_npz_with_integers_out_of_byte_range(tmp_path, arrays) -> None:
    labels = arrays["t10k-labels-idx1-ubyte"].astype(np.int32) + 250
    path = write_npz(tmp_path / "big.npz", arrays, y_test=labels)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value) == f"{path}: y_test must hold integers 0-255 (uint8), got int32"


def test_npz_with_flat_images_names_the_shape_problem(tmp_path, arrays) -> None:
    flat = arrays["train-images-idx3-ubyte"].reshape(TRAIN, 784)
    path = write_npz(tmp_path / "flat.npz", arrays, x_train=flat)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value) == (
        f"{path}: x_train has shape ({TRAIN}, 784); numbre needs (N, 28, 28) (28x28 grey images): "
        "reshape it, e.g. x_train.reshape(-1, 28, 28)"
    )


@pytest.mark.parametrize(("key", "message"), [
    ("x_test", "holds no test images; numbre learns from the training split and measures on the test "
               "split, so both must hold images"),
    ("x_train", "holds no training images; numbre learns"),
])
def test_npz_with_an_empty_split_is_refused_at_load(tmp_path, arrays, key: str, message: str) -> None:
    images = "t10k-images-idx3-ubyte" if key == "x_test" else "train-images-idx3-ubyte"
    labels = images.replace("images-idx3", "labels-idx1")
    path = write_npz(tmp_path / "empty.npz", arrays, **{key: arrays[images][:0],
                                                        "y" + key[1:]: arrays[labels][:0].astype(np.int64)})
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value).startswith(f"{path} {message}")


def test_labels_that_skip_classes_are_refused(tmp_path, arrays) -> None:
    shifted = arrays["train-labels-idx1-ubyte"].astype(np.int64) + 5
    path = write_npz(tmp_path / "shifted.npz", arrays, y_train=shifted)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert str(caught.value) == (
        f"{path}: labels go up to {shifted.max()} but no training image has the label 0, 1, 2, 3, 4; "
        "labels must number the classes 0, 1, 2, ... (a class no image has cannot be learned)")


def test_file_that_is_not_an_npz(tmp_path) -> None:
    path = tmp_path / "fake.npz"
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(f"{path} is not a readable .npz file: ")


def test_load_dataset_nonexistent(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        load_dataset("nonexistent")
    assert str(caught.value) == "--data nonexistent: no such file or folder"


def test_load_dataset_other_kind_of_file(tmp_path) -> None:
    path = tmp_path / "digits.csv"
    path.write_text("0,0,0\n")
    with pytest.raises(DataError) as caught:
        load_dataset(str(path))
    assert str(caught.value) == (
        f"--data {path}: expected a folder of MNIST IDX files or an .npz file"
    )


def test_cache_root_follows_numbre_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NUMBRE_CACHE", str(tmp_path / "my-cache"))
    assert cache_root() == tmp_path / "my-cache"


def test_debian_fashion_mnist_folder() -> None:
    """Debian's fashion-mnist package (installed by CI) is recognised by its digests."""
    dataset = load_dataset(FASHION_FOLDER)
    assert dataset.name == "Fashion-MNIST"
    assert dataset.x_train.shape == (60000, 28, 28)
    assert dataset.y_train.shape == (60000,)
    assert dataset.x_test.shape == (10000, 28, 28)
    assert dataset.y_test.shape == (10000,)
    assert dataset.class_names == FASHION_CLASSES
    assert dataset.class_names[0] == "T-shirt/top"
    assert dataset.class_names[-1] == "Ankle boot"
    assert dataset.file_sha256 == FASHION_MNIST.raw_sha256
    np.testing.assert_array_equal(dataset.class_counts("train"), [6000] * 10)
    np.testing.assert_array_equal(dataset.class_counts("test"), [1000] * 10)
    # The first training labels of Fashion-MNIST: ankle boot, T-shirt, T-shirt, dress, ...
    np.testing.assert_array_equal(dataset.y_train[:6], [9, 0, 0, 3, 0, 2])
    assert dataset.source == str(FASHION_FOLDER)
    # The files are gzipped in the package; the digests are those of the unpacked bytes.
    packed = FASHION_FOLDER / "t10k-labels-idx1-ubyte.gz"
    assert sha256(idx.read_bytes(packed)) == FASHION_MNIST.raw_sha256["t10k-labels-idx1-ubyte"]
