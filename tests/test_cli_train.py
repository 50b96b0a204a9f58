"""``scrramble-sim train`` / ``evaluate`` in-process on small synthetic IDX data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bar_dataset import write_bar_dataset

from mappings.h5format import load_network
from mappings.network import DenseLayer, ScrrambleLayer
from sim.commands import cli

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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped IDX files: each class a bright bar at its own row, plus noise."""
    return write_bar_dataset(tmp_path_factory.mktemp("idx"), 300, 120)


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
    for key in ("train_accuracy", "train_seconds", "parameters", "history"):
        assert key in res
    assert res["command"] == "train" and res["network"] == str(net_path)
    assert res["n_train"] == 300 and res["n_samples"] == 120 and res["split"] == "test"
    assert res["seconds"] >= res["train_seconds"] > 0 and res["data"] == str(data_dir)
    # one epoch on 300 samples of 10 separable classes: far above chance (0.1)
    assert res["accuracy"] > 0.6 and res["train_accuracy"] > 0.3
    assert res["loss"] == "margin" and res["readout"] == "capsule"
    assert len(res["history"]) == 1

    net = load_network(net_path)
    assert [type(layer) for layer in net.layers] == [ScrrambleLayer, ScrrambleLayer]
    assert net.layers[0].n_src_cores == 16 and net.layers[0].n_dst_cores == 3
    assert net.layers[1].n_dst_cores == 10 and net.layers[0].slot_size == 16
    assert res["parameters"] == sum(layer.weights.size for layer in net.layers)
    meta = net.metadata
    assert meta["dataset"] == "fashion-mnist" and meta["epochs"] == 1 and meta["seed"] == 0
    assert meta["threads"] == 1 and meta["test_accuracy"] == res["accuracy"]
    assert meta["training"]["batch_size"] == 32 and meta["hidden_cores"] == [3]

    rc, out, err = run_cli(capsys, "evaluate", net_path, "--data", data_dir, "--json")
    assert rc == 0, err
    ev = one_json(out)
    assert ev["command"] == "evaluate" and ev["network"] == str(net_path)
    assert ev["n_samples"] == 120
    assert ev["accuracy"] == res["accuracy"]  # same ideal forward, same data
    assert ev["saved_accuracy"] == res["accuracy"] and ev["dataset"] == "fashion-mnist"

    rc, out, _ = run_cli(capsys, "evaluate", net_path, "--data", data_dir, "--limit", "10",
                         "--batch-size", "3", "--json")
    ten = one_json(out)
    assert ten["n_samples"] == ten["limit"] == 10 and ten["batch_size"] == 3
    rc, out, _ = run_cli(
        capsys, "evaluate", net_path, "--data", data_dir, "--limit", "10", "--batch-size", "3"
    )
    assert rc == 0 and f"(recorded at training: {res['accuracy']:.4f})" in out
    assert f"accuracy {ten['accuracy']:.4f} ({ten['correct']}/10)" in out


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
    (tmp_path / "file").write_text("")
    rc, _, err = run_cli(capsys, "train", "--data", data_dir, "--out", tmp_path / "file" / "n.h5")
    assert rc == 2 and "--out" in err and "is not a directory" in err
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


# ------------------------------------------------------------------------ checkpoints


