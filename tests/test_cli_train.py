"""``scrramble-sim train`` / ``evaluate`` in-process on small synthetic IDX data."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from mappings.h5format import load_network
from mappings.network import DenseLayer, ScrrambleLayer
from sim import cli

TINY = [
    "--core-size",
    "64",
    "--slot-size",
    "16",
    "--hidden-cores",
    "3",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--no-progress",
    "--threads",
    "1",
]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("SCRRAMBLE_DATA", raising=False)


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(gzip.compress(header + a.astype(np.uint8).tobytes()))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped IDX files: each class a bright bar at its own row, plus noise."""
    d = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 120)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 + 2 * c : 4 + 2 * c, 4:24] += 180
        _write_idx(d / f"{split}-images-idx3-ubyte.gz", np.clip(x, 0, 255))
        _write_idx(d / f"{split}-labels-idx1-ubyte.gz", y)
    return d


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_json(out: str) -> dict:
    assert out.count("\n") == 1 and out.endswith("\n"), out  # exactly one line on stdout
    obj = json.loads(out)
    assert isinstance(obj, dict)
    return obj


def test_train_json_save_and_evaluate(tmp_path, data_dir, capsys):
    net_path = tmp_path / "net.h5"
    rc, out, err = run_cli(capsys, "train", "--data", data_dir, "--out", net_path, "--json", *TINY)
    assert rc == 0, err
    res = one_json(out)
    for key in ("test_accuracy", "train_accuracy", "train_seconds", "parameters", "history"):
        assert key in res
    assert res["n_train"] == 300 and res["n_test"] == 120
    assert 0.0 <= res["test_accuracy"] <= 1.0
    assert res["loss"] == "margin" and res["readout"] == "capsule"
    assert len(res["history"]) == 1

    net = load_network(net_path)
    assert [type(layer) for layer in net.layers] == [ScrrambleLayer, ScrrambleLayer]
    assert net.layers[0].n_src_cores == 16 and net.layers[0].n_dst_cores == 3
    assert net.layers[1].n_dst_cores == 10 and net.layers[0].slot_size == 16
    assert res["parameters"] == sum(layer.weights.size for layer in net.layers)
    meta = net.metadata
    assert meta["dataset"] == "fashion-mnist" and meta["epochs"] == 1 and meta["seed"] == 0
    assert meta["threads"] == 1 and meta["test_accuracy"] == res["test_accuracy"]
    assert meta["training"]["batch_size"] == 32 and meta["hidden_cores"] == [3]

    rc, out, err = run_cli(capsys, "evaluate", net_path, "--data", data_dir, "--json")
    assert rc == 0, err
    ev = one_json(out)
    assert ev["n_samples"] == 120
    assert ev["accuracy"] == res["test_accuracy"]  # same ideal forward, same data
    assert ev["saved_accuracy"] == res["test_accuracy"] and ev["dataset"] == "fashion-mnist"

    rc, out, _ = run_cli(
        capsys, "evaluate", net_path, "--data", data_dir, "--limit", "10", "--batch-size", "3"
    )
    assert rc == 0 and "(recorded at training:" in out
    assert "/10)" in out


def test_train_learns_and_text_report(tmp_path, data_dir, capsys):
    rc, out, err = run_cli(
        capsys,
        "train",
        "--data",
        data_dir,
        "--out",
        tmp_path / "n.h5",
        "--core-size",
        "64",
        "--slot-size",
        "16",
        "--hidden-cores",
        "3",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--threads",
        "1",
    )
    assert rc == 0, err
    assert "test accuracy" in out and "parameters" in out
    assert "epoch 4/4" in err  # progress bar on stderr
    acc = load_network(tmp_path / "n.h5").metadata["test_accuracy"]
    assert acc > 0.5  # chance is 0.1


