"""Importing reference-layout .npz archives (C0, W0, C1, W1, ...) into a Network."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mappings import reference_import
from mappings.activations import Activation
from mappings.h5format import NetworkFormatError, load_network, save_network
from mappings.network import DenseLayer, InputSpec, Network, Readout, ScrrambleLayer
from mappings.reference_import import import_reference_npz, save_reference_npz
from mappings.routing import generate_routing

CORE, SLOT = 64, 16
SLOTS = CORE // SLOT
SPEC = InputSpec((16, 16), (16, 16))  # 256 features = 4 cores


def reference_arrays(cores=(4, 6, 2), seed=0, float_routing=True) -> dict[str, np.ndarray]:
    """Random balanced C and random W per layer, as the JAX reference code stores them."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, (ns, nd) in enumerate(itertools.pairwise(cores)):
        C = generate_routing(ns, nd, core_size=CORE, slot_size=SLOT, p=0.5, rng=rng)
        arrays[f"C{i}"] = C.astype(np.float32) if float_routing else C
        arrays[f"W{i}"] = (rng.standard_normal((nd, SLOTS, SLOTS, SLOT, SLOT)) * 0.15).astype(
            np.float32
        )
    return arrays


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def reference_forward(arrays, samples, hidden: Activation, last: Activation) -> np.ndarray:
    """Per-sample einsum forward of the published formulation, then capsule norms."""
    n_layers = len(arrays) // 2
    scores = []
    for img in samples:
        x = img.reshape(-1).astype(np.float32)
        for i in range(n_layers):
            C, W = arrays[f"C{i}"], arrays[f"W{i}"]
            xr_in = x.reshape(C.shape[0], C.shape[1], W.shape[3])
            xr = np.einsum("ijkl,ijm->klm", C, xr_in)
            y = np.einsum("ijklm,ikm->ijl", W, xr)
            act = last if i == n_layers - 1 else hidden
            x = act.apply(y.reshape(-1).astype(np.float32))
        caps = x.reshape(arrays[f"C{n_layers - 1}"].shape[2], -1)
        scores.append(np.linalg.norm(caps, axis=1))
    return np.array(scores)


def images(n=7, seed=3):
    return np.random.default_rng(seed).random((n, 16, 16), dtype=np.float32)


# ------------------------------------------------------------------------------- good imports


@pytest.mark.parametrize(
    "hidden, last",
    [
        (Activation("relu"), Activation("none")),
        (Activation("qrelu", 4, 1.5), Activation("relu")),
    ],
    ids=["relu-none", "qrelu-relu"],
)
def test_import_matches_reference_einsum_forward(tmp_path, hidden, last):
    arrays = reference_arrays()
    path = write_npz(tmp_path / "ref.npz", arrays)
    net = import_reference_npz(path, activation=hidden, last_activation=last, input_spec=SPEC)
    assert [type(layer) for layer in net.layers] == [ScrrambleLayer, ScrrambleLayer]
    assert net.layers[0].activation == hidden and net.layers[1].activation == last
    assert net.readout == Readout("capsule", 2)  # one class per last-layer destination core
    assert net.metadata == {"imported_from": str(path), "source": "reference-npz"}
    for i, layer in enumerate(net.layers):
        assert layer.routing.dtype == np.int8
        assert np.array_equal(layer.routing, arrays[f"C{i}"])
        assert layer.weights.dtype == np.float32
        assert np.array_equal(layer.weights, arrays[f"W{i}"])
    x = images()
    expected = reference_forward(arrays, x, hidden, last)
    got = net.forward(x)
    assert got.shape == (len(x), 2)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_qrelu_import_is_not_trivially_equal_to_relu(tmp_path):
    """The activation option really changes the computed scores."""
    path = write_npz(tmp_path / "ref.npz", reference_arrays())
    a = import_reference_npz(path, input_spec=SPEC).forward(images())
    b = import_reference_npz(path, activation=Activation("qrelu", 2, 1.0), input_spec=SPEC).forward(
        images()
    )
    assert not np.allclose(a, b)


def test_integer_routing_one_based_and_lowercase_keys(tmp_path):
    arrays = reference_arrays(float_routing=False)
    base = import_reference_npz(write_npz(tmp_path / "a.npz", arrays), input_spec=SPEC)
    renamed = {f"{k[0].lower()}{int(k[1:]) + 1}": v for k, v in arrays.items()}
    other = import_reference_npz(write_npz(tmp_path / "b.npz", renamed), input_spec=SPEC)
    for a, b in zip(base.layers, other.layers, strict=True):
        assert np.array_equal(a.routing, b.routing) and np.array_equal(a.weights, b.weights)


