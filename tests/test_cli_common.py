"""Conventions shared by every ``scrramble-sim`` command: flags, JSON keys, outputs, Ctrl-C,
seeds, threads, and the ``import`` command."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from bar_dataset import write_bar_dataset

from mappings.h5format import load_network
from mappings.network import InputSpec
from mappings.reference_import import import_reference_npz
from sim.commands import SUBCOMMANDS, CommandError, common
from sim.commands.cli import build_parser, command_module, main, to_json

TINY = ["--core-size", "64", "--slot-size", "16", "--hidden-cores", "3", "--epochs", "1",
        "--batch-size", "32", "--no-progress", "--threads", "1", "--limit-train", "96"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped IDX files: each class a bright bar at its own row, plus noise."""
    return write_bar_dataset(tmp_path_factory.mktemp("idx_common"), 96, 40)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("SCRRAMBLE_DATA", raising=False)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def reference_npz(path: Path, cores=(16, 6, 10), core=64, slot=16, seed=0) -> Path:
    """A reference-layout archive (C0, W0, ...) with balanced routing, like the JAX code's."""
    from mappings.routing import generate_routing

    rng = np.random.default_rng(seed)
    arrays = {}
    slots = core // slot
    for i, (ns, nd) in enumerate(itertools.pairwise(cores)):
        arrays[f"C{i}"] = generate_routing(
            ns, nd, core_size=core, slot_size=slot, p=0.5, rng=rng
        ).astype(np.float32)
        arrays[f"W{i}"] = (rng.standard_normal((nd, slots, slots, slot, slot)) * 0.1).astype(
            np.float32
        )
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------------------ vocabulary


def _options(name: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s: a for a in sub.choices[name]._actions for s in a.option_strings}


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_command_shares_the_vocabulary(name):
    """Same flag, same parser: --json and --no-progress everywhere; --seed, --threads,
    --limit and --overwrite, where a command has them, from sim.commands.common."""
    opts = _options(name)
    assert {"--json", "--no-progress"} <= set(opts)
    if "--seed" in opts:
        assert opts["--seed"].type is common.seed_value and opts["--seed"].default == 0
    if "--threads" in opts:
        assert opts["--threads"].default == common.default_threads()
        assert opts["--threads"].type is common.threads_value
    if "--limit" in opts:
        assert opts["--limit"].type is common.positive_int
    if "--overwrite" in opts:
        assert opts["--overwrite"].default is False
    for banned in ("--limit-test", "--force", "--out-dir"):
        assert banned not in opts
    assert "--limit-train" not in opts or name == "train"


def test_commands_that_compute_take_seed_and_threads():
    for name in ("train", "map", "simulate"):
        assert {"--seed", "--threads"} <= set(_options(name))
    assert "--threads" in _options("evaluate")
    for name in ("train", "evaluate", "simulate"):
        assert "--limit" in _options(name)
    for name in ("train", "simulate", "import"):
        assert "--overwrite" in _options(name)


def test_json_is_strict():
    line = to_json({"a": float("nan"), "b": [np.float32(np.inf), 1.5], "c": np.int64(3),
                    "d": Path("x/y.h5")})
    assert json.loads(line) == {"a": None, "b": [None, 1.5], "c": 3, "d": "x/y.h5"}


# ------------------------------------------------------------------------------ seeds, threads


def test_seed_range():
    assert common.seed_value("0") == 0 and common.seed_value(str(2**63 - 1)) == 2**63 - 1
    for bad in ("-1", str(2**63), "99999999999999999999", "1e3", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="0 <= seed < 2\\*\\*63"):
            common.seed_value(bad)


