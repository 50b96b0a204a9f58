"""``scrramble-sim simulate`` end to end on tiny synthetic IDX data (and real data if present)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from mappings.builders import build_dense_network, build_scrramble_network
from mappings.h5format import save_network
from sim.commands.cli import main

CHIP = """
[chip]
grid_rows = 8
grid_cols = 8
core_rows = 64
core_cols = 64
slot_size = 16

[device]
preset = "{preset}"

[mapping]
encoding = "{encoding}"

[simulation]
batch_chunk = 16
calibration_samples = 32
"""


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of uint8 data: magic 0 0 8 ndim, big-endian dims, bytes."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(header + a.tobytes())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_simulate")
    rng = np.random.default_rng(0)
    data = d / "data"
    data.mkdir()
    for prefix, n in (("train", 48), ("t10k", 40)):
        write_idx(data / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(data / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    net = build_scrramble_network(
        hidden_cores=(4,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(1)
    )
    save_network(net, d / "net.h5")
    save_network(build_dense_network(hidden=(20,), rng=np.random.default_rng(2)), d / "dense.h5")
    for name, preset, enc in (
        ("chip.toml", "rram_wan2022", "single"),
        ("pcm.toml", "pcm_joshi2020", "differential"),
    ):
        (d / name).write_text(CHIP.format(preset=preset, encoding=enc))
    return d


def run_json(capsys, *argv) -> dict:
    assert main(["simulate", *map(str, argv), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_simulate_json(workdir, capsys):
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "chip.toml", "--data",
                 workdir / "data", "--limit", 30, "--seed", 3)
    assert d["n_samples"] == 30 and d["n_chunks"] == 2
    assert 0 <= d["accuracy"] <= 1 and 0 <= d["ideal_accuracy"] <= 1
    assert len(d["snr_db"]) == 2 and len(d["snr_db_end_to_end"]) == 2
    assert d["calibration_samples"] == 32  # from the train split
    assert d["n_devices"] > 0 and d["seconds"] > 0 and d["threads"] == 1
    assert d["instance_origin"] == "programmed" and d["dataset"] == "fashion-mnist"
    assert d["encoding"] == "single" and d["dac"] == "8-bit multilevel"


def test_simulate_text(workdir, capsys):
    argv = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml"),
            "--data", str(workdir / "data"), "--limit", "20"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "chip accuracy" in out and "ideal accuracy" in out and "SNR dB" in out


def test_instance_saved_then_loaded(workdir, capsys, tmp_path):
    inst = tmp_path / "instance.h5"
    args = (workdir / "net.h5", "--chip", workdir / "chip.toml", "--data", workdir / "data",
            "--limit", 25, "--instance", inst)
    first = run_json(capsys, *args)
    assert first["instance_origin"] == "programmed and saved" and inst.is_file()
    second = run_json(capsys, *args)
    assert second["instance_origin"] == "loaded"
    for key in ("accuracy", "snr_db", "snr_db_end_to_end", "n_devices"):
        assert first[key] == second[key]
    # a loaded instance keeps its programming seed; --seed then only sets the read noise
    third = run_json(capsys, *args, "--seed", 7)
    assert first["instance_seed"] == second["instance_seed"] == 0
    assert third["instance_seed"] == 0 and third["seed"] == 7
    assert third["n_devices"] == first["n_devices"] and third["snr_db"] != first["snr_db"]
    # another network is refused clearly
    assert main(["simulate", str(workdir / "dense.h5"), "--chip", str(workdir / "pcm.toml"),
                 "--data", str(workdir / "data"), "--instance", str(inst)]) == 2
    assert "different network" in capsys.readouterr().err


def test_age(workdir, capsys):
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "pcm.toml", "--data",
                 workdir / "data", "--limit", 20, "--age", 86400)
    assert d["age_s"] == 86400.0
    assert all(layer["compensation"] > 1 for layer in d["layers"])


def test_retention_time_from_chip_file_seed_and_threads(workdir, capsys, tmp_path):
    """[retention] time_s is the default age; --seed changes the noise; --threads does not
    change the results."""
    chip = tmp_path / "aged.toml"
    chip.write_text(CHIP.format(preset="pcm_joshi2020", encoding="differential")
                    + "\n[retention]\ntime_s = 86400.0\n")
    args = (workdir / "net.h5", "--chip", chip, "--data", workdir / "data", "--limit", 20)
    import numba

    before = numba.get_num_threads()
    a = run_json(capsys, *args)  # --threads 1
    assert numba.get_num_threads() == before  # restored for in-process callers
    assert a["age_s"] == 86400.0 and all(layer["compensation"] > 1 for layer in a["layers"])
    fresh = run_json(capsys, *args, "--age", 0)
    assert fresh["age_s"] == 0.0 and all(layer["compensation"] == 1 for layer in fresh["layers"])
    two = run_json(capsys, *args, "--threads", 2)
    assert two["threads"] == 2 and numba.get_num_threads() == before
    assert two["accuracy"] == a["accuracy"]  # the chip's outputs are bit-identical (see
    for key in ("snr_db", "snr_db_end_to_end"):  # test_functional); the float reference
        assert two[key] == pytest.approx(a[key], rel=1e-6)  # may round differently
    other = run_json(capsys, *args, "--seed", 1)
    assert other["snr_db"] != a["snr_db"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--limit", "0"], "--limit must be a positive integer"),
        (["--threads", "0"], "--threads must be a positive integer"),
        (["--age", "-5"], "--age must be a finite number"),
        (["--seed", "-1"], "--seed must be an integer >= 0"),
    ],
)
def test_bad_arguments(workdir, capsys, extra, message):
    argv = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml"),
            "--data", str(workdir / "data"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_user_errors(workdir, capsys, tmp_path):
    base = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml")]
    assert main([*base, "--data", str(tmp_path)]) == 2
    assert "test split not found" in capsys.readouterr().err
    small = tmp_path / "small.toml"
    small.write_text(CHIP.format(preset="ideal", encoding="single").replace("grid_rows = 8",
                                                                            "grid_rows = 1"))
    assert main(["simulate", str(workdir / "net.h5"), "--chip", str(small), "--data",
                 str(workdir / "data")]) == 2
    assert "physical cores" in capsys.readouterr().err
    assert main(["simulate", str(workdir / "dense.h5"), "--chip", str(workdir / "chip.toml"),
                 "--data", str(workdir / "data")]) == 2
    assert "cannot use encoding 'single'" in capsys.readouterr().err
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert main([*base, "--data", str(workdir / "data"), "--instance", str(broken)]) == 2
    assert "broken.h5" in capsys.readouterr().err
    assert main([str(a) for a in ("simulate", tmp_path / "none.h5", "--data",
                                  workdir / "data")]) == 2
    assert "none.h5" in capsys.readouterr().err


@pytest.mark.dataset
def test_simulate_fashion_mnist(fashion_mnist_dir, workdir, capsys):
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "chip.toml", "--data",
                 fashion_mnist_dir, "--limit", 200)
    assert d["n_samples"] == 200 and d["calibration_samples"] == 32
    assert 0 <= d["accuracy"] <= 1 and all(np.isfinite(d["snr_db"]))
