"""Training checkpoints: bit-identical resume, run mismatch, corruption, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import h5py
import numpy as np
import pytest

import sim.training.checkpoint as ckpt_mod
import sim.training.trainer as trainer_mod
from mappings.activations import Activation
from mappings.builders import build_dense_network, build_scrramble_network
from mappings.h5format import load_network, save_network
from mappings.network import DenseLayer, InputSpec
from sim.training import TrainConfig, TrainConfigError, train
from sim.training.checkpoint import (
    FORMAT_NAME,
    CheckpointError,
    load_checkpoint,
    param_shapes,
    save_checkpoint,
)

SPEC = InputSpec((4, 8), (4, 8))  # 32 features = 2 cores of 16


RELU = Activation("relu")


def scrramble(seed=0, readout="capsule", hidden=(4,), activation=RELU):
    return build_scrramble_network(
        hidden_cores=hidden,
        n_classes=4,
        core_size=16,
        slot_size=4,
        p=0.5,
        activation=activation,
        readout=readout,
        input_spec=SPEC,
        rng=np.random.default_rng(seed),
    )


def dense(seed=0):
    # 300 hidden > DENSE_BLOCK: several GEMM blocks, so thread counts could matter.
    return build_dense_network(
        hidden=(300,), n_classes=4, input_spec=SPEC, rng=np.random.default_rng(seed)
    )


def data(n=120, seed=0):
    protos = np.random.default_rng(1234).random((4, 4, 8))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = np.clip(protos[y] + 0.4 * rng.standard_normal((n, 4, 8)), 0, 1).astype(np.float32)
    return x, y


X, Y = data()
XT, YT = data(n=40, seed=1)


def weights_of(net):
    return [
        np.asarray(getattr(layer, n))
        for layer in net.layers
        for n in (("weights", "bias") if isinstance(layer, DenseLayer) else ("weights",))
    ]


def same_weights(a, b) -> bool:
    wa, wb = weights_of(a), weights_of(b)
    return len(wa) == len(wb) and all(np.array_equal(p, q) for p, q in zip(wa, wb))


def strip(metrics: dict) -> dict:
    """Metrics without wall times and the resume marker."""
    out = {k: v for k, v in metrics.items() if k not in ("seconds", "resumed_from_epoch")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return out


class Interrupted(Exception):
    """Stands in for a kill (or Ctrl-C) of the training process."""


def interrupt_after_checkpoint(monkeypatch, epoch: int) -> None:
    """The next run dies right after its checkpoint of ``epoch`` is on disk."""
    real = trainer_mod.save_checkpoint

    def save_then_die(path, ckpt):
        real(path, ckpt)
        if ckpt.epoch == epoch:
            raise Interrupted(f"killed after epoch {epoch}")

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)


def interrupt_at_step(monkeypatch, step: int) -> None:
    """The next run dies inside the optimiser step ``step`` (0-based, counted over epochs)."""
    real = trainer_mod.learning_rate

    def lr_or_die(base, schedule, s, *args):
        if s == step:
            raise Interrupted(f"killed at step {step}")
        return real(base, schedule, s, *args)

    monkeypatch.setattr(trainer_mod, "learning_rate", lr_or_die)


CASES = {
    "scrramble-capsule-cosine-noise": (
        scrramble,
        TrainConfig(epochs=3, batch_size=16, weight_noise=0.05, seed=2),
    ),
    "dense-adamw-step-clip-noise": (
        dense,
        TrainConfig(
            epochs=3,
            batch_size=32,
            loss="xent",
            optimizer="adamw",
            weight_decay=0.01,
            weight_clip=0.08,
            weight_noise=0.05,
            schedule="step",
            step_epochs=1,
            step_gamma=0.5,
            seed=7,
        ),
    ),
    "scrramble-logits-qrelu-constant-l2-clip-unscaled": (
        lambda: scrramble(readout="logits", activation=Activation("qrelu", 3, 1.0)),
        TrainConfig(
            epochs=3,
            batch_size=25,  # 120 / 25: a short last batch
            loss="xent",
            weight_decay=1e-3,
            weight_clip=0.3,
            schedule="constant",
            layer_lr_scaling=False,
            lr=1e-3,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_after_epoch_1_is_bit_identical(case, tmp_path, monkeypatch):
    """3 epochs straight vs. killed after epoch 1 and resumed to 3 (other thread counts)."""
    make, cfg = CASES[case]
    net = make()
    full_ckpt = tmp_path / "full.h5"
    ref, ref_m = train(
        net, X, Y, cfg, test_x=XT, test_y=YT, progress=False, threads=1, checkpoint=full_ckpt
    )
    plain, plain_m = train(net, X, Y, cfg, test_x=XT, test_y=YT, progress=False, threads=1)
    assert same_weights(ref, plain) and strip(ref_m) == strip(plain_m)  # checkpoints are passive

    ckpt = tmp_path / "ckpt.h5"
    with monkeypatch.context() as m:
        interrupt_after_checkpoint(m, epoch=1)
        with pytest.raises(Interrupted):
            train(net, X, Y, cfg, test_x=XT, test_y=YT, progress=False, threads=3, checkpoint=ckpt)
    assert load_checkpoint(ckpt).epoch == 1
    assert not same_weights(load_network(ckpt), ref)  # the interrupted run really stopped early

    res, res_m = train(
        net,
        X,
        Y,
        cfg,
        test_x=XT,
        test_y=YT,
        progress=False,
        threads=2,
        checkpoint=ckpt,
        resume=True,
    )
    assert res_m["resumed_from_epoch"] == 1 and ref_m["resumed_from_epoch"] == 0
    assert same_weights(res, ref)
    assert strip(res_m) == strip(ref_m)
    assert [h["epoch"] for h in res_m["history"]] == [1, 2, 3]
    training = {k: v for k, v in res.metadata["training"].items() if k in cfg.as_dict()}
    assert training == cfg.as_dict()

    # The final checkpoints agree in every array and in the generator state.
    a, b = load_checkpoint(full_ckpt), load_checkpoint(ckpt)
    assert a.epoch == b.epoch == 3 and a.adam_t == b.adam_t
    assert same_weights(a.network, b.network) and same_weights(a.network, ref)
    for x, y in zip(a.adam_m + a.adam_v, b.adam_m + b.adam_v):
        assert np.array_equal(x, y)
    assert a.rng_state == b.rng_state and a.lr_scale == b.lr_scale
    assert a.config == b.config == cfg.as_dict()

    # And so do the networks saved from the results.
    save_network(ref, tmp_path / "ref.h5")
    save_network(res, tmp_path / "res.h5")
    assert same_weights(load_network(tmp_path / "ref.h5"), load_network(tmp_path / "res.h5"))


def test_resume_after_crash_mid_epoch(tmp_path, monkeypatch):
    """A crash inside epoch 3 loses only that epoch; the continuation is still identical."""
    net, cfg = CASES["scrramble-capsule-cosine-noise"]
    net = net()
    ref, ref_m = train(net, X, Y, cfg, progress=False)
    ckpt = tmp_path / "ckpt.h5"
    steps = math.ceil(len(X) / cfg.batch_size)
    with monkeypatch.context() as m:
        interrupt_at_step(m, 2 * steps + 3)
        with pytest.raises(Interrupted):
            train(net, X, Y, cfg, progress=False, checkpoint=ckpt)
    state = load_checkpoint(ckpt)
    assert state.epoch == 2 and state.adam_t == 2 * steps and len(state.history) == 2
    res, res_m = train(net, X, Y, cfg, progress=False, checkpoint=ckpt, resume=True)
    assert res_m["resumed_from_epoch"] == 2
    assert same_weights(res, ref) and strip(res_m) == strip(ref_m)


def test_finished_checkpoint_just_returns_network(tmp_path, monkeypatch):
    net = scrramble()
    cfg = TrainConfig(epochs=2, batch_size=32)
    ckpt = tmp_path / "done.h5"
    ref, ref_m = train(net, X, Y, cfg, test_x=XT, test_y=YT, progress=False, checkpoint=ckpt)
    before = ckpt.stat().st_mtime_ns
    interrupt_at_step(monkeypatch, 0)  # any optimiser step would now fail
    monkeypatch.setattr(trainer_mod, "save_checkpoint", None)  # and so would any write
    res, res_m = train(
        net, X, Y, cfg, test_x=XT, test_y=YT, progress=False, checkpoint=ckpt, resume=True
    )
    assert same_weights(res, ref) and res is not ref
    assert res_m["resumed_from_epoch"] == 2
    assert res_m["history"] == ref_m["history"]  # stored exactly, wall times included
    assert res_m["final_test_accuracy"] == ref_m["final_test_accuracy"]
    assert res_m["seconds"] >= sum(h["seconds"] for h in ref_m["history"])
    assert res.metadata["training"]["epochs"] == 2
    assert ckpt.stat().st_mtime_ns == before


def test_resume_without_file_starts_fresh(tmp_path):
    net = scrramble()
    cfg = TrainConfig(epochs=2, batch_size=32)
    ckpt = tmp_path / "new.h5"
    res, m = train(net, X, Y, cfg, progress=False, checkpoint=ckpt, resume=True)
    ref, _ = train(net, X, Y, cfg, progress=False)
    assert same_weights(res, ref) and m["resumed_from_epoch"] == 0
    state = load_checkpoint(ckpt)
    assert state.finished and state.epoch == 2 and same_weights(state.network, ref)
    # The checkpoint is also a network file carrying the trained weights.
    assert load_network(ckpt).metadata["checkpoint_epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["new.h5"]  # no temporary files left


def test_existing_checkpoint_is_not_overwritten_without_resume(tmp_path):
    ckpt = tmp_path / "c.h5"
    cfg = TrainConfig(epochs=1, batch_size=32)
    train(scrramble(), X, Y, cfg, progress=False, checkpoint=ckpt)
    data_before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match=r"c\.h5.*already exists.*resume"):
        train(scrramble(), X, Y, cfg, progress=False, checkpoint=ckpt)
    assert ckpt.read_bytes() == data_before


def test_bad_arguments(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32)
    with pytest.raises(TrainConfigError, match="resume=True needs a checkpoint"):
        train(scrramble(), X, Y, cfg, progress=False, resume=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        train(scrramble(), X, Y, cfg, progress=False, checkpoint=tmp_path / "no" / "c.h5")
    with pytest.raises(CheckpointError, match="is a directory"):
        train(scrramble(), X, Y, cfg, progress=False, checkpoint=tmp_path)
    with pytest.raises(TrainConfigError, match="resume must be True or False"):
        train(scrramble(), X, Y, cfg, progress=False, checkpoint=tmp_path / "c.h5", resume=1)


# ------------------------------------------------------------------------ a different run


@pytest.fixture(scope="module")
def epoch1(tmp_path_factory):
    """A checkpoint after epoch 1 of a 3-epoch run (copied per test before use)."""
    path = tmp_path_factory.mktemp("ck") / "run.h5"
    cfg = TrainConfig(epochs=3, batch_size=32, seed=1)
    mp = pytest.MonkeyPatch()
    interrupt_after_checkpoint(mp, 1)
    try:
        with pytest.raises(Interrupted):
            train(scrramble(), X, Y, cfg, test_x=XT, test_y=YT, progress=False, checkpoint=path)
    finally:
        mp.undo()
    return path, cfg


def copy_of(src, tmp_path):
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize(
    "change, fields",
    [
        ({"config": {"lr": 1e-2}}, ["config.lr"]),
        ({"config": {"epochs": 5}}, ["config.epochs"]),
        ({"config": {"seed": 2, "optimizer": "adamw"}}, ["config.optimizer", "config.seed"]),
        ({"config": {"weight_clip": 0.5}}, ["config.weight_clip"]),
        ({"config": {"layer_lr_scaling": False}}, ["config.layer_lr_scaling"]),
        ({"net_seed": 5}, ["architecture.layer0", "architecture.layer1", "initial_weights"]),
        ({"hidden": (5,)}, ["architecture.layer0", "architecture.layer1", "initial_weights"]),
        ({"train": 100}, ["data.train"]),
        ({"test": None}, ["data.test"]),
        ({"test_noise": True}, ["data.test"]),
    ],
)
def test_mismatch_names_file_and_fields(epoch1, tmp_path, change, fields):
    path = copy_of(epoch1[0], tmp_path)
    cfg = dataclasses.replace(epoch1[1], **change.get("config", {}))
    net = scrramble(seed=change.get("net_seed", 0), hidden=change.get("hidden", (4,)))
    x, y = X[: change.get("train", len(X))], Y[: change.get("train", len(Y))]
    xt, yt = (None, None) if "test" in change else (XT, YT)
    if change.get("test_noise"):
        xt = XT.copy()
        xt[0, 0, 0] += 0.25
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        train(net, x, y, cfg, test_x=xt, test_y=yt, progress=False, checkpoint=path, resume=True)
    msg = str(info.value)
    assert str(path) in msg and "different run" in msg
    for field in fields:
        assert field in msg
    assert f"{len(fields)} differing field(s)" in msg
    assert path.read_bytes() == before  # refused before touching the file


def test_threads_and_progress_may_change_on_resume(epoch1, tmp_path):
    path = copy_of(epoch1[0], tmp_path)
    _, m = train(
        scrramble(),
        X,
        Y,
        epoch1[1],
        test_x=XT,
        test_y=YT,
        progress=True,
        threads=2,
        checkpoint=path,
        resume=True,
    )
    assert m["resumed_from_epoch"] == 1 and len(m["history"]) == 3


# ------------------------------------------------------------------------ corrupt files


def resume(path):
    train(
        scrramble(),
        X,
        Y,
        TrainConfig(epochs=3, batch_size=32, seed=1),
        test_x=XT,
        test_y=YT,
        progress=False,
        checkpoint=path,
        resume=True,
    )


def test_truncated_and_garbage_files(epoch1, tmp_path):
    src = epoch1[0].read_bytes()
    for name, content, match in (
        ("trunc.h5", src[: len(src) // 2], "truncated or corrupted"),
        ("head.h5", src[:100], "truncated or corrupted"),
        ("text.h5", b"not an hdf5 file at all", "not an HDF5 file"),
        ("empty.h5", b"", "not an HDF5 file"),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=match) as info:
            resume(path)
        assert str(path) in str(info.value)


def test_plain_network_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "net.h5"
    save_network(scrramble(), path)
    with pytest.raises(CheckpointError, match=r"net\.h5: /checkpoint: missing group.*not a"):
        resume(path)


@pytest.mark.parametrize("dataset", ["checkpoint/optimizer/v/001", "layers/000/weights"])
def test_flipped_bytes_detected(epoch1, tmp_path, dataset):
    """Fletcher-32 checksums catch silent corruption of moments and of the weights."""
    path = copy_of(epoch1[0], tmp_path)
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 8)
        fh.write(b"\xff\xff\xff\xff")
    with pytest.raises(CheckpointError, match=rf"/{dataset}.*corrupted") as info:
        resume(path)
    assert str(path) in str(info.value)


def replace_v0(f):
    """A moment array of the wrong dtype and shape."""
    del f["checkpoint/optimizer/v/000"]
    f["checkpoint/optimizer/v"].create_dataset("000", data=np.zeros(3))


def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda f: f["checkpoint"].attrs.__delitem__("epoch"), r"/checkpoint@epoch: missing"),
        (lambda f: f["checkpoint"].attrs.__setitem__("epoch", 9), r"@epoch: 9; expected at most"),
        (lambda f: f["checkpoint"].attrs.__setitem__("format", "x"), r"@format: 'x'"),
        (lambda f: f["checkpoint"].attrs.__setitem__("format_version", 2), "unsupported version"),
        (lambda f: f["checkpoint"].attrs.__setitem__("history_json", "[{"), "invalid JSON"),
        (lambda f: f["checkpoint"].attrs.__setitem__("history_json", "[]"), "1 per-epoch"),
        (
            lambda f: f["checkpoint"].attrs.__setitem__(
                "rng_state_json", json.dumps({"bit_generator": "MT19937"})
            ),
            "bit generator 'MT19937'",
        ),
        (
            lambda f: f["checkpoint"].attrs.__setitem__(
                "rng_state_json", json.dumps({"bit_generator": "PCG64", "state": 3})
            ),
            "invalid generator state",
        ),
        (lambda f: f["checkpoint/optimizer/m"].__delitem__("000"), r"/m/000: missing"),
        (lambda f: f["checkpoint/optimizer"].attrs.__setitem__("t", 999), "step count 999"),
        (lambda f: f["checkpoint/optimizer"].__delitem__("lr_scale"), "lr_scale is missing"),
        (replace_v0, r"/v/000: float64 shaped \(3,\); expected float32 shaped"),
    ],
)
def test_damaged_contents_named(epoch1, tmp_path, mutate, match):
    path = copy_of(epoch1[0], tmp_path)
    edit(path, mutate)
    with pytest.raises(CheckpointError, match=match) as info:
        resume(path)
    assert str(path) in str(info.value)


def test_stored_network_must_match_recorded_architecture(epoch1, tmp_path):
    path = copy_of(epoch1[0], tmp_path)

    def swap_routing(f):  # a different balanced routing: keep shape, permute destination cores
        c = f["layers/001/routing"][()]
        f["layers/001/routing"][...] = c[:, :, ::-1, :]

    edit(path, swap_routing)
    with pytest.raises(CheckpointError, match=r"architecture\.layer1.*corrupted or edited"):
        resume(path)


# ------------------------------------------------------------------------ writing


def test_round_trip_is_exact(epoch1, tmp_path):
    state = load_checkpoint(epoch1[0])
    assert state.epoch == 1 and not state.finished and state.config == epoch1[1].as_dict()
    assert [a.shape for a in state.adam_m] == param_shapes(state.network)
    assert state.adam_t == math.ceil(len(X) / 32)
    out = save_checkpoint(tmp_path / "again.h5", state)
    again = load_checkpoint(out)
    assert same_weights(again.network, state.network)
    for a, b in zip(state.adam_m + state.adam_v, again.adam_m + again.adam_v):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    for field in ("epoch", "seconds", "config", "fingerprint", "history", "rng_state", "lr_scale"):
        assert getattr(again, field) == getattr(state, field)
    assert again.generator().random() == state.generator().random()
    with h5py.File(out, "r") as f:
        assert f["checkpoint"].attrs["format"] == FORMAT_NAME
        assert f["checkpoint/optimizer/m/000"].fletcher32


def test_failed_write_keeps_previous_checkpoint(epoch1, tmp_path, monkeypatch):
    path = copy_of(epoch1[0], tmp_path)
    before = path.read_bytes()

    def half_written(f, ckpt, texts):
        f.create_group("checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt_mod, "_write_state", half_written)
    with pytest.raises(CheckpointError, match=r"run\.h5: could not write training checkpoint"):
        resume(path)
    assert path.read_bytes() == before and load_checkpoint(path).epoch == 1
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]  # temporary files removed


def test_save_refuses_inconsistent_state(epoch1, tmp_path):
    state = load_checkpoint(epoch1[0])
    bad = dataclasses.replace(state, adam_m=state.adam_m[:-1])
    with pytest.raises(CheckpointError, match="adam_m shapes"):
        save_checkpoint(tmp_path / "x.h5", bad)
    bad = dataclasses.replace(state, history=[])
    with pytest.raises(CheckpointError, match="history has 0 entries"):
        save_checkpoint(tmp_path / "x.h5", bad)
    bad = dataclasses.replace(state, config={"epochs": 3, "f": object()})
    with pytest.raises(CheckpointError, match="config is not JSON"):
        save_checkpoint(tmp_path / "x.h5", bad)
    assert not list(tmp_path.iterdir())