def test_layers_ordered_by_integer_not_string(tmp_path):
    cores = (4,) + (2,) * 11  # 11 layers: "C10" sorts before "C2" as a string
    arrays = reference_arrays(cores=cores, seed=4)
    arrays["extra_key"] = np.arange(3)  # unrelated keys are ignored
    net = import_reference_npz(write_npz(tmp_path / "deep.npz", arrays), input_spec=SPEC)
    assert len(net.layers) == 11
    for i, layer in enumerate(net.layers):
        assert np.array_equal(layer.weights, arrays[f"W{i}"])


def test_explicit_readout_and_input_spec(tmp_path):
    arrays = reference_arrays(cores=(4, 6, 4))
    path = write_npz(tmp_path / "ref.npz", arrays)
    net = import_reference_npz(path, readout=Readout("capsule", 2), input_spec=SPEC)
    assert net.readout.n_classes == 2
    assert net.forward(images(3)).shape == (3, 2)
    arrays28 = reference_arrays(cores=(4, 3))
    p28 = write_npz(tmp_path / "r28.npz", arrays28)
    net28 = import_reference_npz(p28, input_spec=InputSpec((14, 14), (16, 16)))
    assert net28.forward(np.zeros((2, 14, 14))).shape == (2, 3)


def test_save_reference_round_trip_and_h5(tmp_path):
    arrays = reference_arrays()
    net = import_reference_npz(write_npz(tmp_path / "ref.npz", arrays), input_spec=SPEC)
    out = save_reference_npz(net, tmp_path / "copy.npz")
    assert out == tmp_path / "copy.npz"
    with np.load(out) as z:
        assert sorted(z.files) == ["C0", "C1", "W0", "W1"]
        assert z["C0"].dtype == np.float32  # like the reference code
    again = import_reference_npz(out, input_spec=SPEC)
    x = images()
    assert np.array_equal(net.forward(x), again.forward(x))
    back = load_network(save_network(again, tmp_path / "net.h5"))
    assert back.metadata == again.metadata
    assert np.array_equal(back.forward(x), again.forward(x))


