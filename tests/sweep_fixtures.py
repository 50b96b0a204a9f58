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
    protos = rng.integers(0, 256, (10, 28, 28))
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        noise = rng.integers(0, 60, (n, 28, 28))
        write_idx(data / f"{prefix}-images-idx3-ubyte", np.clip(protos[labels] + noise, 0, 255))
        write_idx(data / f"{prefix}-labels-idx1-ubyte", labels)
    net = build_scrramble_network(
        hidden_cores=(4,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(1)
    )
    save_network(net, d / "net.h5")
    (d / "chip.toml").write_text(CHIP)
    return d


def spec_text(d: Path, parameters: str, sweep_extra: str = "", fixed: str = "") -> str:
    """A specification over the work dir's network, data and chip file."""
    return (
        f'[sweep]\nnetwork = "{d / "net.h5"}"\ndata = "{d / "data"}"\nchip = "{d / "chip.toml"}"\n'
        f"{sweep_extra}\n[fixed]\n{fixed}\n[parameters]\n{parameters}\n"
    )
