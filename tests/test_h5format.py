"""Network HDF5 files: exact round trips, atomic writes, and one clear error per bad file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from mappings import h5format
from mappings.activations import Activation
from mappings.h5format import FORMAT_VERSION, NetworkFormatError, load_network, save_network
from mappings.network import DenseLayer, InputSpec, Network, Readout, ScrrambleLayer
from mappings.routing import generate_routing, is_balanced

CORE, SLOT = 64, 16
SPEC = InputSpec((16, 16), (16, 16))  # 256 features = 4 cores of 64

METADATA = {
    "core_size": CORE,
    "slot_size": SLOT,
    "p": 0.5,
    "seed": 7,
    "dataset": "fashion-mnist",
    "accuracy": 0.8731234567890123,
    "epochs": 3,
    "augment": False,
    "history": [0.5, 0.75, 1e-300, float("nan")],
    "nested": {"lr": 1e-3, "schedule": ["cosine", 10], "note": None},
    "unicode": "\u00b5S \u2013 ok",
    "big": 2**70,
}


def _scr(rng, n_src, n_dst, act, p=0.5, seed=-1):
    C = generate_routing(n_src, n_dst, core_size=CORE, slot_size=SLOT, p=p, rng=rng)
    s = CORE // SLOT
    W = rng.standard_normal((n_dst, s, s, SLOT, SLOT)).astype(np.float32) * 0.2
    return ScrrambleLayer(C, W, act, p, seed)


def scrramble_net(seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    layers = (
        _scr(rng, 4, 6, Activation("relu"), p=0.5, seed=11),
        _scr(rng, 6, 2, Activation("none"), p=0.25, seed=12),
    )
    return Network(layers, SPEC, Readout("capsule", 2), dict(METADATA))


def mixed_net(seed: int = 1) -> Network:
    rng = np.random.default_rng(seed)
    scr = _scr(rng, 4, 6, Activation("qrelu", 3, 2.0))  # p NaN, seed -1 (unknown)
    w = rng.standard_normal((6 * CORE, 10)).astype(np.float32) * 0.1
    b = rng.standard_normal(10).astype(np.float32)
    dense = DenseLayer(w, b, Activation("none"))
    return Network((scr, dense), SPEC, Readout("logits", 10), {"kind": "mixed", "epochs": 1})


def samples(n: int = 9, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 16, 16), dtype=np.float32)


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _assert_same_metadata(a, b) -> None:
    """Equal including types (int stays int, bool stays bool) and NaN."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same_metadata(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_metadata(x, y)
    elif isinstance(a, float):
        assert _same_float(a, b)
    else:
        assert a == b


@pytest.fixture(params=["scrramble", "mixed"])
def net(request) -> Network:
    return scrramble_net() if request.param == "scrramble" else mixed_net()


@pytest.fixture
def good_file(tmp_path) -> Path:
    return save_network(scrramble_net(), tmp_path / "net.h5")


@pytest.fixture
def mixed_file(tmp_path) -> Path:
    return save_network(mixed_net(), tmp_path / "mixed.h5")


# ------------------------------------------------------------------------------- round trip


def test_round_trip_arrays_predictions_metadata(net, tmp_path):
    path = save_network(net, tmp_path / "rt.h5")
    assert path == tmp_path / "rt.h5"
    back = load_network(path)
    assert len(back.layers) == len(net.layers)
    for a, b in zip(net.layers, back.layers, strict=True):
        assert type(a) is type(b)
        assert a.activation == b.activation
        assert np.array_equal(a.weights, b.weights) and b.weights.dtype == np.float32
        assert b.weights.flags.c_contiguous
        if isinstance(a, ScrrambleLayer):
            assert b.routing.dtype == np.int8
            assert np.array_equal(a.routing, b.routing)
            assert _same_float(a.p, b.p) and a.seed == b.seed
        else:
            assert np.array_equal(a.bias, b.bias) and b.bias.dtype == np.float32
    assert back.input_spec == net.input_spec
    assert back.readout == net.readout
    _assert_same_metadata(net.metadata, back.metadata)
    x = samples()
    assert np.array_equal(net.forward(x), back.forward(x))
    assert np.array_equal(net.predict(x), back.predict(x))


