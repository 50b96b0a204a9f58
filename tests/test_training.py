"""Losses, backprop (finite differences, STE), optimisers, trainer options, reproducibility."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mappings.activations import Activation
from mappings.builders import build_dense_network, build_scrramble_network
from mappings.network import DenseLayer, InputSpec, ScrrambleLayer
from sim.training import TrainConfig, TrainConfigError, train
from sim.training.backprop import (
    TrainableNetwork,
    core_to_weights,
    network_gradients,
    readout_backward,
    route,
    unroute,
    weights_to_core,
)
from sim.training.losses import LossError, cross_entropy, get_loss, margin_loss
from sim.training.optim import Adam, OptimizerError, learning_rate
from sim.training.parallel import Workers
from sim.training.trainer import _noisy_params, evaluate_accuracy, parallel_predict

SPEC = InputSpec((4, 8), (4, 8))  # 32 features = 2 cores of 16


RELU = Activation("relu")


def tiny_scrramble(seed=0, readout="capsule", activation=RELU, hidden=(3,), n_classes=3, p=0.5):
    return build_scrramble_network(
        hidden_cores=hidden,
        n_classes=n_classes,
        core_size=16,
        slot_size=4,
        p=p,
        activation=activation,
        readout=readout,
        input_spec=SPEC,
        rng=np.random.default_rng(seed),
    )


def as_float64(net):
    layers = []
    for layer in net.layers:
        if isinstance(layer, ScrrambleLayer):
            layers.append(dataclasses.replace(layer, weights=layer.weights.astype(np.float64)))
        else:
            layers.append(
                dataclasses.replace(
                    layer,
                    weights=layer.weights.astype(np.float64),
                    bias=layer.bias.astype(np.float64) + 0.05,
                )
            )
    return dataclasses.replace(net, layers=tuple(layers))


def with_param(net, li, name, value):
    layers = list(net.layers)
    layers[li] = dataclasses.replace(layers[li], **{name: value})
    return dataclasses.replace(net, layers=tuple(layers))


def fd_check(net, x, y, loss_fn, n_probe=25, eps=1e-6, seed=0):
    """Compare analytic gradients with central differences at random parameter entries."""
    _, grads = network_gradients(net, x, y, loss_fn, dtype=np.float64)
    names = []
    for li, layer in enumerate(net.layers):
        names.append((li, "weights"))
        if isinstance(layer, DenseLayer):
            names.append((li, "bias"))
    assert len(names) == len(grads)
    rng = np.random.default_rng(seed)
    checked = 0
    for (li, name), g in zip(names, grads):
        base = getattr(net.layers[li], name)
        assert g.shape == base.shape
        for flat in rng.choice(base.size, size=min(n_probe, base.size), replace=False):
            idx = np.unravel_index(flat, base.shape)
            vals = []
            for sign in (1, -1):
                p = base.copy()
                p[idx] += sign * eps
                vals.append(
                    network_gradients(
                        with_param(net, li, name, p), x, y, loss_fn, dtype=np.float64
                    )[0]
                )
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert abs(fd - g[idx]) <= 1e-7 + 1e-5 * abs(fd), (li, name, idx, fd, g[idx])
            checked += 1
    assert checked > 0


def data(n=12, seed=1, n_classes=3, shape=(4, 8)):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)), rng.integers(0, n_classes, n)


# ---------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss", [margin_loss, cross_entropy])
def test_loss_gradients_match_finite_differences(loss):
    rng = np.random.default_rng(0)
    s = rng.random((6, 4)) * 1.2
    y = rng.integers(0, 4, 6)
    _, g = loss(s, y)
    eps = 1e-6
    for i in range(6):
        for j in range(4):
            sp, sm = s.copy(), s.copy()
            sp[i, j] += eps
            sm[i, j] -= eps
            fd = (loss(sp, y)[0] - loss(sm, y)[0]) / (2 * eps)
            assert abs(fd - g[i, j]) < 1e-7


def test_margin_loss_values():
    s = np.array([[0.95, 0.05, 0.5]])
    loss, _ = margin_loss(s, np.array([0]))
    assert loss == pytest.approx(0.5 * 0.4**2)  # only the wrong class above m- counts
    loss, _ = margin_loss(s, np.array([2]))
    assert loss == pytest.approx(0.4**2 + 0.5 * 0.85**2)


def test_cross_entropy_values_and_stability():
    loss, _ = cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(math.log(2))
    loss, g = cross_entropy(np.array([[1000.0, 0.0]]), np.array([0]))
    assert np.isfinite(loss) and loss == pytest.approx(0) and np.all(np.isfinite(g))


def test_loss_validation():
    with pytest.raises(LossError, match="labels must lie"):
        margin_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(LossError, match="labels must be"):
        cross_entropy(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(LossError, match="loss must be one of"):
        get_loss("hinge")


# ------------------------------------------------------------------------------- backprop


def test_layouts_and_route_adjoint():
    net = tiny_scrramble()
    layer = net.layers[0]
    np.testing.assert_array_equal(weights_to_core(layer.weights), layer.core_matrices())
    np.testing.assert_array_equal(core_to_weights(layer.core_matrices(), 4), layer.weights)
    tn = TrainableNetwork(net, np.float64)
    R, f = tn.layers[0].R, 4
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((32, 5)), rng.standard_normal((3 * 16, 5))
    np.testing.assert_allclose(route(R, x, f).reshape(3, 16, 5), layer.route(x), atol=1e-5)
    # <route(x), d> == <x, unroute(d)>: the backward routing is the exact adjoint.
    assert np.sum(route(R, x, f) * d) == pytest.approx(np.sum(x * unroute(R, d, f)))


@pytest.mark.parametrize("readout", ["capsule", "logits"])
@pytest.mark.parametrize("loss", ["margin", "xent"])
def test_scrramble_gradients_fd(readout, loss):
    net = as_float64(tiny_scrramble(readout=readout, hidden=(3, 2)))
    x, y = data()
    fd_check(net, x, y, get_loss(loss))


@pytest.mark.parametrize("loss", ["margin", "xent"])
def test_dense_gradients_fd(loss):
    net = as_float64(
        build_dense_network(
            hidden=(7, 5), n_classes=3, input_spec=SPEC, rng=np.random.default_rng(3)
        )
    )
    x, y = data()
    fd_check(net, x, y, get_loss(loss))


def _manual_two_layer_grads(net, x, y, loss_fn):
    """Independent reference via the expanded dense matrices, STE through layer 0."""
    l0, l1 = net.layers
    x0 = net.input_spec.prepare(x).astype(np.float64)
    mix0 = np.kron(l0.routing.reshape(2 * 4, -1).T.astype(np.float64), np.eye(4))
    xr0 = (mix0 @ x0).reshape(l0.n_dst_cores, 16, -1)
    M0 = weights_to_core(l0.weights)
    z0 = np.einsum("kij,kjb->kib", M0, xr0).reshape(-1, x0.shape[1])
    h = l0.activation.apply(z0)
    mix1 = np.kron(l1.routing.reshape(l1.routing.shape[0] * 4, -1).T.astype(np.float64), np.eye(4))
    xr1 = (mix1 @ h).reshape(l1.n_dst_cores, 16, -1)
    M1 = weights_to_core(l1.weights)
    z1 = np.einsum("kij,kjb->kib", M1, xr1).reshape(-1, x0.shape[1])
    scores = net.readout.scores(z1)
    _, ds = loss_fn(scores, y)
    dz1 = readout_backward(net.readout, z1, scores, ds).reshape(l1.n_dst_cores, 16, -1)
    dM1 = np.einsum("kib,kjb->kij", dz1, xr1)
    dh = mix1.T @ np.einsum("kij,kib->kjb", M1, dz1).reshape(-1, x0.shape[1])
    upper = l0.activation.ceiling if l0.activation.kind == "qrelu" else np.inf
    ste = ((z0 > 0) & (z0 < upper)).astype(np.float64)
    dz0 = (dh * ste).reshape(l0.n_dst_cores, 16, -1)
    dM0 = np.einsum("kib,kjb->kij", dz0, xr0)
    return [core_to_weights(dM0, 4), core_to_weights(dM1, 4)], z0


@pytest.mark.parametrize(
    "act", [Activation("relu"), Activation("qrelu", 1, 0.3), Activation("qrelu", 3, 0.3)]
)
def test_ste_gradient_formula(act):
    net = as_float64(tiny_scrramble(activation=act, seed=5))
    x, y = data(n=16)
    ref, z0 = _manual_two_layer_grads(net, x, y, margin_loss)
    if act.kind == "qrelu":  # the test is meaningful: units inside and outside (0, ceiling)
        assert np.any(z0 > act.ceiling) and np.any((z0 > 0) & (z0 < act.ceiling))
    _, grads = network_gradients(net, x, y, margin_loss, dtype=np.float64)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)
    assert np.any(grads[0] != 0)


def test_qrelu_last_layer_gradient_fd():
    # Layers after a qrelu see its quantised output as a constant: FD is exact there.
    net = as_float64(tiny_scrramble(activation=Activation("qrelu", 2, 0.5), seed=2))
    x, y = data()
    _, grads = network_gradients(net, x, y, cross_entropy, dtype=np.float64)
    W = net.layers[1].weights
    for flat in np.random.default_rng(0).choice(W.size, 20, replace=False):
        idx = np.unravel_index(flat, W.shape)
        vals = []
        for s in (1, -1):
            p = W.copy()
            p[idx] += s * 1e-6
            vals.append(
                network_gradients(
                    with_param(net, 1, "weights", p), x, y, cross_entropy, dtype=np.float64
                )[0]
            )
        assert (vals[0] - vals[1]) / 2e-6 == pytest.approx(grads[1][idx], rel=1e-4, abs=1e-7)


def test_trainable_forward_matches_network_forward():
    net = tiny_scrramble(readout="logits", hidden=(4,))
    x, _ = data()
    tn = TrainableNetwork(net)
    np.testing.assert_allclose(tn.scores(x), net.forward(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ optimiser


def test_adam_matches_reference_and_adamw_decouples():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50).astype(np.float32)
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(5)]
    for decoupled in (False, True):
        p = p0.copy()
        opt = Adam([p], weight_decay=0.1, decoupled=decoupled)
        ref, m, v = p0.astype(np.float64), np.zeros(50), np.zeros(50)
        for t, g in enumerate(grads, start=1):
            opt.step([g], 0.01, [0.5])
            lr = 0.01 * 0.5
            gg = g + (0 if decoupled else 0.1 * ref)
            m = 0.9 * m + 0.1 * gg
            v = 0.999 * v + 0.001 * gg**2
            step = lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            ref = ref - step - (lr * 0.1 * ref if decoupled else 0)
        np.testing.assert_allclose(p, ref, rtol=2e-5, atol=2e-6)
    # Pure decoupled decay with zero gradient shrinks weights geometrically.
    p = np.ones(4, np.float32)
    opt = Adam([p], weight_decay=0.5, decoupled=True)
    for _ in range(3):
        opt.step([np.zeros(4, np.float32)], 0.1)
    np.testing.assert_allclose(p, (1 - 0.05) ** 3, rtol=1e-6)
    with pytest.raises(OptimizerError, match="gradient shape"):
        opt.step([np.zeros(3, np.float32)], 0.1)


def test_learning_rate_schedules():
    assert learning_rate(1.0, "constant", 50, 100, 10) == 1.0
    assert learning_rate(1.0, "cosine", 0, 100, 10) == 1.0
    assert learning_rate(1.0, "cosine", 50, 100, 10) == pytest.approx(0.5)
    assert learning_rate(1.0, "cosine", 100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(1.0, "step", 19, 100, 10, step_epochs=2, gamma=0.5) == 1.0
    assert learning_rate(1.0, "step", 20, 100, 10, step_epochs=2, gamma=0.5) == 0.5
    with pytest.raises(OptimizerError):
        learning_rate(1.0, "exp", 0, 1, 1)


# -------------------------------------------------------------------------------- trainer


def separable(n=600, seed=0, n_classes=4, shape=(4, 8)):
    """Classes = noisy copies of fixed random prototypes (well separable)."""
    protos = np.random.default_rng(1234).random((n_classes, *shape))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x = np.clip(protos[y] + 0.4 * rng.standard_normal((n, *shape)), 0, 1).astype(np.float32)
    return x, y


FAST = {"epochs": 3, "batch_size": 32, "lr": 3e-3}


@pytest.mark.parametrize(
    "kind, readout, loss",
    [
        ("scrramble", "capsule", "margin"),
        ("scrramble", "logits", "xent"),
        ("scrramble", "capsule", "xent"),
        ("dense", "logits", "xent"),
    ],
)
def test_training_learns_separable_problem(kind, readout, loss):
    x, y = separable()
    xt, yt = separable(n=200, seed=1)
    if kind == "dense":
        net = build_dense_network(
            hidden=(32,), n_classes=4, input_spec=SPEC, rng=np.random.default_rng(0)
        )
    else:
        net = tiny_scrramble(readout=readout, hidden=(8,), n_classes=4)
    before = net.accuracy(xt, yt)
    trained, metrics = train(
        net, x, y, TrainConfig(loss=loss, **FAST), test_x=xt, test_y=yt, progress=False
    )
    assert trained is not net
    assert metrics["final_test_accuracy"] > 0.85 > before + 0.2
    assert trained.accuracy(xt, yt) == pytest.approx(metrics["final_test_accuracy"])
    hist = metrics["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert all(h["seconds"] > 0 for h in hist)
    assert trained.metadata["training"]["loss"] == loss
    assert trained.metadata["training"]["final_test_accuracy"] == metrics["final_test_accuracy"]


def test_qrelu_training_learns():
    x, y = separable()
    net = tiny_scrramble(activation=Activation("qrelu", 2, 1.0), hidden=(8,), n_classes=4)
    _, m = train(net, x, y, TrainConfig(**FAST), test_x=x, test_y=y, progress=False)
    assert m["final_test_accuracy"] > 0.8


def weights_of(net):
    return [
        np.asarray(getattr(layer, n))
        for layer in net.layers
        for n in (("weights", "bias") if isinstance(layer, DenseLayer) else ("weights",))
    ]


def test_reproducible_and_input_untouched():
    x, y = separable(n=200)
    net = tiny_scrramble(readout="logits", hidden=(4,), n_classes=4)
    before = [w.copy() for w in weights_of(net)]
    cfg = TrainConfig(epochs=2, batch_size=16, seed=3)
    a, _ = train(net, x, y, cfg, progress=False)
    b, _ = train(net, x, y, cfg, progress=False)
    c, _ = train(net, x, y, dataclasses.replace(cfg, seed=4), progress=False)
    for wa, wb in zip(weights_of(a), weights_of(b)):
        assert np.array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(weights_of(a), weights_of(c)))
    for w0, w in zip(before, weights_of(net)):
        assert np.array_equal(w0, w)  # the original network is not modified
    for la, ln in zip(a.layers, net.layers):
        assert la.activation == ln.activation
        if isinstance(la, ScrrambleLayer):
            assert np.array_equal(la.routing, ln.routing) and la.seed == ln.seed


def test_weight_noise_changes_trajectory_but_is_seeded():
    x, y = separable(n=200)
    net = tiny_scrramble(hidden=(4,), n_classes=4)
    cfg = TrainConfig(epochs=1, batch_size=16, seed=1)
    clean, _ = train(net, x, y, cfg, progress=False)
    noisy_cfg = dataclasses.replace(cfg, weight_noise=0.1)
    n1, m1 = train(net, x, y, noisy_cfg, progress=False)
    n2, m2 = train(net, x, y, noisy_cfg, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(n1), weights_of(n2)))

    def strip(hist):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in hist]

    assert strip(m1["history"]) == strip(m2["history"])
    assert any(not np.array_equal(a, b) for a, b in zip(weights_of(n1), weights_of(clean)))


def test_noise_is_relative_per_core_and_leaves_clean_weights():
    net = tiny_scrramble(hidden=(6,), n_classes=4)
    dense = build_dense_network(
        hidden=(9,), n_classes=4, input_spec=SPEC, rng=np.random.default_rng(0)
    )
    for model in (net, dense):
        tn = TrainableNetwork(model)
        clean = [p.copy() for p in tn.params]
        samples = [_noisy_params(tn, 0.2, np.random.default_rng(s)) for s in range(40)]
        owners = [st for st in tn.layers for _ in st.params]
        for i, (st, flag) in enumerate(zip(owners, tn.weight_flags())):
            assert np.array_equal(tn.params[i], clean[i])
            d = np.stack([s[i] - clean[i] for s in samples])
            if not flag:
                assert np.all(d == 0)  # biases stay clean
                continue
            if st.kind == "scrramble":
                scale = 0.2 * np.abs(clean[i]).max(axis=(1, 2))
                rel = d / scale[None, :, None, None]
            else:
                rel = d / (0.2 * np.abs(clean[i]).max())
            assert rel.std() == pytest.approx(1.0, rel=0.05)
            assert abs(rel.mean()) < 0.05


def test_weight_clipping_bounds_hold():
    x, y = separable(n=200)
    net = build_dense_network(
        hidden=(16,), n_classes=4, input_spec=SPEC, rng=np.random.default_rng(0)
    )
    c = 0.05
    trained, _ = train(
        net, x, y, TrainConfig(epochs=2, batch_size=16, lr=1e-2, weight_clip=c), progress=False
    )
    for layer, orig in zip(trained.layers, net.layers):
        assert np.abs(layer.weights).max() <= c
        assert np.mean(np.isclose(np.abs(layer.weights), c, rtol=1e-6)) > 0.01  # clip active
    snet = tiny_scrramble(hidden=(4,), n_classes=4)
    c = 0.5 * float(np.abs(snet.layers[0].weights).max())
    strained, _ = train(
        snet, x, y, TrainConfig(epochs=1, batch_size=16, weight_clip=c), progress=False
    )
    assert np.abs(strained.layers[0].weights).max() <= c


def test_progress_goes_to_stderr(capsys):
    x, y = separable(n=64)
    train(
        tiny_scrramble(hidden=(2,), n_classes=4),
        x,
        y,
        TrainConfig(epochs=1, batch_size=32),
        progress=True,
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/1" in err and "loss" in err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"loss": "l2"}, "loss"),
        ({"weight_noise": -0.1}, "weight_noise"),
        ({"weight_clip": 0.0}, "weight_clip"),
        ({"schedule": "exp"}, "schedule"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(TrainConfigError, match=match):
        TrainConfig(**kwargs)


def test_data_validation():
    net = tiny_scrramble(hidden=(2,), n_classes=4)
    x, y = separable(n=10)
    cfg = TrainConfig(epochs=1)
    with pytest.raises(TrainConfigError, match=r"expected \(N, 4, 8\) or \(N, 32\)"):
        train(net, np.zeros((10, 5, 5)), y, cfg, progress=False)
    with pytest.raises(TrainConfigError, match="labels span"):
        train(net, x, y + 4, cfg, progress=False)
    with pytest.raises(TrainConfigError, match="labels shaped"):
        train(net, x, y[:5], cfg, progress=False)
    with pytest.raises(TrainConfigError, match="both test_x and test_y"):
        train(net, x, y, cfg, test_x=x, progress=False)
    with pytest.raises(TrainConfigError, match="empty"):
        train(net, x[:0], y[:0], cfg, progress=False)


# ------------------------------------------------------------------------------- threading


def test_workers_cover_range_once():
    with Workers(3) as w:
        for n, min_chunk in ((0, 1), (1, 1), (7, 1), (100, 1), (100, 40)):
            hits = np.zeros(n, dtype=int)
            w.run(
                lambda sl, hits=hits: np.add.at(hits, np.arange(sl.start, sl.stop), 1), n, min_chunk
            )
            assert np.all(hits == 1)
            hits[:] = 0
            w.run_blocks(
                lambda sl, hits=hits: np.add.at(hits, np.arange(sl.start, sl.stop), 1), n, 9
            )
            assert np.all(hits == 1)
    with pytest.raises(ValueError, match="threads"):
        Workers(0)


@pytest.mark.parametrize("kind", ["scrramble", "dense"])
def test_thread_count_does_not_change_results(kind):
    x, y = separable(n=200)
    if kind == "dense":
        net = build_dense_network(  # 300 > DENSE_BLOCK: several blocks per GEMM
            hidden=(300,), n_classes=4, input_spec=SPEC, rng=np.random.default_rng(0)
        )
    else:
        net = tiny_scrramble(hidden=(7,), n_classes=4, readout="logits")
    cfg = TrainConfig(
        epochs=1, batch_size=16, weight_noise=0.05, optimizer="adamw", weight_decay=0.01
    )
    runs = [train(net, x, y, cfg, progress=False, threads=t)[0] for t in (1, 2, 3)]
    for other in runs[1:]:
        for a, b in zip(weights_of(runs[0]), weights_of(other)):
            assert np.array_equal(a, b)
    acc = runs[0].accuracy(x, y)
    for t in (1, 2):
        assert evaluate_accuracy(runs[0], x, y, batch_size=48, threads=t) == acc
        np.testing.assert_array_equal(
            parallel_predict(runs[0], x, batch_size=48, threads=t), runs[0].predict(x, 48)
        )


@pytest.mark.dataset
def test_default_network_learns_fashion_mnist_subset(fashion_mnist_dir):
    from sim.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", fashion_mnist_dir, "train")
    xt, yt = load_dataset("fashion-mnist", fashion_mnist_dir, "test")
    net = build_scrramble_network(rng=np.random.default_rng(0))
    trained, m = train(
        net,
        x[:3000],
        y[:3000],
        TrainConfig(epochs=1),
        test_x=xt[:2000],
        test_y=yt[:2000],
        progress=False,
    )
    assert m["final_test_accuracy"] > 0.70  # chance 0.10; 0.774 measured
    assert evaluate_accuracy(trained, xt[:2000], yt[:2000]) == m["final_test_accuracy"]
