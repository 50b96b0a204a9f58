"""Network builders: architecture, routing seeds, initialisation scale, validation."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.activations import Activation
from mappings.builders import (
    BuildError,
    build_dense_network,
    build_scrramble_network,
    routed_fan_in,
)
from mappings.network import DenseLayer, InputSpec, ScrrambleLayer
from mappings.routing import generate_routing, is_balanced


def rng(seed=0):
    return np.random.default_rng(seed)


def test_default_scrramble_architecture():
    net = build_scrramble_network(rng=rng())
    assert [type(layer) for layer in net.layers] == [ScrrambleLayer, ScrrambleLayer]
    l1, l2 = net.layers
    assert (l1.n_src_cores, l1.n_dst_cores) == (4, 50)
    assert (l2.n_src_cores, l2.n_dst_cores) == (50, 10)
    assert l1.core_size == 256 and l1.slot_size == 64 and l1.slots_per_core == 4
    assert l1.activation == Activation("relu") and l2.activation.kind == "none"
    assert net.readout.kind == "capsule" and net.n_classes == 10
    assert all(layer.p == 0.2 for layer in net.layers)
    assert all(is_balanced(layer.routing) for layer in net.layers)
    assert all(layer.weights.dtype == np.float32 for layer in net.layers)
    meta = net.metadata
    assert meta["arch"] == "scrramble" and meta["hidden_cores"] == [50]
    assert meta["n_input_cores"] == 4 and meta["slot_size"] == 64 and meta["p"] == 0.2
    assert meta["routing_seeds"] == [l1.seed, l2.seed]
    scores = net.forward(np.random.default_rng(1).random((5, 28, 28)))
    assert scores.shape == (5, 10) and np.all(np.isfinite(scores))


def test_routing_reproducible_from_layer_seed():
    net = build_scrramble_network(
        hidden_cores=(6, 5),
        rng=rng(4),
        core_size=64,
        slot_size=16,
        p=0.3,
        input_spec=InputSpec((8, 8), (8, 8)),
    )
    for layer in net.layers:
        C = generate_routing(
            layer.n_src_cores,
            layer.n_dst_cores,
            core_size=64,
            slot_size=16,
            p=0.3,
            rng=np.random.default_rng(layer.seed),
        )
        np.testing.assert_array_equal(C, layer.routing)
    assert len({layer.seed for layer in net.layers}) == 3


def test_same_rng_same_network_and_different_seeds_differ():
    a = build_scrramble_network(rng=rng(7))
    b = build_scrramble_network(rng=rng(7))
    c = build_scrramble_network(rng=rng(8))
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.routing, lb.routing)
        np.testing.assert_array_equal(la.weights, lb.weights)
    assert not np.array_equal(a.layers[0].weights, c.layers[0].weights)


def test_logits_readout_adds_dense_layer():
    net = build_scrramble_network(hidden_cores=(8,), readout="logits", rng=rng())
    assert isinstance(net.layers[-1], DenseLayer)
    assert net.layers[-1].weights.shape == (10 * 256, 10)
    assert net.layers[-1].activation.kind == "none"
    assert all(layer.activation.kind == "relu" for layer in net.layers[:-1])
    assert net.readout.kind == "logits"
    assert net.forward(np.zeros((2, 28, 28))).shape == (2, 10)


def test_qrelu_activation_and_n_classes():
    act = Activation("qrelu", bits=2)
    net = build_scrramble_network(hidden_cores=(3, 4), n_classes=5, activation=act, rng=rng())
    assert [layer.activation for layer in net.layers[:-1]] == [act, act]
    assert net.layers[-1].n_dst_cores == 5 and net.n_classes == 5
    assert net.metadata["activation"] == "qrelu2"


def test_weight_scale_matches_routed_fan_in():
    net = build_scrramble_network(rng=rng(2))
    layer = net.layers[0]
    fan_in = routed_fan_in(layer.routing, layer.slot_size)
    assert fan_in.shape == (50,)
    # fan-in counts the routed inputs: slot_size * sum of squared multiplicities.
    manual = 64 * np.sum(layer.routing[:, :, 7, :].astype(int) ** 2)
    assert fan_in[7] == manual
    std = layer.weights.reshape(50, -1).std(axis=1)
    np.testing.assert_allclose(std, np.sqrt(2.0 / fan_in), rtol=0.03)


def test_activations_neither_explode_nor_vanish():
    net = build_scrramble_network(hidden_cores=(24, 24, 24, 24), p=0.3, rng=rng(5))
    x = net.input_spec.prepare(np.random.default_rng(0).random((64, 28, 28)))
    rms = []
    for layer in net.layers[:-1]:
        z = layer.preactivation(x)
        rms.append(float(np.sqrt(np.mean(z**2))))
        x = layer.activation.apply(z)
    ratios = np.array(rms[1:]) / np.array(rms[:-1])
    assert np.all((ratios > 0.4) & (ratios < 2.5)), rms
    norms = net.forward(np.random.default_rng(0).random((64, 28, 28)))
    assert 0.05 < float(np.median(norms)) < 2.0  # capsule norms start between the margins


def test_dense_network():
    net = build_dense_network(hidden=(100, 50), rng=rng())
    assert [layer.weights.shape for layer in net.layers] == [(1024, 100), (100, 50), (50, 10)]
    assert [layer.activation.kind for layer in net.layers] == ["relu", "relu", "none"]
    assert net.readout.kind == "logits"
    assert all(np.all(layer.bias == 0) for layer in net.layers)
    np.testing.assert_allclose(net.layers[0].weights.std(), np.sqrt(2 / 1024), rtol=0.03)
    assert net.metadata["arch"] == "dense" and net.metadata["dense_hidden"] == [100, 50]
    assert net.forward(np.zeros((3, 28, 28))).shape == (3, 10)
    assert len(build_dense_network(hidden=(), rng=rng()).layers) == 1  # logistic regression


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_cores": (0,)}, "hidden_cores must be positive"),
        ({"readout": "softmax"}, "readout must be one of"),
        ({"p": 0.0}, "p must lie in"),
        ({"slot_size": 48}, "must divide core_size"),
        ({"n_input_cores": 3}, "disagrees with input_spec"),
        ({"core_size": 384}, "multiple of core_size"),
        ({"n_classes": 1}, "n_classes"),
        ({"activation": Activation("none")}, "linear"),
        # malformed values must raise BuildError naming the field, not a bare ValueError
        ({"p": "0.2"}, "p must lie in"),
        ({"p": True}, "p must lie in"),
        ({"hidden_cores": ("a",)}, "hidden_cores must be positive"),
        ({"hidden_cores": 5}, "hidden_cores must be a sequence"),
        ({"n_input_cores": 4.5}, "n_input_cores must be an integer"),
        ({"n_classes": "ten"}, "n_classes"),
        ({"core_size": "256"}, "core_size"),
        ({"core_size": 64, "slot_size": 64, "input_spec": InputSpec((8, 8), (8, 8))},
         "at least 2 slots"),
    ],
)
def test_scrramble_builder_rejects(kwargs, match):
    with pytest.raises(BuildError, match=match):
        build_scrramble_network(rng=rng(), **kwargs)


def test_builders_need_a_generator():
    with pytest.raises(BuildError, match="Generator"):
        build_scrramble_network(rng=0)
    with pytest.raises(BuildError, match="Generator"):
        build_dense_network(rng=None)
    with pytest.raises(BuildError, match="hidden must be positive"):
        build_dense_network(hidden=(-2,), rng=rng())
    with pytest.raises(BuildError, match="n_classes"):
        build_dense_network(n_classes=2.5, rng=rng())


def test_integral_float_arguments_are_normalised():
    net = build_scrramble_network(n_input_cores=4.0, hidden_cores=(np.int64(3),), n_classes=10.0,
                                  p=np.float32(0.5), rng=rng())
    assert net.metadata["n_input_cores"] == 4 and isinstance(net.metadata["n_input_cores"], int)
    assert [layer.n_dst_cores for layer in net.layers] == [3, 10]
    assert type(net.layers[0].p) is float