def test_file_layout_matches_documented_schema(good_file):
    with h5py.File(good_file, "r") as f:
        assert f.attrs["format"] == "scrramble-network"
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert json.loads(f.attrs["metadata_json"])["dataset"] == "fashion-mnist"
        assert f["metadata"].attrs["epochs"] == 3  # informational scalar copy
        assert "history" not in f["metadata"].attrs  # lists live only in the JSON
        assert list(f["input"].attrs["padded_shape"]) == [16, 16]
        assert f["readout"].attrs["kind"] == "capsule"
        assert f["layers"].attrs["n_layers"] == 2
        assert sorted(f["layers"]) == ["000", "001"]
        g = f["layers/000"]
        assert g.attrs["type"] == "scrramble"
        assert g["routing"].dtype == np.int8 and g["routing"].shape == (4, 4, 6, 4)
        assert g["weights"].dtype == np.float32 and g["weights"].shape == (6, 4, 4, 16, 16)
        assert g["weights"].fletcher32
        assert (g.attrs["n_in"], g.attrs["n_out"]) == (256, 384)


def test_metadata_numpy_values_and_tuples_are_normalised(tmp_path):
    base = scrramble_net()
    meta = {"n": np.int64(3), "x": np.float32(0.5), "arr": np.arange(3), "t": (1, "a")}
    net = Network(base.layers, base.input_spec, base.readout, meta)
    back = load_network(save_network(net, tmp_path / "m.h5"))
    _assert_same_metadata(back.metadata, {"n": 3, "x": 0.5, "arr": [0, 1, 2], "t": [1, "a"]})


def test_large_metadata_round_trips(tmp_path):
    base = scrramble_net()
    meta = {"curve": [float(i) / 7 for i in range(50_000)], "name": "x" * 5000}
    net = Network(base.layers, base.input_spec, base.readout, meta)
    back = load_network(save_network(net, tmp_path / "big.h5"))
    assert back.metadata == meta


def test_float_routing_and_float64_weights_are_stored_as_int8_float32(tmp_path):
    base = scrramble_net()
    l0 = base.layers[0]
    l0f = ScrrambleLayer(
        l0.routing.astype(np.float64), l0.weights.astype(np.float64), l0.activation
    )
    net = Network((l0f, base.layers[1]), SPEC, base.readout)
    back = load_network(save_network(net, tmp_path / "f.h5"))
    assert back.layers[0].routing.dtype == np.int8
    assert np.array_equal(back.layers[0].routing, l0.routing)
    assert np.array_equal(back.layers[0].weights, l0.weights)


# ------------------------------------------------------------------------------- save refuses


def _with_layer0(net: Network, **changes) -> Network:
    l0 = net.layers[0]
    kw = {"routing": l0.routing, "weights": l0.weights, "activation": l0.activation}
    kw.update(changes)
    return Network((ScrrambleLayer(**kw), *net.layers[1:]), net.input_spec, net.readout)


@pytest.mark.parametrize(
    "make, expected",
    [
        (
            lambda n: _with_layer0(n, weights=np.where(True, np.nan, n.layers[0].weights)),
            ["layer 0 weights", "non-finite"],
        ),
        (lambda n: _with_layer0(n, routing=n.layers[0].routing * 0 + 1), ["not balanced"]),
        (lambda n: _with_layer0(n, routing=n.layers[0].routing + 0.5), ["not integral"]),
        (
            lambda n: Network(n.layers, n.input_spec, n.readout, {"bad": object()}),
            ["metadata['bad']", "object"],
        ),
        (lambda n: Network(n.layers, n.input_spec, n.readout, {1: "x"}), ["expected str keys"]),
        (
            lambda n: Network(
                (ScrrambleLayer(n.layers[0].routing, n.layers[0].weights, p=1.5), n.layers[1]),
                n.input_spec,
                n.readout,
            ),
            ["layer 0 p=1.5", "[0, 1]"],
        ),
    ],
    ids=["nan", "unbalanced", "non-integral", "unstorable-metadata", "non-str-key", "bad-p"],
)
def test_save_refuses_networks_it_could_not_load(tmp_path, make, expected):
    bad = make(scrramble_net())
    target = tmp_path / "bad.h5"
    with pytest.raises(NetworkFormatError) as err:
        save_network(bad, target)
    assert str(target) in str(err.value)
    for text in expected:
        assert text in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(NetworkFormatError, match="does not exist"):
        save_network(scrramble_net(), tmp_path / "nope" / "net.h5")


