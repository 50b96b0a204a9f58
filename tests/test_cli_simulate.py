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

IDEAL = """
[chip]
grid_rows = 8
grid_cols = 8
core_rows = 64
core_cols = 64
slot_size = 16

[device]
preset = "ideal"

[dac]
bits = 16

[adc]
bits = 16

[mapping]
encoding = "{encoding}"
activation_bits = 0

[simulation]
batch_chunk = 16
calibration_samples = {calibration}
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
    test_images = rng.integers(0, 256, (40, 28, 28))
    # the train split starts with the test images: the ideal chip's ADCs, calibrated on them
    # (min-max), then never clip a test image
    train_images = np.concatenate([test_images, rng.integers(0, 256, (8, 28, 28))])
    for prefix, images in (("train", train_images), ("t10k", test_images)):
        write_idx(data / f"{prefix}-images-idx3-ubyte", images)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, len(images)))
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
    for enc in ("single", "differential", "offset"):
        (d / f"ideal_{enc}.toml").write_text(IDEAL.format(encoding=enc, calibration=48))
    (d / "ideal_512.toml").write_text(IDEAL.format(encoding="single", calibration=512))
    return d


def run_json(capsys, *argv, command="simulate") -> dict:
    assert main([command, *map(str, argv), "--json", "--no-progress"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out)
    assert d["command"] == command and d["seconds"] > 0
    return d


def test_simulate_json(workdir, capsys):
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "chip.toml", "--data",
                 workdir / "data", "--limit", 30, "--seed", 3)
    assert d["n_samples"] == 30 and d["n_chunks"] == 2
    assert len(d["snr_db"]) == 2 and len(d["snr_db_end_to_end"]) == 2
    assert d["calibration_samples"] == 32  # from the train split
    assert d["network"] == str(workdir / "net.h5") and d["data"] == str(workdir / "data")
    # 'single': one device per weight: (4 hidden + 10 output cores) x 64 x 64, as map reports
    n_w = (4 + 10) * 64 * 64
    assert d["devices"] == {"single": n_w, "differential": 2 * n_w, "offset": d["devices"][
        "offset"]} and d["devices"]["offset"] > n_w
    m = run_json(capsys, workdir / "net.h5", "--chip", workdir / "chip.toml", command="map")
    assert m["devices"] == d["devices"]
    assert [la["devices"] for la in d["layers"]] == [la["devices"] for la in m["layers"]]
    assert [la["devices"]["single"] for la in d["layers"]] == [4 * 64 * 64, 10 * 64 * 64]
    from sim.commands.common import default_threads

    assert d["seed"] == 3 and d["threads"] == default_threads() and d["limit"] == 30
    assert d["simulation_seconds"] > 0 and d["programming_seconds"] > 0
    assert d["seconds"] >= d["simulation_seconds"] + d["programming_seconds"]
    assert d["instance_origin"] == "programmed" and d["dataset"] == "fashion-mnist"
    assert d["encoding"] == "single" and d["dac"] == "8-bit multilevel"


def test_simulate_text(workdir, capsys):
    """The text report prints the numbers of the JSON report (same seed, same results)."""
    argv = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml"),
            "--data", str(workdir / "data"), "--limit", "20", "--seed", "4"]
    d = run_json(capsys, *argv[1:])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"chip accuracy      {100 * d['accuracy']:.2f} %" in out
    assert f"ideal accuracy     {100 * d['ideal_accuracy']:.2f} %" in out
    assert f"devices            {d['devices']['single']} " in out
    assert f"samples            20 ({d['n_chunks']} chunks, 32 calibration samples)" in out
    assert "programming seed 4; read-noise seed 4" in out
    for i, (a, b) in enumerate(zip(d["snr_db"], d["snr_db_end_to_end"], strict=True)):
        assert f"{a:.2f}" in out.splitlines()[-2 + i] and f"{b:.2f}" in out.splitlines()[-2 + i]


@pytest.mark.parametrize("chip", ["ideal_single.toml", "ideal_differential.toml",
                                  "ideal_offset.toml"])
def test_ideal_chip_reproduces_evaluate(workdir, capsys, chip):
    """Ideal devices, 16-bit converters, float activations and ADCs calibrated on the test
    images themselves (nothing clips): the chip's predictions are the float network's, so its
    accuracy is evaluate's exactly (also for a network whose accuracy is far from chance: the
    labels are its own float predictions)."""
    ev = run_json(capsys, workdir / "net.h5", "--data", workdir / "data", command="evaluate")
    sim = run_json(capsys, workdir / "net.h5", "--chip", workdir / chip, "--data",
                   workdir / "data")
    assert sim["n_samples"] == ev["n_samples"] == 40
    assert sim["accuracy"] == sim["ideal_accuracy"] == ev["accuracy"]
    from mappings.h5format import load_network
    from sim.datasets import load_dataset

    x, _ = load_dataset("fashion-mnist", workdir / "data", "test")
    pred = load_network(workdir / "net.h5").predict(x)
    own = workdir / f"own_{chip}"
    own.mkdir(exist_ok=True)
    for f in (workdir / "data").iterdir():
        (own / f.name).write_bytes(f.read_bytes())
    write_idx(own / "t10k-labels-idx1-ubyte", pred)
    mine = run_json(capsys, workdir / "net.h5", "--chip", workdir / chip, "--data", own)
    assert mine["accuracy"] == 1.0 == mine["ideal_accuracy"]


def test_instance_saved_then_loaded(workdir, capsys, tmp_path):
    inst = tmp_path / "instance.h5"
    args = (workdir / "net.h5", "--chip", workdir / "chip.toml", "--data", workdir / "data",
            "--limit", 25, "--instance", inst)
    first = run_json(capsys, *args)
    assert first["instance_origin"] == "programmed and saved" and inst.is_file()
    second = run_json(capsys, *args)
    assert second["instance_origin"] == "loaded"
    for key in ("accuracy", "snr_db", "snr_db_end_to_end", "devices"):
        assert first[key] == second[key]
    # a loaded instance keeps its programming seed; --seed then only sets the read noise
    third = run_json(capsys, *args, "--seed", 7)
    assert first["instance_seed"] == second["instance_seed"] == 0
    assert third["instance_seed"] == 0 and third["seed"] == 7
    assert third["devices"] == first["devices"] and third["snr_db"] != first["snr_db"]
    # --overwrite: a freshly programmed instance (seed 7) replaces the file
    fourth = run_json(capsys, *args, "--seed", 7, "--overwrite")
    assert fourth["instance_origin"] == "programmed and saved" and fourth["instance_seed"] == 7
    assert run_json(capsys, *args)["instance_seed"] == 7
    # another network is refused clearly
    assert main(["simulate", str(workdir / "dense.h5"), "--chip", str(workdir / "pcm.toml"),
                 "--data", str(workdir / "data"), "--instance", str(inst)]) == 2
    assert "different network" in capsys.readouterr().err


def test_age(workdir, capsys):
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "pcm.toml", "--data",
                 workdir / "data", "--limit", 20, "--age", 86400)
    assert d["age_s"] == 86400.0
    assert all(layer["compensation"] > 1 for layer in d["layers"])


def test_retention_time_from_chip_file_seed_and_threads(workdir, capsys, tmp_path, monkeypatch):
    """[retention] time_s is the default age; --seed changes the noise; --threads does not
    change the results."""
    chip = tmp_path / "aged.toml"
    chip.write_text(CHIP.format(preset="pcm_joshi2020", encoding="differential")
                    + "\n[retention]\ntime_s = 86400.0\n")
    args = (workdir / "net.h5", "--chip", chip, "--data", workdir / "data", "--limit", 20)
    import numba

    before = numba.get_num_threads()
    monkeypatch.setattr("sim.commands.common.available_cpus", lambda: 2)  # also on 1 CPU
    a = run_json(capsys, *args, "--threads", 1)
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
        (["--limit", "0"], "argument --limit: must be a positive integer, got 0"),
        (["--threads", "0"], "argument --threads: must be a positive integer, got 0"),
        (["--threads", "64"], "argument --threads: 64 threads requested but only 2 CPUs"),
        (["--seed", "-1"], "argument --seed: expected an integer 0 <= seed < 2**63"),
        (["--seed", "99999999999999999999"], "argument --seed: expected an integer 0 <= seed"),
        (["--seed", "1.5"], "argument --seed: expected an integer"),
    ],
)
def test_bad_arguments(workdir, capsys, monkeypatch, extra, message):
    import sim.commands.common

    monkeypatch.setattr(sim.commands.common, "available_cpus", lambda: 2)
    argv = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml"),
            "--data", str(workdir / "data"), "--instance", str(workdir / "never.h5"), *extra]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"scrramble-sim simulate: error: {message}" in err and "Traceback" not in err
    assert not (workdir / "never.h5").exists()


def test_bad_age(workdir, capsys):
    argv = ["simulate", str(workdir / "net.h5"), "--chip", str(workdir / "chip.toml"),
            "--data", str(workdir / "data"), "--age", "-5"]
    assert main(argv) == 2
    assert "--age must be a finite number" in capsys.readouterr().err


def test_largest_seed_is_accepted(workdir, capsys, tmp_path):
    inst = tmp_path / "deep" / "instance.h5"  # missing folders are created
    d = run_json(capsys, workdir / "net.h5", "--chip", workdir / "chip.toml", "--data",
                 workdir / "data", "--limit", 8, "--seed", 2**63 - 1, "--instance", inst)
    assert d["seed"] == d["instance_seed"] == 2**63 - 1 and inst.is_file()


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
def test_simulate_fashion_mnist(fashion_mnist_dir, workdir, capsys, tmp_path):
    """A tiny network trained for one short epoch on 2000 real images: well above chance in
    float, reproduced by the ideal chip, and still far above chance on the noisy
    rram_wan2022 chip."""
    net = tmp_path / "fashion.h5"
    assert main(["train", "--data", str(fashion_mnist_dir), "--out", str(net), "--core-size",
                 "64", "--slot-size", "16", "--hidden-cores", "8", "--epochs", "1",
                 "--limit-train", "2000", "--limit", "200", "--threads", "1",
                 "--no-progress"]) == 0
    capsys.readouterr()
    data = ("--data", fashion_mnist_dir, "--limit", 200)
    ev = run_json(capsys, net, *data, command="evaluate")
    assert ev["n_samples"] == 200 and ev["accuracy"] > 0.55  # chance: 0.1
    ideal = run_json(capsys, net, "--chip", workdir / "ideal_512.toml", *data)
    # ADCs calibrated (min-max) on 512 training images: a test image beyond that range clips,
    # which may flip a near tie; allow one of the 200 images
    assert ideal["ideal_accuracy"] == ev["accuracy"]
    assert abs(ideal["accuracy"] - ev["accuracy"]) <= 1 / 200
    noisy = run_json(capsys, net, "--chip", workdir / "chip.toml", *data)
    assert noisy["ideal_accuracy"] == ev["accuracy"] and noisy["calibration_samples"] == 32
    assert noisy["accuracy"] > 0.55 and all(np.isfinite(noisy["snr_db"]))