def test_train_seed_error_names_the_flag(capsys, data_dir, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(data_dir), "--out", str(tmp_path / "n.h5"), "--seed", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "scrramble-sim train: error: argument --seed: expected an integer 0 <= seed" in err
    assert "TrainConfig" not in err and not (tmp_path / "n.h5").exists()


def test_largest_seed_trains_and_checkpoints(capsys, data_dir, tmp_path):
    top = 2**63 - 1  # stored as int64 in the network file and the checkpoint
    rc, out, err = run(capsys, "train", "--data", data_dir, "--out", tmp_path / "n.h5", *TINY,
                       "--seed", top, "--checkpoint", tmp_path / "c.h5", "--json")
    assert rc == 0, err
    assert json.loads(out)["seed"] == top and load_network(tmp_path / "n.h5").metadata["seed"] == top


def test_threads_checked_against_the_cpus(monkeypatch, capsys, data_dir, tmp_path):
    monkeypatch.setattr(common, "available_cpus", lambda: 2)
    assert common.default_threads() == 2
    for name, extra in (("train", ["--data", str(data_dir), "--out", str(tmp_path / "n.h5")]),
                        ("evaluate", [str(tmp_path / "n.h5")])):
        with pytest.raises(SystemExit):
            main([name, *extra, "--threads", "64"])
        err = capsys.readouterr().err
        assert f"scrramble-sim {name}: error: argument --threads: 64 threads requested but " \
               "only 2 CPUs available to this process; use 1..2" in err
    monkeypatch.setattr(common, "available_cpus", lambda: 64)
    assert common.default_threads() == common.DEFAULT_THREADS_CAP == 8


# ------------------------------------------------------------------------------ outputs


def test_check_output_path(tmp_path):
    (tmp_path / "old.h5").write_text("x")
    with pytest.raises(CommandError, match="--out .*old.h5 already exists; add --overwrite"):
        common.check_output_path(tmp_path / "old.h5", "--out", overwrite=False)
    assert common.check_output_path(tmp_path / "old.h5", "--out", overwrite=True)
    with pytest.raises(CommandError, match="is a directory"):
        common.check_output_path(tmp_path, "--out", overwrite=True)
    with pytest.raises(CommandError, match="old.h5 is not a directory"):
        common.check_output_path(tmp_path / "old.h5" / "a" / "n.h5", "--out", overwrite=False)
    deep = tmp_path / "a" / "b" / "n.h5"
    assert common.check_output_path(deep, "--out", overwrite=False) == deep
    assert not (tmp_path / "a").exists()  # checking creates nothing
    common.make_parent(deep, "--out")
    assert deep.parent.is_dir()


def test_readme_train_creates_runs_folder(capsys, data_dir, tmp_path, monkeypatch):
    """The README's `train --out runs/fashion.h5` on a fresh clone (no runs/ folder)."""
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(capsys, "train", "--data", data_dir, "--out", "runs/fashion.h5", *TINY)
    assert rc == 0, err
    assert Path("runs/fashion.h5").is_file() and "saved runs/fashion.h5" in out
    rc, out, err = run(capsys, "evaluate", "runs/fashion.h5", "--data", data_dir,
                       "--no-progress")
    assert rc == 0 and "runs/fashion.h5: fashion-mnist test accuracy" in out


def test_train_never_overwrites_silently(capsys, data_dir, tmp_path):
    out_path = tmp_path / "net.h5"
    base = ["train", "--data", data_dir, "--out", out_path, *TINY]
    assert run(capsys, *base)[0] == 0
    before = out_path.read_bytes()
    rc, out, err = run(capsys, *base, "--seed", "1")
    assert rc == 2 and out == "" and out_path.read_bytes() == before
    assert f"--out {out_path} already exists; add --overwrite" in err
    rc, out, err = run(capsys, *base, "--seed", "1", "--overwrite")
    assert rc == 0, err
    assert load_network(out_path).metadata["seed"] == 1


# ------------------------------------------------------------------------------ Ctrl-C


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_ctrl_c_is_one_line_and_status_130(name, capsys, monkeypatch, tmp_path):
    module = command_module(name)

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    argv = {"train": ["--out", tmp_path / "n.h5"], "import": [tmp_path / "r.npz", "--out",
                                                              tmp_path / "n.h5"],
            "sweep": [tmp_path / "s.toml", "--out", tmp_path / "s"], "demo": []}
    rc, out, err = run(capsys, name, *argv.get(name, [tmp_path / "n.h5"]))
    assert rc == 130 and out == ""
    assert err == f"scrramble-sim {name}: interrupted\n"


def test_ctrl_c_inside_a_finaliser_is_not_lost(capsys, monkeypatch, tmp_path):
    """Python cannot raise out of a finaliser: a Ctrl-C landing in one is printed as "Exception
    ignored" and lost. main delivers it again, so the command still ends with status 130."""
    import time

    class Finalised:
        def __del__(self):
            raise KeyboardInterrupt  # what SIGINT does when it arrives during __del__

    started = []

    def run_long(args):
        started.append(time.monotonic())
        Finalised()  # collected at once: the interrupt is "raised" in __del__
        deadline = started[0] + 30
        while time.monotonic() < deadline:  # a long computation, interruptible
            time.sleep(0.001)
        raise AssertionError("Ctrl-C was lost")

    monkeypatch.setattr(command_module("evaluate"), "run", run_long)
    rc, out, err = run(capsys, "evaluate", tmp_path / "n.h5")
    assert rc == 130 and out == "" and err == "scrramble-sim evaluate: interrupted\n"
    # delivered again at once (a lost Ctrl-C would run the loop to its end, 30 s); measured
    # from the start of the command's work, not counting the parser's imports, with room
    # for a loaded machine
    assert time.monotonic() - started[0] < 10


def test_ctrl_c_while_writing_leaves_no_file(capsys, monkeypatch, tmp_path):
    """An interrupted write leaves neither the output nor a temporary file behind."""
    from mappings import h5format

    real = h5format._write_network

    def write_then_interrupt(f, *args):
        real(f, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(h5format, "_write_network", write_then_interrupt)
    ref = reference_npz(tmp_path / "ref.npz")
    out = tmp_path / "new" / "net.h5"
    rc, _, err = run(capsys, "import", ref, "--out", out)
    assert rc == 130 and err == "scrramble-sim import: interrupted\n"
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_ctrl_c_during_training_keeps_the_checkpoint(capsys, monkeypatch, data_dir, tmp_path):
    import sim.training.trainer as trainer_mod

    real = trainer_mod.save_checkpoint

    def save_then_interrupt(path, state):
        real(path, state)
        raise KeyboardInterrupt

    ckpt, out = tmp_path / "ckpt.h5", tmp_path / "net.h5"
    base = ["train", "--data", data_dir, "--out", out, *TINY, "--epochs", "2",
            "--checkpoint", ckpt]
    with monkeypatch.context() as m:
        m.setattr(trainer_mod, "save_checkpoint", save_then_interrupt)
        rc, _, err = run(capsys, *base)
    assert rc == 130 and not out.exists()
    assert err == (f"scrramble-sim train: interrupted; checkpoint {ckpt} holds the last "
                   "finished epoch; rerun the same command with --resume to continue\n")
    rc, stdout, err = run(capsys, *base, "--resume")
    assert rc == 0 and "resumed after epoch 1" in stdout


# ------------------------------------------------------------------------------ import


def test_import_then_evaluate(capsys, data_dir, tmp_path):
    """import writes an HDF5 network that evaluate reads; its accuracy is the imported
    network's own, and the JSON describes the layers."""
    ref = reference_npz(tmp_path / "ref.npz")
    out = tmp_path / "nets" / "imported.h5"
    rc, stdout, err = run(capsys, "import", ref, "--out", out, "--json", "--dataset",
                          "fashion-mnist")
    assert rc == 0, err
    d = json.loads(stdout)
    assert d["command"] == "import" and d["network"] == str(out) and d["reference"] == str(ref)
    assert d["n_inputs"] == 1024 and d["image_shape"] == [28, 28]
    assert d["padded_shape"] == [32, 32]
    assert [(la["src_cores"], la["dst_cores"]) for la in d["layers"]] == [(16, 6), (6, 10)]
    assert d["readout"] == "capsule" and d["n_classes"] == 10
    assert d["parameters"] == 6 * 64 * 64 + 10 * 64 * 64
    net = load_network(out)
    assert net.metadata["dataset"] == "fashion-mnist"
    assert net.metadata["imported_from"] == str(ref)

    rc, stdout, err = run(capsys, "evaluate", out, "--data", data_dir, "--json", "--no-progress")
    assert rc == 0, err
    from sim.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", data_dir, "test")
    expected = import_reference_npz(ref).predict(x)
    assert json.loads(stdout)["accuracy"] == float(np.mean(expected == y))

    # the same output again is refused; --overwrite replaces it
    rc, _, err = run(capsys, "import", ref, "--out", out)
    assert rc == 2 and "already exists; add --overwrite" in err
    rc, stdout, _ = run(capsys, "import", ref, "--out", out, "--overwrite", "--readout",
                        "logits", "--activation", "qrelu", "--act-bits", "3")
    assert rc == 0 and "logits readout of 640 classes" in stdout
    net = load_network(out)
    assert net.readout.kind == "logits" and net.layers[0].activation.bits == 3


def test_import_input_spec(capsys, tmp_path):
    """A first layer of 8 cores of 64 (slots of 16) takes 512 inputs: the default 1024-input
    spec is refused with a hint, --image-shape / --padded-shape fix it."""
    ref = reference_npz(tmp_path / "ref512.npz", cores=(8, 4, 2))
    rc, _, err = run(capsys, "import", ref, "--out", tmp_path / "a.h5")
    assert rc == 2
    assert "layer takes 512 inputs" in err and "provides 1024" in err
    assert "--image-shape / --padded-shape" in err and not (tmp_path / "a.h5").exists()
    rc, out, err = run(capsys, "import", ref, "--out", tmp_path / "a.h5", "--image-shape",
                       "16,32", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["n_inputs"] == 512 and d["padded_shape"] == [16, 32]
    assert load_network(tmp_path / "a.h5").input_spec == InputSpec((16, 32), (16, 32))
    rc, out, err = run(capsys, "import", ref, "--out", tmp_path / "b.h5", "--image-shape",
                       "14,14", "--padded-shape", "16,32")
    assert rc == 0, err
    assert load_network(tmp_path / "b.h5").input_spec == InputSpec((14, 14), (16, 32))
    rc, _, err = run(capsys, "import", ref, "--out", tmp_path / "c.h5", "--image-shape",
                     "20,40", "--padded-shape", "16,32")
    assert rc == 2 and "--image-shape 20,40 / --padded-shape 16,32" in err
    rc, _, err = run(capsys, "import", ref, "--out", tmp_path / "c.h5", "--image-shape",
                     "16,32", "--classes", "3")
    assert rc == 2 and "3 equal capsules" in err


def test_import_errors(capsys, tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    rc, out, err = run(capsys, "import", text, "--out", tmp_path / "n.h5")
    assert rc == 2 and out == ""
    assert f"scrramble-sim import: error: {text}: not an .npz archive" in err
    assert "pickle" not in err
    rc, _, err = run(capsys, "import", tmp_path / "absent.npz", "--out", tmp_path / "n.h5")
    assert rc == 2 and "absent.npz: no such file" in err


def test_evaluate_npz_hints_at_import(capsys, tmp_path):
    ref = reference_npz(tmp_path / "ref.npz")
    rc, _, err = run(capsys, "evaluate", ref)
    assert rc == 2 and "not an HDF5 file" in err
    assert f"`scrramble-sim import {ref} --out NET.h5`" in err
    rc, _, err = run(capsys, "map", ref)
    assert rc == 2 and "scrramble-sim import" in err


# ------------------------------------------------------------------------------ docs/cli.md

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _doc_section(name: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    heading = f"## `scrramble-sim {name}"
    assert heading in text, f"docs/cli.md has no section {heading} ...`"
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_docs_list_every_flag(name):
    section = _doc_section(name)
    for flag in _options(name):
        if flag in ("-h", "--help", "--json", "--no-progress"):
            continue  # the conventions table documents the common flags
        assert f"`{flag}" in section, f"docs/cli.md: {name} does not document {flag}"


def _documented_keys(name: str) -> set[str]:
    import re

    rows = [line for line in _doc_section(name).splitlines() if line.startswith("| `")]
    keys = set()
    for row in rows:
        keys |= set(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    return keys


def test_docs_list_every_json_key(capsys, data_dir, tmp_path):
    """Every top-level key each command prints with --json is in its docs/cli.md table."""
    from mappings.builders import build_scrramble_network
    from mappings.h5format import save_network

    net = tmp_path / "net.h5"
    ref = reference_npz(tmp_path / "ref.npz")
    chip = tmp_path / "chip.toml"
    chip.write_text("[chip]\ncore_rows = 64\ncore_cols = 64\nslot_size = 16\n"
                    "[simulation]\ncalibration_samples = 16\n")
    save_network(build_scrramble_network(hidden_cores=(3,), core_size=64, slot_size=16,
                                         rng=np.random.default_rng(0)), tmp_path / "sim.h5")
    runs = {
        "train": ["--out", net, "--data", data_dir, *TINY],
        "evaluate": [net, "--data", data_dir],
        "map": [net, "--chip", chip],
        "simulate": [tmp_path / "sim.h5", "--chip", chip, "--data", data_dir, "--limit", 8],
        "import": [ref, "--out", tmp_path / "imported.h5"],
    }
    assert set(runs) <= set(SUBCOMMANDS)  # a new command: add a quick run here
    for name, argv in runs.items():
        rc, out, err = run(capsys, name, *argv, "--json", "--no-progress")
        assert rc == 0, err
        keys = set(json.loads(out))
        missing = keys - _documented_keys(name)
        assert not missing, f"docs/cli.md: {name} does not document JSON keys {missing}"


def test_real_sigint_ends_training_cleanly(data_dir, tmp_path):
    """A real Ctrl-C (SIGINT) to a training process: exit status 130, one line on stderr, no
    traceback, no partial network file, the last checkpoint kept and resumable."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    ckpt, out = tmp_path / "ckpt.h5", tmp_path / "net.h5"
    cmd = [sys.executable, "-m", "sim.commands.cli", "train", "--data", str(data_dir),
           "--out", str(out), *TINY, "--epochs", "1000", "--checkpoint", str(ckpt)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.startswith("scrramble-sim train: interrupted; checkpoint ")
    assert stderr.count("\n") == 1 and "--resume" in stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    from sim.training import load_checkpoint

    assert 1 <= load_checkpoint(ckpt).epoch < 1000
