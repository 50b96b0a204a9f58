"""The ideal network model: ScRRAMBLe forward vs. einsum references, readouts, activations."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.activations import Activation, ActivationError
from mappings.network import (
    DenseLayer,
    InputSpec,
    Network,
    NetworkError,
    Readout,
    ScrrambleLayer,
)
from mappings.routing import RoutingError, generate_routing


def make_layer(ns, nd, core=32, slot=8, p=0.4, seed=0, activation=None, integer=False):
    rng = np.random.default_rng(seed)
    C = generate_routing(ns, nd, core_size=core, slot_size=slot, p=p, rng=rng)
    s = core // slot
    shape = (nd, s, s, slot, slot)
    if integer:  # small integers keep float32 arithmetic exact
        W = rng.integers(-2, 3, size=shape).astype(np.float32)
    else:
        W = rng.normal(0, 0.3, size=shape).astype(np.float32)
    return ScrrambleLayer(C, W, activation or Activation("relu"), p=p, seed=seed)


def ref_preactivation(layer: ScrrambleLayer, x: np.ndarray) -> np.ndarray:
    """Per-sample einsum forward in float64; x feature-major (n_in, B)."""
    C = layer.routing.astype(np.float64)
    W = layer.weights.astype(np.float64)
    ns, s, _nd, _ = C.shape
    f = layer.slot_size
    out = np.empty((layer.n_out, x.shape[1]))
    for b in range(x.shape[1]):
        xs = x[:, b].astype(np.float64).reshape(ns, s, f)
        xr = np.einsum("ijkl,ijm->klm", C, xs)
        out[:, b] = np.einsum("ijklm,ikm->ijl", W, xr).ravel()
    return out


def ref_activation(act: Activation, x: np.ndarray) -> np.ndarray:
    if act.kind == "none":
        return x
    if act.kind == "relu":
        return np.maximum(x, 0.0)
    step = act.ceiling / (2**act.bits - 1)
    return np.rint(np.clip(x, 0.0, act.ceiling) / step) * step


def ref_pad(samples: np.ndarray, image, padded) -> np.ndarray:
    b = samples.shape[0]
    out = np.zeros((b, *padded))
    r0 = (padded[0] - image[0]) // 2
    c0 = (padded[1] - image[1]) // 2
    out[:, r0 : r0 + image[0], c0 : c0 + image[1]] = samples.reshape(b, *image)
    return out.reshape(b, -1).T


def capsule_norms(y: np.ndarray, n_classes: int) -> np.ndarray:
    d = y.shape[0] // n_classes
    return np.stack(
        [np.sqrt((y[c * d : (c + 1) * d] ** 2).sum(axis=0)) for c in range(n_classes)], axis=1
    )


# ---------------------------------------------------------------------------- layer forward


@pytest.mark.parametrize(
    ("ns", "nd", "core", "slot", "seed"),
    [(1, 1, 32, 8, 0), (2, 3, 32, 8, 1), (3, 2, 64, 16, 2), (2, 2, 48, 4, 3)],
)
def test_preactivation_matches_einsum_and_expanded_matrix(ns, nd, core, slot, seed):
    layer = make_layer(ns, nd, core, slot, p=0.5, seed=seed)
    x = np.random.default_rng(seed + 100).normal(size=(layer.n_in, 5)).astype(np.float32)
    y = layer.preactivation(x)
    assert y.shape == (layer.n_out, 5)
    assert y.dtype == np.float32
    ref = ref_preactivation(layer, x)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    dense = layer.expanded_matrix()
    assert dense.shape == (layer.n_out, layer.n_in)
    np.testing.assert_allclose(dense.astype(np.float64) @ x, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.preactivation(x, layer.core_matrices()), y, rtol=0, atol=0)


def test_route_matches_einsum_and_core_matrices_layout():
    layer = make_layer(2, 3, 32, 8, p=0.5, seed=4)
    x = np.random.default_rng(0).normal(size=(layer.n_in, 3)).astype(np.float32)
    routed = layer.route(x)
    assert routed.shape == (3, 32, 3)
    C = layer.routing.astype(np.float64)
    for b in range(3):
        xr = np.einsum("ijkl,ijm->klm", C, x[:, b].reshape(2, 4, 8).astype(np.float64))
        np.testing.assert_allclose(routed[:, :, b], xr.reshape(3, 32), atol=1e-5)
    m = layer.core_matrices()
    W = layer.weights
    # row = out slot * f + out position, column = in slot * f + in position
    assert m[2, 1 * 8 + 5, 3 * 8 + 6] == W[2, 1, 3, 5, 6]
    assert m.flags.c_contiguous and m.shape == (3, 32, 32)


# ---------------------------------------------------------------------------- balance


@pytest.mark.parametrize("seed", range(3))
def test_routed_input_sums_to_zero_per_core_and_feature(seed):
    layer = make_layer(3, 4, 64, 16, p=0.6, seed=seed)
    x = np.random.default_rng(seed).normal(3.0, 1.0, size=(layer.n_in, 7)).astype(np.float32)
    routed = layer.route(x).reshape(4, 4, 16, 7).astype(np.float64)
    assert np.abs(routed).max() > 1.0  # something is routed
    np.testing.assert_allclose(routed.sum(axis=1), 0.0, atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_weight_offset_shared_across_input_slots_cancels(seed):
    layer = make_layer(2, 3, 32, 8, p=0.6, seed=seed)
    rng = np.random.default_rng(seed + 7)
    x = rng.normal(size=(layer.n_in, 4)).astype(np.float32)
    y = layer.preactivation(x)
    nd, s, _, f, _ = layer.weights.shape
    # one constant per core ...
    per_core = rng.uniform(0.5, 2.0, size=(nd, 1, 1, 1, 1)).astype(np.float32)
    # ... and, more generally, any offset that does not depend on the input slot
    general = rng.uniform(0.5, 2.0, size=(nd, s, 1, f, f)).astype(np.float32)
    for offset in (per_core, general):
        shifted = ScrrambleLayer(layer.routing, layer.weights + offset, layer.activation)
        np.testing.assert_allclose(shifted.preactivation(x), y, atol=2e-4)
    # negative control: an offset that varies with the input slot does not cancel
    varying = rng.uniform(0.5, 2.0, size=(nd, s, s, f, f)).astype(np.float32)
    shifted = ScrrambleLayer(layer.routing, layer.weights + varying, layer.activation)
    assert np.abs(shifted.preactivation(x) - y).max() > 1e-2


def test_layer_check_balanced_reports_the_layer():
    layer = make_layer(2, 2, 32, 8, p=0.5, seed=0)
    layer.check_balanced()
    C = layer.routing.copy()
    C[1, 0, 0, 0] += 1
    bad = ScrrambleLayer(C, layer.weights)
    with pytest.raises(RoutingError, match="layer 1 .*source core 1 slot 0"):
        bad.check_balanced("layer 1")


# ---------------------------------------------------------------------------- networks


def two_layer_network(integer: bool, second: Activation, n_classes: int = 4) -> Network:
    l1 = make_layer(2, 3, 32, 8, p=0.5, seed=11, integer=integer)
    l2 = make_layer(3, 2, 32, 8, p=0.5, seed=12, activation=second, integer=integer)
    return Network((l1, l2), InputSpec((6, 6), (8, 8)), Readout("capsule", n_classes))


def reference_forward(net: Network, samples: np.ndarray) -> np.ndarray:
    x = ref_pad(samples.astype(np.float64), net.input_spec.image_shape, net.input_spec.padded_shape)
    for layer in net.layers:
        if isinstance(layer, ScrrambleLayer):
            pre = ref_preactivation(layer, x)
        else:
            pre = layer.weights.astype(np.float64).T @ x + layer.bias[:, None]
        x = ref_activation(layer.activation, pre)
    if net.readout.kind == "logits":
        return x.T
    return capsule_norms(x, net.readout.n_classes)


def test_network_forward_two_scrramble_layers_capsules_float():
    net = two_layer_network(integer=False, second=Activation("relu"))
    samples = np.random.default_rng(0).uniform(0, 1, size=(9, 6, 6)).astype(np.float32)
    scores = net.forward(samples)
    assert scores.shape == (9, 4) and scores.dtype == np.float32
    ref = reference_forward(net, samples)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-5)
    feats = net.forward_features(net.input_spec.prepare(samples))
    assert [f.shape for f in feats] == [(96, 9), (64, 9)]


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_network_forward_with_qrelu_exact_on_integers(bits):
    # integer inputs/weights and a power-of-two step keep float32 exact, so the quantised
    # activation (a discontinuous function) must agree bit for bit with float64
    act = Activation("qrelu", bits=bits, ceiling=float(2**bits - 1) * 2.0)
    net = two_layer_network(integer=True, second=act)
    samples = np.random.default_rng(1).integers(0, 3, size=(8, 36)).astype(np.float32)
    pre = net.layers[1].preactivation(net.forward_features(net.input_spec.prepare(samples))[0])
    assert pre.min() < 0 < act.ceiling < pre.max()  # clipping at both ends is exercised
    np.testing.assert_allclose(net.forward(samples), reference_forward(net, samples), rtol=1e-6)


def test_logits_readout_with_dense_layer():
    l1 = make_layer(2, 3, 32, 8, p=0.5, seed=3)
    rng = np.random.default_rng(4)
    dense = DenseLayer(
        rng.normal(size=(96, 10)).astype(np.float32),
        rng.normal(size=10).astype(np.float32),
        Activation("none"),
    )
    net = Network((l1, dense), InputSpec((6, 6), (8, 8)), Readout("logits", 10))
    samples = rng.uniform(size=(7, 6, 6)).astype(np.float32)
    logits = net.forward(samples)
    assert logits.shape == (7, 10) and logits.flags.c_contiguous
    np.testing.assert_allclose(logits, reference_forward(net, samples), rtol=1e-4, atol=1e-4)
    assert np.array_equal(net.predict(samples, batch_size=3), np.argmax(logits, axis=1))
    labels = np.argmax(logits, axis=1)
    labels[:2] = (labels[:2] + 1) % 10
    assert net.accuracy(samples, labels, batch_size=2) == pytest.approx(5 / 7)
    assert net.predict(samples[:0]).shape == (0,)
    np.testing.assert_array_equal(dense.expanded_matrix(), dense.weights.T)


def test_dense_only_network_and_bias():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(16, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    net = Network(
        (DenseLayer(w, b, Activation("relu")),), InputSpec((4, 4), (4, 4)), Readout("logits", 6)
    )
    x = rng.normal(size=(5, 4, 4)).astype(np.float32)
    ref = np.maximum(x.reshape(5, 16).astype(np.float64) @ w + b, 0)
    np.testing.assert_allclose(net.forward(x), ref, rtol=1e-5, atol=1e-6)
    assert net.n_classes == 6


# ---------------------------------------------------------------------------- input spec


def test_input_spec_centres_28x28_in_32x32():
    spec = InputSpec()
    img = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28) + 1
    x = spec.prepare(img)
    assert x.shape == (1024, 2) and x.dtype == np.float32 and x.flags.c_contiguous
    assert spec.n_features == 1024
    padded = x.T.reshape(2, 32, 32)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], img)
    assert padded.sum() == img.sum()  # the 2-pixel border is zero
    np.testing.assert_array_equal(spec.prepare(img.reshape(2, 784)), x)  # flat input too


def test_input_spec_odd_padding_and_no_padding():
    x = InputSpec((3, 3), (6, 6)).prepare(np.ones((1, 3, 3)))
    np.testing.assert_array_equal(
        x[:, 0].reshape(6, 6), ref_pad(np.ones((1, 9)), (3, 3), (6, 6))[:, 0].reshape(6, 6)
    )
    assert x[:, 0].reshape(6, 6)[1:4, 1:4].all()
    flat = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(InputSpec((6,), (6,)).prepare(flat), flat.T)


# ---------------------------------------------------------------------------- activations


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("ceiling", [1.0, 6.0])
def test_qrelu_levels(bits, ceiling):
    act = Activation("qrelu", bits=bits, ceiling=ceiling)
    n_levels = 2**bits - 1
    assert act.levels == n_levels
    step = ceiling / n_levels
    x = np.linspace(-0.5 * ceiling, 1.5 * ceiling, 20001, dtype=np.float32)
    y = act.apply(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    k = y / step
    np.testing.assert_allclose(k, np.rint(k), atol=1e-4)  # on the grid of levels
    assert len(np.unique(np.rint(k))) == n_levels + 1  # every level 0..2**bits-1 is reached
    assert np.all(np.diff(y) >= 0)
    assert np.abs(y - np.clip(x, 0, ceiling)).max() <= step / 2 + 1e-5
    assert y[0] == 0 and y[-1] == pytest.approx(ceiling)
    assert act.apply(x.astype(np.float64)).dtype == np.float64
    assert act.describe() == f"qrelu{bits}"


def test_qrelu_one_bit_threshold_at_half_ceiling():
    act = Activation("qrelu", bits=1, ceiling=2.0)
    y = act.apply(np.array([-1.0, 0.5, 0.99, 1.01, 1.9, 5.0], dtype=np.float32))
    np.testing.assert_array_equal(y, [0, 0, 0, 2, 2, 2])


def test_gradient_masks():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(
        Activation("qrelu", bits=2, ceiling=1.0).gradient_mask(x), [0, 0, 1, 0, 0]
    )
    np.testing.assert_array_equal(Activation("relu").gradient_mask(x), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(Activation("none").gradient_mask(x), np.ones(5))
    np.testing.assert_array_equal(Activation("none").apply(x), x)
    np.testing.assert_array_equal(Activation("relu").apply(x), [0, 0, 0.5, 1, 3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "gelu"}, "activation kind"),
        ({"kind": "qrelu", "bits": 0}, "1 <= bits <= 16"),
        ({"kind": "qrelu", "bits": 17}, "1 <= bits <= 16"),
        ({"kind": "relu", "bits": 2}, "bits only applies to qrelu"),
        ({"kind": "qrelu", "bits": 2, "ceiling": 0.0}, "ceiling"),
        ({"kind": "relu", "ceiling": float("nan")}, "ceiling"),
        ({"kind": "qrelu", "bits": 2.5}, "bits must be an integer"),
        ({"kind": "qrelu", "bits": True}, "bits must be an integer"),
        ({"kind": "relu", "ceiling": "6"}, "ceiling"),
    ],
)
def test_activation_validation(kwargs, match):
    with pytest.raises(ActivationError, match=match):
        Activation(**kwargs)
    assert issubclass(ActivationError, ValueError)


def test_activation_normalises_numpy_scalars():
    act = Activation("qrelu", np.int64(3), np.float32(2.0))
    assert type(act.bits) is int and type(act.ceiling) is float
    assert act == Activation("qrelu", 3, 2.0)


# ---------------------------------------------------------------------------- validation


def test_scrramble_layer_shape_errors():
    layer = make_layer(2, 3, 32, 8, seed=0)
    C, W = layer.routing, layer.weights
    with pytest.raises(NetworkError, match="routing must be"):
        ScrrambleLayer(C[0], W)
    with pytest.raises(NetworkError, match="routing must be"):
        ScrrambleLayer(C[:, :2], W)  # source slots != destination slots
    with pytest.raises(NetworkError, match=r"weights must be \(dst_cores=3"):
        ScrrambleLayer(C, W[:2])  # wrong destination core count
    with pytest.raises(NetworkError, match="weights must be"):
        ScrrambleLayer(C, W[:, :, :3])  # wrong input slot count
    with pytest.raises(NetworkError, match="weights must be"):
        ScrrambleLayer(C, W[..., :4])  # non-square slot block
    with pytest.raises(NetworkError, match="weights must be"):
        ScrrambleLayer(C, W[0])


def test_dense_layer_shape_errors():
    with pytest.raises(NetworkError, match=r"dense weights must be \(n_in, n_out\)"):
        DenseLayer(np.zeros(5), np.zeros(5))
    with pytest.raises(NetworkError, match=r"dense bias must be \(4,\)"):
        DenseLayer(np.zeros((3, 4)), np.zeros(3))


def test_network_validation_errors():
    spec = InputSpec((6, 6), (8, 8))
    l1 = make_layer(2, 3, 32, 8, seed=0)
    l2 = make_layer(3, 2, 32, 8, seed=1)
    assert issubclass(NetworkError, ValueError)
    with pytest.raises(NetworkError, match="at least one layer"):
        Network((), spec)
    with pytest.raises(NetworkError, match="layer 1 expects 64 inputs but receives 96"):
        Network((l1, make_layer(2, 2, 32, 8)), spec)
    with pytest.raises(NetworkError, match="layer 0 expects 96 inputs but receives 64"):
        Network((l2,), spec)
    with pytest.raises(NetworkError, match="64 outputs to split into 6 equal capsules"):
        Network((l1, l2), spec, Readout("capsule", 6))
    with pytest.raises(NetworkError, match="logits readout needs 10 outputs, last layer has 64"):
        Network((l1, l2), spec, Readout("logits", 10))
    Network((l1, l2), spec, Readout("capsule", 8))  # 64 / 8 is fine
    with pytest.raises(NetworkError, match="readout must be"):
        Readout("softmax")
    with pytest.raises(NetworkError, match="n_classes must be >= 2"):
        Readout("logits", 1)
    with pytest.raises(NetworkError, match="smaller than image"):
        InputSpec((28, 28), (27, 32))
    with pytest.raises(NetworkError, match="same number of dimensions"):
        InputSpec((28, 28), (1024,))
