"""Small inputs for the sweep tests: IDX files, a tiny ScRRAMBLe network and a chip file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from mappings.builders import build_scrramble_network
from mappings.h5format import save_network

CHIP = """\
[chip]
core_rows = 64
core_cols = 64
slot_size = 16

[device]
preset = "rram_wan2022"

[simulation]
batch_chunk = 32
calibration_samples = 32
"""


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of uint8 data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(header + a.tobytes())


def make_workdir(d: Path, n_test: int = 60, n_train: int = 40) -> Path:
    """``d`` with data/ (IDX files), net.h5 (16 -> 4 -> 10 cores of 64) and chip.toml."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    data = d / "data"
    data.mkdir(exist_ok=True)
    net = build_scrramble_network(
        hidden_cores=(4,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(1)
    )
    save_network(net, d / "net.h5")
    protos = (rng.random((10, 28, 28)) < 0.3) * 200
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.clip(protos[rng.integers(0, 10, n)] + rng.integers(0, 60, (n, 28, 28)),
                         0, 255).astype(np.uint8)
        labels = net.predict(images.astype(np.float32) / 255).astype(np.int64)  # learnable
        labels[::4] = rng.integers(0, 10, labels[::4].shape)
        write_idx(data / f"{prefix}-images-idx3-ubyte", images)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", labels)
    (d / "chip.toml").write_text(CHIP)
    return d


def spec_text(d: Path, parameters: str, sweep_extra: str = "", fixed: str = "") -> str:
    """A specification over the work dir's network, data and chip file."""
    return (
        f'[sweep]\nnetwork = "{d / "net.h5"}"\ndata = "{d / "data"}"\nchip = "{d / "chip.toml"}"\n'
        f"{sweep_extra}\n[fixed]\n{fixed}\n[parameters]\n{parameters}\n"
    )
