"""IDX reading, validation and dataset discovery (synthetic files; one real-data test)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sim.datasets import (
    DataNotFoundError,
    DatasetError,
    find_dataset_dir,
    load_dataset,
    read_idx,
)
from sim.datasets import idx as datasets

_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(a: np.ndarray) -> bytes:
    code = _CODES[a.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray) -> Path:
    data = idx_bytes(a)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_split(directory: Path, split: str, n: int, seed: int, gz: bool = True) -> tuple:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    img, lab = datasets.file_names(split)
    suffix = ".gz" if gz else ""
    write_idx(directory / (img + suffix), images)
    write_idx(directory / (lab + suffix), labels)
    return images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((3, 5, 2)) * 100).astype(dtype)
    path = write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype)
    assert b.dtype.isnative
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("gz", [False, True])
def test_load_dataset_scales_and_types(tmp_path, gz):
    images, labels = write_split(tmp_path, "test", 7, seed=1, gz=gz)
    x, y = load_dataset("fashion-mnist", tmp_path, "test")
    assert x.dtype == np.float32 and x.shape == (7, 28, 28)
    assert y.dtype == np.int64 and y.shape == (7,)
    np.testing.assert_allclose(x, images / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_train_and_test_splits_are_distinct(tmp_path):
    write_split(tmp_path, "train", 5, seed=1)
    write_split(tmp_path, "test", 3, seed=2)
    assert load_dataset("mnist", tmp_path, "train")[0].shape[0] == 5
    assert load_dataset("mnist", tmp_path, "test")[0].shape[0] == 3


def test_subdirectory_and_dotted_names(tmp_path):
    sub = tmp_path / "mnist"
    rng = np.random.default_rng(0)
    sub.mkdir()
    write_idx(sub / "t10k-images.idx3-ubyte", rng.integers(0, 255, (2, 28, 28), dtype=np.uint8))
    write_idx(sub / "t10k-labels.idx1-ubyte", np.array([3, 9], dtype=np.uint8))
    x, y = load_dataset("mnist", tmp_path, "test")
    assert x.shape == (2, 28, 28)
    assert y.tolist() == [3, 9]


def test_resolution_order(tmp_path, monkeypatch):
    explicit, env, default = tmp_path / "explicit", tmp_path / "env", tmp_path / "default"
    write_split(explicit, "test", 2, seed=1)
    write_split(env, "test", 3, seed=2)
    write_split(default, "test", 4, seed=3)
    monkeypatch.setattr(datasets, "DEFAULT_DIRS", {"fashion-mnist": default, "mnist": default})
    monkeypatch.setenv(datasets.ENV_VAR, str(env))
    assert find_dataset_dir("fashion-mnist", explicit) == explicit
    assert find_dataset_dir("fashion-mnist") == env
    assert len(load_dataset("fashion-mnist", None, "test")[1]) == 3
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "empty"))
    assert find_dataset_dir("fashion-mnist") == default  # env dir lacks the files: fall back
    monkeypatch.delenv(datasets.ENV_VAR)
    assert len(load_dataset("fashion-mnist", None, "test")[1]) == 4


def test_not_found_message(tmp_path, monkeypatch):
    missing = tmp_path / "nothing"
    monkeypatch.setattr(datasets, "DEFAULT_DIRS", {"fashion-mnist": missing, "mnist": missing})
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "envdir"))
    with pytest.raises(DataNotFoundError) as exc:
        load_dataset("fashion-mnist", None, "train")
    msg = str(exc.value)
    assert str(tmp_path / "envdir") in msg and str(missing) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--data" in msg and "SCRRAMBLE_DATA" in msg
    assert "train-images-idx3-ubyte" in msg
    assert isinstance(exc.value, ValueError)


def test_explicit_dir_does_not_fall_back(tmp_path, monkeypatch):
    default = tmp_path / "default"
    write_split(default, "test", 2, seed=1)
    monkeypatch.setattr(datasets, "DEFAULT_DIRS", {"fashion-mnist": default, "mnist": default})
    with pytest.raises(DataNotFoundError, match="elsewhere"):
        load_dataset("fashion-mnist", tmp_path / "elsewhere", "test")


def test_bad_names(tmp_path):
    with pytest.raises(DatasetError, match="dataset must be one of"):
        load_dataset("cifar", tmp_path, "test")
    with pytest.raises(DatasetError, match="split must be one of"):
        load_dataset("mnist", tmp_path, "validation")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda b: b[:3], "at least a 4-byte IDX header"),
        (lambda b: b"\x01" + b[1:], "magic number"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX dtype code 0x07"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
        (lambda b: b[:10], "header with 3 dimensions needs 16 bytes"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\x00\x00", "trailing bytes"),
    ],
)
def test_corrupt_idx(tmp_path, mutate, expected):
    good = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(good))
    with pytest.raises(DatasetError, match=expected) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    data = gzip.compress(idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cannot read IDX file") as exc:
        read_idx(path)
    assert str(path) in str(exc.value)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="cannot read IDX file"):
        read_idx(path)


def _split_with(tmp_path, images, labels):
    img, lab = datasets.file_names("test")
    write_idx(tmp_path / img, images)
    write_idx(tmp_path / lab, labels)


def test_inconsistent_split_contents(tmp_path):
    ok_img = np.zeros((3, 28, 28), dtype=np.uint8)
    _split_with(tmp_path, ok_img, np.array([1, 2], dtype=np.uint8))
    with pytest.raises(DatasetError, match="2 labels but .* 3 images"):
        load_dataset("mnist", tmp_path, "test")
    _split_with(tmp_path, ok_img, np.array([1, 2, 10], dtype=np.uint8))
    with pytest.raises(DatasetError, match="label 10 out of range"):
        load_dataset("mnist", tmp_path, "test")
    _split_with(tmp_path, np.zeros((3, 32, 32), dtype=np.uint8), np.zeros(3, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"expected uint8 images shaped \(N, 28, 28\)"):
        load_dataset("mnist", tmp_path, "test")
    _split_with(tmp_path, ok_img, np.zeros((3, 1), dtype=np.uint8))
    with pytest.raises(DatasetError, match="expected uint8 labels"):
        load_dataset("mnist", tmp_path, "test")


@pytest.mark.dataset
def test_real_fashion_mnist_test_split(fashion_mnist_dir):
    x, y = load_dataset("fashion-mnist", fashion_mnist_dir, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == set(range(10))
    assert np.bincount(y).tolist() == [1000] * 10  # Fashion-MNIST's test split is balanced
    assert 0.0 <= x.min() and x.max() == 1.0