class _Killed(Exception):
    """Stands in for the training process being killed."""


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path, data_dir, capsys, monkeypatch):
    import sim.training.trainer as trainer_mod
    from sim.training import load_checkpoint

    args = ["--data", data_dir, "--json", *TINY, "--epochs", "3", "--limit-train", "96"]
    rc, out, err = run_cli(capsys, "train", "--out", tmp_path / "ref.h5", *args)
    assert rc == 0, err
    ref = one_json(out)
    assert ref["checkpoint"] is None and ref["resumed_from_epoch"] == 0

    ckpt = tmp_path / "ckpt.h5"
    real = trainer_mod.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        if state.epoch == 1:
            raise _Killed

    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "save_checkpoint", save_then_die)
        with pytest.raises(_Killed):
            cli.main(
                [str(a) for a in ("train", "--out", tmp_path / "x.h5", *args)]
                + [
                    "--checkpoint",
                    str(ckpt),
                ]
            )
    capsys.readouterr()
    assert load_checkpoint(ckpt).epoch == 1 and not (tmp_path / "x.h5").exists()

    # The same command without --resume refuses to clobber the checkpoint.
    rc, out, err = run_cli(capsys, "train", "--out", tmp_path / "x.h5", *args, "--checkpoint", ckpt)
    assert rc == 2 and "ckpt.h5 already exists" in err and "--resume" in err
    assert "--overwrite" in err

    # Resumed with another thread count: same network, same metrics.
    monkeypatch.setattr("sim.commands.common.available_cpus", lambda: 2)  # also on 1 CPU
    rc, out, err = run_cli(
        capsys,
        "train",
        "--out",
        tmp_path / "res.h5",
        *args,
        "--checkpoint",
        ckpt,
        "--resume",
        "--threads",
        "2",
    )
    assert rc == 0, err
    res = one_json(out)
    assert res["resumed_from_epoch"] == 1 and res["checkpoint"] == str(ckpt)
    assert res["accuracy"] == ref["accuracy"]
    assert res["train_accuracy"] == ref["train_accuracy"]
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in res["history"]] == [
        {k: v for k, v in h.items() if k not in drop} for h in ref["history"]
    ]
    a, b = load_network(tmp_path / "ref.h5"), load_network(tmp_path / "res.h5")
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert np.array_equal(la.weights, lb.weights)
    assert load_checkpoint(ckpt).finished

    # Resuming the finished checkpoint again just re-saves the trained network (text report).
    rc, out, err = run_cli(
        capsys,
        "train",
        "--out",
        tmp_path / "again.h5",
        *[a for a in args if a != "--json"],
        "--checkpoint",
        ckpt,
        "--resume",
    )
    assert rc == 0, err
    assert f"checkpoint {ckpt} (resumed after epoch 3)" in out
    again = load_network(tmp_path / "again.h5")
    assert all(np.array_equal(x.weights, y.weights) for x, y in zip(a.layers, again.layers))


def test_checkpoint_argument_errors(tmp_path, data_dir, capsys):
    base = ["train", "--data", data_dir, "--out", tmp_path / "n.h5", *TINY, "--limit-train", "64"]
    rc, out, err = run_cli(capsys, *base, "--resume")
    assert rc == 2 and out == "" and "--resume needs --checkpoint" in err
    rc, _, err = run_cli(capsys, *base, "--checkpoint", tmp_path / "n.h5")
    assert rc == 2 and "same file as --out" in err
    (tmp_path / "f").write_text("")
    rc, _, err = run_cli(capsys, *base, "--checkpoint", tmp_path / "f" / "c.h5")
    assert rc == 2 and "is not a directory" in err and "--checkpoint" in err
    rc, _, err = run_cli(capsys, *base, "--checkpoint", tmp_path)
    assert rc == 2 and "is a directory" in err

    ckpt = tmp_path / "new" / "c.h5"  # missing folders are created
    rc, out, err = run_cli(capsys, *base, "--checkpoint", ckpt)
    assert rc == 0 and f"checkpoint {ckpt} (started fresh)" in out
    # --overwrite (without --resume) starts over and replaces both files
    rc, out, err = run_cli(capsys, *base, "--checkpoint", ckpt, "--overwrite", "--json",
                           "--epochs", "2")
    assert rc == 0, err
    res = one_json(out)
    assert res["resumed_from_epoch"] == 0 and len(res["history"]) == 2
    from sim.training import load_checkpoint

    assert load_checkpoint(ckpt).epoch == 2
    base.insert(-2, "--overwrite")  # n.h5 exists now; the checks below are about the checkpoint
    # A changed option is refused, naming the file and the field.
    rc, _, err = run_cli(capsys, *base, "--checkpoint", ckpt, "--resume", "--lr", "0.01")
    assert rc == 2 and str(ckpt) in err and "config.lr" in err and "different run" in err
    rc, _, err = run_cli(capsys, *base[:-1], "32", "--checkpoint", ckpt, "--resume")
    assert rc == 2 and "data.train" in err
    rc, _, err = run_cli(capsys, *base, "--checkpoint", ckpt, "--resume", "--hidden-cores", "4")
    assert rc == 2 and "architecture.layer0" in err
    # A corrupt checkpoint is named too.
    ckpt.write_bytes(ckpt.read_bytes()[:2000])
    rc, _, err = run_cli(capsys, *base, "--checkpoint", ckpt, "--resume")
    assert rc == 2 and str(ckpt) in err and "truncated or corrupted" in err


def test_help_documents_checkpoint(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--checkpoint CKPT.h5" in out and "--resume" in out and "bit-identical" in out
