"""Tiny Fashion-MNIST-shaped IDX datasets for CLI tests: each class a bright bar at its own
row, plus noise, so a one-epoch network learns it."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, a: np.ndarray) -> None:
    """Write ``a`` as a gzipped uint8 IDX file."""
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(gzip.compress(header + a.astype(np.uint8).tobytes()))


def write_bar_dataset(d: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """The four IDX files of a bar dataset in folder ``d``; returns ``d``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 + 2 * c : 4 + 2 * c, 4:24] += 180
        write_idx(d / f"{split}-images-idx3-ubyte.gz", np.clip(x, 0, 255))
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return d