# ------------------------------------------------------------------------------- atomic write


def _failing_after_first_dataset(monkeypatch):
    real = h5format._write_dataset
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(h5format, "_write_dataset", boom)
    return calls


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    calls = _failing_after_first_dataset(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated"):
        save_network(scrramble_net(), tmp_path / "net.h5")
    assert len(calls) == 2  # it really failed mid-write
    assert list(tmp_path.iterdir()) == []


def test_failed_save_does_not_clobber_existing_file(good_file, monkeypatch):
    before = good_file.read_bytes()
    _failing_after_first_dataset(monkeypatch)
    with pytest.raises(RuntimeError):
        save_network(mixed_net(), good_file)
    assert good_file.read_bytes() == before
    assert [p.name for p in good_file.parent.iterdir()] == [good_file.name]
    assert isinstance(load_network(good_file).layers[1], ScrrambleLayer)


def test_failed_replace_cleans_up_temp(good_file, monkeypatch):
    before = good_file.read_bytes()

    def no_replace(src, dst):
        raise PermissionError("read-only (simulated)")

    monkeypatch.setattr(h5format.os, "replace", no_replace)
    with pytest.raises(NetworkFormatError, match="could not write"):
        save_network(mixed_net(), good_file)
    assert good_file.read_bytes() == before
    assert [p.name for p in good_file.parent.iterdir()] == [good_file.name]


def test_overwrite_replaces_content(good_file):
    save_network(mixed_net(), good_file)
    assert isinstance(load_network(good_file).layers[1], DenseLayer)


# ------------------------------------------------------------------------------- bad files


def _replace(group: h5py.Group, name: str, data) -> None:
    del group[name]
    group.create_dataset(name, data=data)


def _unbalance(f):
    C = f["layers/000/routing"][()]
    C[1, 2, 3, 0] += 1
    _replace(f["layers/000"], "routing", C)


def _nan_weight(f):
    W = f["layers/001/weights"][()]
    W[1, 0, 2, 3, 4] = np.nan
    W[0, 0, 0, 0, 0] = np.inf
    _replace(f["layers/001"], "weights", W)


def _rechain(f):
    """Layer 1 made consistent in itself but for 5 source cores: 320 inputs vs 384 outputs."""
    rng = np.random.default_rng(3)
    C = generate_routing(5, 2, core_size=CORE, slot_size=SLOT, p=0.5, rng=rng)
    _replace(f["layers/001"], "routing", C)  # the stale n_in attr must not mask this error


def _set_attr(path, name, value):
    def mutate(f):
        f[path].attrs[name] = value

    return mutate


def _del(path, attr=None):
    def mutate(f):
        if attr is None:
            del f[path]
        else:
            del f[path].attrs[attr]

    return mutate


def _dataset(path, fn):
    def mutate(f):
        parent, name = path.rsplit("/", 1)
        _replace(f[parent], name, fn(f[path][()]))

    return mutate


BAD_FILES = {
    "missing-dataset": (_del("layers/001/weights"), ["/layers/001/weights", "missing dataset"]),
    "missing-routing": (_del("layers/000/routing"), ["/layers/000/routing", "missing dataset"]),
    "wrong-shape": (
        _dataset("layers/000/weights", lambda w: w[:, :, :, :, :8]),
        ["/layers/000/weights", "(6, 4, 4, 16, 8)", "dst_cores=6"],
    ),
    "weights-vs-routing": (
        _dataset("layers/000/weights", lambda w: w[:5]),
        ["/layers/000/weights", "dst_cores=6", "routing shape (4, 4, 6, 4)"],
    ),
    "wrong-ndim": (
        _dataset("layers/000/routing", lambda c: c[0]),
        ["/layers/000/routing", "3 dimensions", "expected 4"],
    ),
    "routing-float-dtype": (
        _dataset("layers/000/routing", lambda c: c.astype(np.float32)),
        ["/layers/000/routing", "float32", "integer dtype"],
    ),
    "weights-int-dtype": (
        _dataset("layers/001/weights", lambda w: w.astype(np.int16)),
        ["/layers/001/weights", "int16", "floating dtype"],
    ),
    "routing-out-of-int8": (
        _dataset("layers/000/routing", lambda c: np.where(c == 1, 300, c.astype(np.int16))),
        ["/layers/000/routing", "int8"],
    ),
    "nan-weight": (_nan_weight, ["/layers/001/weights", "2 non-finite", "(0, 0, 0, 0, 0)"]),
    "unbalanced-routing": (
        _unbalance,
        ["/layers/000/routing", "not balanced", "source core 1 slot 2", "destination core 3"],
    ),
    "chaining": (_rechain, ["/layers/001", "320 inputs", "/layers/000 provides 384"]),
    "n_in-attr": (_set_attr("layers/001", "n_in", np.int64(100)), ["/layers/001@n_in", "384"]),
    "unknown-version": (_set_attr("/", "format_version", np.int64(99)), ["/@format_version", "99"]),
    "version-not-int": (_set_attr("/", "format_version", "one"), ["/@format_version", "integer"]),
    "missing-version": (_del("/", "format_version"), ["/@format_version", "missing attribute"]),
    "wrong-format": (_set_attr("/", "format", "keras"), ["/@format", "'keras'"]),
    "unknown-activation": (
        _set_attr("layers/000", "activation_kind", "gelu"),
        ["/layers/000@activation_kind", "'gelu'"],
    ),
    "bits-for-relu": (
        _set_attr("layers/000", "activation_bits", np.int64(4)),
        ["/layers/000@activation_bits", "relu expects 0"],
    ),
    "bad-ceiling": (
        _set_attr("layers/000", "activation_ceiling", -1.0),
        ["/layers/000@activation_ceiling", "positive"],
    ),
    "missing-activation": (
        _del("layers/001", "activation_kind"),
        ["/layers/001@activation_kind", "missing attribute"],
    ),
    "bad-p": (_set_attr("layers/000", "p", 1.5), ["/layers/000@p", "[0, 1]"]),
    "bad-readout-kind": (_set_attr("readout", "kind", "softmax"), ["/readout@kind", "softmax"]),
    "bad-n-classes": (
        _set_attr("readout", "n_classes", np.int64(1)),
        ["/readout@n_classes", ">= 2"],
    ),
    "bad-readout-width": (
        _set_attr("readout", "n_classes", np.int64(3)),
        ["/readout", "3 equal capsules", "/layers/001"],
    ),
    "missing-readout": (_del("readout"), ["/readout", "missing group"]),
    "input-vs-layer0": (
        _set_attr("input", "padded_shape", np.array([16, 20])),
        ["/layers/000", "256 inputs", "/input", "provides 320"],
    ),
    "bad-input-shape": (
        _set_attr("input", "image_shape", np.array([[28, 28]])),
        ["/input@image_shape", "1-D integer array"],
    ),
    "missing-layer": (_del("layers/001"), ["/layers/001", "missing layer group"]),
    "extra-layer": (_set_attr("layers", "n_layers", np.int64(1)), ["/layers/001", "unexpected"]),
    "unknown-layer-type": (_set_attr("layers/001", "type", "conv"), ["/layers/001@type", "conv"]),
    "bad-metadata-json": (_set_attr("/", "metadata_json", "{oops"), ["/@metadata_json", "JSON"]),
    "metadata-not-object": (_set_attr("/", "metadata_json", "[1, 2]"), ["/@metadata_json", "list"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_raises_naming_path(good_file, case):
    mutate, expected = BAD_FILES[case]
    with h5py.File(good_file, "r+") as f:
        mutate(f)
    with pytest.raises(NetworkFormatError) as err:
        load_network(good_file)
    msg = str(err.value)
    assert str(good_file) in msg
    for text in expected:
        assert text in msg, f"{text!r} not in {msg!r}"


DENSE_BAD = {
    "bias-shape": (_dataset("layers/001/bias", lambda b: b[:7]), ["/layers/001/bias", "(10,)"]),
    "bias-nan": (
        _dataset("layers/001/bias", lambda b: np.where(np.arange(10) == 4, np.nan, b)),
        ["/layers/001/bias", "1 non-finite", "(4,)"],
    ),
    "missing-bias": (_del("layers/001/bias"), ["/layers/001/bias", "missing dataset"]),
    "qrelu-bits": (
        _set_attr("layers/000", "activation_bits", np.int64(20)),
        ["/layers/000@activation_bits", "1..16"],
    ),
    "dense-chaining": (
        _dataset("layers/001/weights", lambda w: w[:300]),
        ["/layers/001", "300 inputs", "provides 384"],
    ),
    "logits-width": (
        _set_attr("readout", "n_classes", np.int64(9)),
        ["/readout", "9 outputs", "has 10"],
    ),
}


@pytest.mark.parametrize("case", list(DENSE_BAD), ids=list(DENSE_BAD))
def test_bad_mixed_file_raises_naming_path(mixed_file, case):
    mutate, expected = DENSE_BAD[case]
    with h5py.File(mixed_file, "r+") as f:
        mutate(f)
    with pytest.raises(NetworkFormatError) as err:
        load_network(mixed_file)
    msg = str(err.value)
    assert str(mixed_file) in msg
    for text in expected:
        assert text in msg, f"{text!r} not in {msg!r}"


def test_unmodified_fixture_loads(good_file):
    """Guards the bad-file tests: the file they mutate is itself valid."""
    net = load_network(good_file)
    assert all(is_balanced(layer.routing) for layer in net.layers)


def test_size_attrs_are_optional(good_file):
    with h5py.File(good_file, "r+") as f:
        for name in ("000", "001"):
            del f["layers"][name].attrs["n_in"]
            del f["layers"][name].attrs["n_out"]
    assert load_network(good_file).layers[1].n_out == 2 * CORE


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_file(good_file, tmp_path, keep):
    data = good_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(NetworkFormatError) as err:
        load_network(cut)
    assert str(cut) in str(err.value)
    assert "truncated" in str(err.value)


def test_corrupted_weight_bytes_fail_checksum(good_file):
    with h5py.File(good_file, "r") as f:
        offset = f["layers/000/weights"].id.get_chunk_info(0).byte_offset
    raw = bytearray(good_file.read_bytes())
    raw[offset + 100] ^= 0xFF
    good_file.write_bytes(bytes(raw))
    with pytest.raises(NetworkFormatError) as err:
        load_network(good_file)
    assert "/layers/000/weights" in str(err.value)
    assert "cannot read data" in str(err.value)


def test_not_hdf5(tmp_path):
    bogus = tmp_path / "net.h5"
    bogus.write_text("this is not a network\n")
    with pytest.raises(NetworkFormatError) as err:
        load_network(bogus)
    assert str(bogus) in str(err.value) and "not an HDF5 file" in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NetworkFormatError, match="absent.h5: no such scrramble-network file"):
        load_network(tmp_path / "absent.h5")
    with pytest.raises(NetworkFormatError, match="not a regular file"):
        load_network(tmp_path)


def test_dataset_where_group_expected(good_file):
    with h5py.File(good_file, "r+") as f:
        del f["input"]
        f.create_dataset("input", data=np.zeros(3))
    with pytest.raises(NetworkFormatError, match="/input: is a Dataset; expected a group"):
        load_network(good_file)
