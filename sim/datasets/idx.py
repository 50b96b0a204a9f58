"""IDX image datasets (Fashion-MNIST, MNIST): reading, validation and discovery.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian header --
two zero bytes, a dtype code, the number of dimensions, one uint32 per dimension -- followed
by the raw array. Files may be gzipped (``.gz``) or raw.

The directory holding a dataset is found in this order: an explicit ``data_dir``, else the
environment variable ``SCRRAMBLE_DATA``, then the Debian location
``/usr/share/datasets/<name>`` (package ``dataset-fashion-mnist``). A directory is accepted if
it holds the four standard files directly or in a sub-directory named after the dataset.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

ENV_VAR = "SCRRAMBLE_DATA"
DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist")
SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_DIRS: dict[str, Path] = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
_PREFIX = {"train": "train", "test": "t10k"}

# IDX dtype codes -> big-endian numpy dtypes.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(ValueError):
    """A dataset file is malformed or inconsistent; the message names the file."""


class DataNotFoundError(DatasetError):
    """No directory holding the requested dataset was found."""


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read IDX file ({exc})") from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a native-endian numpy array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes; expected at least a 4-byte IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"{path}: magic number starts with bytes {raw[0]:#04x} {raw[1]:#04x}; expected 0x00 "
            "0x00 (not an IDX file)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        codes = ", ".join(f"{c:#04x}" for c in IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX dtype code {code:#04x}; expected one of {codes}")
    if ndim < 1:
        raise DatasetError(f"{path}: IDX header gives 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(
            f"{path}: {len(raw)} bytes; header with {ndim} dimensions needs {header} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise DatasetError(
            f"{path}: {len(raw)} bytes ({what}); expected {expected} bytes for dims {dims} of "
            f"{dtype.name}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def file_names(split: str) -> tuple[str, str]:
    """Standard (images, labels) base names for a split, without ``.gz``."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    prefix = _PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_file(directory: Path, base: str) -> Path | None:
    # Also accept the "train-images.idx3-ubyte" spelling some mirrors use.
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def _holds_split(directory: Path, split: str) -> bool:
    return all(_find_file(directory, b) is not None for b in file_names(split))


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for dataset ``name``, in order of preference."""
    if name not in DATASETS:
        raise DatasetError(f"dataset must be one of {DATASETS}, got {name!r}")
    if data_dir is not None:
        roots = [Path(data_dir)]
    else:
        env = os.environ.get(ENV_VAR)
        roots = ([Path(env)] if env else []) + [DEFAULT_DIRS[name]]
    out: list[Path] = []
    for root in roots:
        for d in (root, root / name):
            if d not in out:
                out.append(d)
    return out


def find_dataset_dir(
    name: str, data_dir: str | os.PathLike | None = None, split: str = "test"
) -> Path:
    """The first candidate directory holding ``split`` of ``name``, else DataNotFoundError."""
    dirs = candidate_dirs(name, data_dir)
    for d in dirs:
        if d.is_dir() and _holds_split(d, split):
            return d
    images, labels = file_names(split)
    searched = ", ".join(str(d) for d in dirs)
    how = (
        "install the Debian package (apt-get install dataset-fashion-mnist)"
        if name == "fashion-mnist"
        else "download the IDX files from http://yann.lecun.com/exdb/mnist/"
    )
    raise DataNotFoundError(
        f"{name} {split} split not found: looked for {images}[.gz] and {labels}[.gz] in "
        f"{searched}. To get the data, {how}, or download the IDX files and pass --data DIR "
        f"(or set {ENV_VAR}=DIR)."
    )


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load a split: images float32 in [0, 1] shaped (N, 28, 28) and labels int64 in 0..9."""
    directory = find_dataset_dir(name, data_dir, split)
    img_base, lab_base = file_names(split)
    img_path = _find_file(directory, img_base)
    lab_path = _find_file(directory, lab_base)
    assert img_path is not None and lab_path is not None
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(
            f"{img_path}: {images.dtype.name} array shaped {images.shape}; expected uint8 images "
            f"shaped (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{lab_path}: {labels.dtype.name} array shaped {labels.shape}; expected uint8 labels "
            "shaped (N,)"
        )
    if len(labels) != len(images):
        raise DatasetError(
            f"{lab_path}: {len(labels)} labels but {img_path.name} holds {len(images)} images; "
            "expected equal counts"
        )
    if len(labels) and labels.max() >= N_CLASSES:
        raise DatasetError(
            f"{lab_path}: label {int(labels.max())} out of range; expected 0..{N_CLASSES - 1}"
        )
    x = images.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    return x, labels.astype(np.int64)