def test_save_reference_refuses_dense_layers(tmp_path):
    rng = np.random.default_rng(0)
    dense = DenseLayer(rng.standard_normal((256, 10)).astype(np.float32), np.zeros(10, np.float32))
    net = Network((dense,), SPEC, Readout("logits", 10))
    with pytest.raises(NetworkFormatError, match="layer 0 is a DenseLayer"):
        save_reference_npz(net, tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_reference_is_atomic(tmp_path, monkeypatch):
    net = import_reference_npz(write_npz(tmp_path / "ref.npz", reference_arrays()), input_spec=SPEC)
    target = tmp_path / "ref.npz"
    before = target.read_bytes()

    def boom(fh, **arrays):
        fh.write(b"partial")
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(reference_import.np, "savez", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        save_reference_npz(net, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]
    with pytest.raises(RuntimeError):
        save_reference_npz(net, tmp_path / "new.npz")
    assert not (tmp_path / "new.npz").exists()


# ------------------------------------------------------------------------------- bad archives


def _drop(key):
    return lambda a: {k: v for k, v in a.items() if k != key}


def _set(key, fn):
    return lambda a: {**a, key: fn(a[key])}


def _non_integral(C):
    C = C.copy()
    C[0, 1, 2, 3] += 0.5
    return C


def _unbalance(C):
    C = C.copy()
    C[2, 1, 1, 0] += 1
    return C


def _rechain(a):
    rng = np.random.default_rng(9)
    C1 = generate_routing(5, 2, core_size=CORE, slot_size=SLOT, p=0.5, rng=rng)
    return {**a, "C1": C1.astype(np.float32)}


BAD_NPZ = {
    "missing-W": (_drop("W1"), ["W1 missing", "'C1'"]),
    "missing-C": (_drop("C0"), ["C0 missing", "'W0'"]),
    "non-integral-routing": (_set("C0", _non_integral), ["C0", "not integral", "(0, 1, 2, 3)"]),
    "nan-routing": (_set("C0", lambda c: c * np.nan), ["C0", "non-finite"]),
    "huge-routing": (_set("C0", lambda c: c * 1000), ["C0", "[-128, 127]"]),
    "unbalanced": (
        _set("C1", _unbalance),
        ["C1", "not balanced", "source core 2 slot 1", "destination core 1"],
    ),
    "shape-mismatch": (_set("W0", lambda w: w[:, :, :, :, :8]), ["W0", "dst_cores=6"]),
    "W-vs-C-cores": (_set("W1", lambda w: w[:1]), ["W1", "dst_cores=2", "(6, 4, 2, 4)"]),
    "routing-ndim": (_set("C0", lambda c: c[0]), ["C0", "expected 4-D"]),
    "chaining": (_rechain, ["C1", "320 inputs", "C0/W0 provides 384"]),
    "nan-weight": (
        _set("W0", lambda w: np.where(np.arange(SLOT) == 3, np.inf, w)),
        ["W0", "non-finite"],
    ),
    "int-weights": (_set("W0", lambda w: w.astype(np.int32)), ["W0", "floating dtype"]),
    "bool-routing": (_set("C0", lambda c: c != 0), ["C0", "not numeric"]),
    "gap-in-numbering": (
        lambda a: {"C0": a["C0"], "W0": a["W0"], "C2": a["C1"], "W2": a["W1"]},
        ["layer 1 missing"],
    ),
    "starts-at-2": (
        lambda a: {"C2": a["C0"], "W2": a["W0"]},
        ["numbering starts at 2"],
    ),
    "duplicate-case": (lambda a: {**a, "c0": a["C0"]}, ["'C0'", "'c0'"]),
    "no-layer-keys": (lambda a: {"weights": a["W0"]}, ["no layer arrays", "'weights'"]),
}


@pytest.mark.parametrize("case", list(BAD_NPZ), ids=list(BAD_NPZ))
def test_bad_npz_raises_naming_file_and_key(tmp_path, case):
    mutate, expected = BAD_NPZ[case]
    path = write_npz(tmp_path / "bad.npz", mutate(reference_arrays()))
    with pytest.raises(NetworkFormatError) as err:
        import_reference_npz(path, input_spec=SPEC)
    msg = str(err.value)
    assert str(path) in msg
    for text in expected:
        assert text in msg, f"{text!r} not in {msg!r}"


def test_first_layer_must_match_input_spec(tmp_path):
    path = write_npz(tmp_path / "ref.npz", reference_arrays())
    with pytest.raises(NetworkFormatError) as err:
        import_reference_npz(path)  # default InputSpec: 28x28 -> 32x32 = 1024 features
    assert "C0" in str(err.value) and "1024" in str(err.value) and "256 inputs" in str(err.value)


def test_readout_errors(tmp_path):
    path = write_npz(tmp_path / "ref.npz", reference_arrays())
    with pytest.raises(NetworkFormatError, match="3 equal capsules"):
        import_reference_npz(path, readout=Readout("capsule", 3), input_spec=SPEC)
    one = write_npz(tmp_path / "one.npz", reference_arrays(cores=(4, 1)))
    with pytest.raises(NetworkFormatError, match="pass readout= explicitly"):
        import_reference_npz(one, input_spec=SPEC)
    net = import_reference_npz(one, readout=Readout("capsule", 4), input_spec=SPEC)
    assert net.forward(images(2)).shape == (2, 4)


def test_not_an_npz(tmp_path):
    text = tmp_path / "ref.npz"
    text.write_text("hello")
    with pytest.raises(NetworkFormatError, match=r"ref\.npz: not an \.npz archive") as err:
        import_reference_npz(text, input_spec=SPEC)
    assert "pickle" not in str(err.value) and "b'hello'" in str(err.value)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(NetworkFormatError, match="a single .npy array"):
        import_reference_npz(single, input_spec=SPEC)
    h5 = tmp_path / "net.h5"
    save_network(import_reference_npz(write_npz(tmp_path / "r.npz", reference_arrays()),
                                      input_spec=SPEC), h5)
    with pytest.raises(NetworkFormatError, match="an HDF5 file"):
        import_reference_npz(h5, input_spec=SPEC)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(NetworkFormatError, match="an empty file"):
        import_reference_npz(empty, input_spec=SPEC)
    with pytest.raises(NetworkFormatError, match="no such file"):
        import_reference_npz(tmp_path / "absent.npz")
    truncated = tmp_path / "cut.npz"
    good = write_npz(tmp_path / "good.npz", reference_arrays())
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(NetworkFormatError) as err:
        import_reference_npz(truncated, input_spec=SPEC)
    assert str(truncated) in str(err.value)