def test_dense_baseline_and_options(tmp_path, data_dir, capsys):
    path = tmp_path / "dense.h5"
    rc, out, err = run_cli(
        capsys,
        "train",
        "--arch",
        "dense",
        "--dense-hidden",
        "16,8",
        "--data",
        data_dir,
        "--out",
        path,
        "--json",
        *TINY,
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.01",
        "--weight-clip",
        "0.05",
        "--weight-noise",
        "0.05",
        "--schedule",
        "step",
        "--seed",
        "5",
        "--limit-train",
        "100",
    )
    assert rc == 0, err
    res = one_json(out)
    assert res["loss"] == "xent" and res["readout"] == "logits" and res["n_train"] == 100
    net = load_network(path)
    assert [layer.weights.shape for layer in net.layers] == [(1024, 16), (16, 8), (8, 10)]
    assert all(isinstance(layer, DenseLayer) for layer in net.layers)
    assert max(float(np.abs(layer.weights).max()) for layer in net.layers) <= 0.05
    cfg = net.metadata["training"]
    assert (cfg["optimizer"], cfg["weight_decay"], cfg["weight_noise"]) == ("adamw", 0.01, 0.05)
    assert (cfg["schedule"], cfg["seed"], cfg["weight_clip"]) == ("step", 5, 0.05)


def test_qrelu_logits_options(tmp_path, data_dir, capsys):
    path = tmp_path / "q.h5"
    rc, out, err = run_cli(
        capsys,
        "train",
        "--data",
        data_dir,
        "--out",
        path,
        "--json",
        *TINY,
        "--activation",
        "qrelu",
        "--act-bits",
        "3",
        "--readout",
        "logits",
        "--loss",
        "margin",
        "--p",
        "0.3",
    )
    assert rc == 0, err
    net = load_network(path)
    assert net.readout.kind == "logits" and isinstance(net.layers[-1], DenseLayer)
    assert net.layers[0].activation.kind == "qrelu" and net.layers[0].activation.bits == 3
    assert net.layers[0].p == 0.3 and one_json(out)["loss"] == "margin"


def test_same_seed_same_file_contents(tmp_path, data_dir, capsys):
    for name in ("a.h5", "b.h5"):
        assert (
            run_cli(
                capsys,
                "train",
                "--data",
                data_dir,
                "--out",
                tmp_path / name,
                *TINY,
                "--limit-train",
                "64",
            )[0]
            == 0
        )
    a, b = load_network(tmp_path / "a.h5"), load_network(tmp_path / "b.h5")
    for la, lb in zip(a.layers, b.layers):
        assert np.array_equal(la.weights, lb.weights) and np.array_equal(la.routing, lb.routing)


def test_missing_data_exit_status_2(tmp_path, capsys):
    out_path = tmp_path / "never.h5"
    rc, out, err = run_cli(capsys, "train", "--data", tmp_path / "nope", "--out", out_path)
    assert rc == 2 and out == ""
    assert "apt-get install dataset-fashion-mnist" in err and "--data DIR" in err
    assert str(tmp_path / "nope") in err
    assert not out_path.exists()
    rc, _, err = run_cli(capsys, "evaluate", out_path, "--data", tmp_path)
    assert rc == 2 and "never.h5" in err


def test_bad_inputs_exit_status_2(tmp_path, data_dir, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5")
    rc, _, err = run_cli(capsys, "evaluate", bad, "--data", data_dir)
    assert rc == 2 and "bad.h5" in err and "HDF5" in err
    rc, _, err = run_cli(capsys, "train", "--data", data_dir, "--out", tmp_path / "x" / "n.h5")
    assert rc == 2 and "does not exist" in err
    rc, _, err = run_cli(
        capsys, "train", "--data", data_dir, "--out", tmp_path / "n.h5", "--p", "1.5"
    )
    assert rc == 2 and "--p" in err
    rc, _, err = run_cli(
        capsys,
        "train",
        "--data",
        data_dir,
        "--out",
        tmp_path / "n.h5",
        "--slot-size",
        "48",
        *TINY[4:],
    )
    assert rc == 2 and "slot_size" in err
    rc, _, err = run_cli(
        capsys,
        "train",
        "--data",
        data_dir,
        "--out",
        tmp_path / "n.h5",
        "--activation",
        "qrelu",
        "--act-bits",
        "0",
    )
    assert rc == 2 and "bits" in err
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(tmp_path / "n.h5"), "--hidden-cores", "5,x"])
