"""The shared HDF5 reader (mappings.safe_files.H5Reader) and the three file formats built on it:
networks, training checkpoints and chip instances report damage in one form,
"FILE: HDF5-PATH[@ATTRIBUTE]: problem; expected ...", with their own error class."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mappings.builders import build_scrramble_network
from mappings.h5format import NetworkFormatError, load_network, save_network
from mappings.network import InputSpec
from mappings.safe_files import H5Reader
from sim.chip.config import chip_config_from_dict
from sim.chip.programming import ChipInstanceError, load_instance, program_chip, save_instance
from sim.training import TrainConfig, train
from sim.training.checkpoint import CheckpointError, load_checkpoint


class Bad(ValueError):
    pass


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        g.attrs["text"] = "hello"
        g.attrs["raw"] = np.bytes_(b"bytes")
        g.attrs["latin"] = np.bytes_(b"\xff")
        g.attrs["n"] = np.int64(4)
        g.attrs["one"] = np.array([7])
        g.attrs["flag"] = True
        g.attrs["x"] = 2.5
        g.attrs["nan"] = np.nan
        g.attrs["obj"] = '{"a": 1}'
        g.attrs["broken"] = "{oops"
        g.create_dataset("w", data=np.arange(6, dtype=np.float32).reshape(2, 3))
        g.create_dataset("i", data=np.arange(3, dtype=np.int8))
        g.create_dataset("empty", data=np.zeros((0, 3), np.float32))
        g.create_dataset("bad", data=np.array([1.0, np.inf, np.nan], np.float64))
    return path


def message(path, call) -> str:
    with pytest.raises(Bad) as info, H5Reader.open(path, error=Bad, what="sample file") as r:
        call(r, r.f["g"])
    return str(info.value)


def test_typed_attributes(sample):
    with H5Reader.open(sample, error=Bad, what="sample file") as r:
        g = r.group(r.f, "g")
        assert r.attr(g, "text") == "hello" and r.attr(g, "raw", str) == "bytes"
        assert r.attr(g, "n", int) == 4 and type(r.attr(g, "n", int)) is int
        assert r.attr(g, "one", int) == 7  # one-element arrays read as scalars
        assert r.attr(g, "x", float) == 2.5 and r.attr(g, "n", float) == 4.0
        assert np.isnan(r.attr(g, "nan", float, finite=False))
        assert r.json_attr(g, "obj", dict, "an object") == {"a": 1}
        assert r.attr(g, "n", int, minimum=4) == 4
        with pytest.raises(ValueError, match="reads str, int or float, not <class 'bool'>"):
            r.attr(g, "flag", bool)  # a caller's mistake, not a damaged file


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda r, g: r.attr(g, "nope", int, "a count"),
         "/g@nope: missing attribute; expected a count"),
        (lambda r, g: r.attr(g, "n", str), "/g@n: value 4 is not a string; expected text"),
        (lambda r, g: r.attr(g, "x", int), "/g@x: value 2.5 is not an integer"),
        (lambda r, g: r.attr(g, "flag", int), "/g@flag: value True is not an integer"),
        (lambda r, g: r.attr(g, "flag", float), "/g@flag: value True is not a number"),
        (lambda r, g: r.attr(g, "nan", float, "a rate"),
         "/g@nan: value nan is not finite; expected a rate"),
        (lambda r, g: r.attr(g, "n", int, ">= 5", minimum=5), "/g@n: value 4; expected >= 5"),
        (lambda r, g: r.attr(g, "latin"), "/g@latin: not UTF-8 text"),
        (lambda r, g: r.json_attr(g, "broken", dict, "an object"), "/g@broken: invalid JSON"),
        (lambda r, g: r.json_attr(g, "obj", list, "a list"),
         "/g@obj: is a JSON dict; expected a list"),
        (lambda r, g: r.group(g, "w", "weights"),
         "/g/w: is a Dataset; expected a group (weights)"),
        (lambda r, g: r.group(g, "sub", "a sub-group"),
         "/g/sub: missing group; expected a sub-group"),
    ],
)
def test_attribute_and_group_errors_name_file_and_path(sample, call, expected):
    msg = message(sample, call)
    assert msg.startswith(f"{sample}: ") and expected in msg, msg


def test_typed_datasets(sample):
    with H5Reader.open(sample, error=Bad, what="sample file") as r:
        g = r.f["g"]
        w = r.array(g, "w", (2, 3), np.float32)
        assert w.dtype == np.float32 and w.flags.c_contiguous and w[1, 2] == 5
        assert r.array(g, "w", (2, 3), np.float64).dtype == np.float64  # same kind, cast
        assert r.array(g, "i", (3,), np.int8).tolist() == [0, 1, 2]
        assert r.array(g, "absent", (1,), np.float32, required=False) is None
        ds = r.dataset(g, "w", kinds="f", ndim=2, what="weights")
        assert r.read(ds).shape == (2, 3)
        assert r.read(r.dataset(g, "bad", kinds="f", ndim=1, what="x")).size == 3  # finite=False


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda r, g: r.array(g, "absent", (2,), np.float32),
         "/g/absent: missing dataset; expected float32 shaped (2,)"),
        (lambda r, g: r.array(g, "w", (3, 2), np.float32),
         "/g/w: float32 shaped (2, 3); expected float32 shaped (3, 2)"),
        (lambda r, g: r.array(g, "w", (2, 3), np.int8),
         "/g/w: dtype float32; expected a signed integer dtype (int8 shaped (2, 3))"),
        (lambda r, g: r.array(g, "bad", (3,), np.float64),
         "/g/bad: holds NaN or infinite values (2, first at (1,)); expected finite numbers"),
        (lambda r, g: r.dataset(g, "w", kinds="f", ndim=3, what="a cube"),
         "/g/w: has 2 dimensions (2, 3); expected 3 (a cube)"),
        (lambda r, g: r.dataset(g, "i", kinds="f", ndim=1, what="weights"),
         "/g/i: dtype int8; expected a floating dtype (weights)"),
        (lambda r, g: r.dataset(g, "empty", kinds="f", ndim=2, what="rows"),
         "/g/empty: shape (0, 3) has an empty axis; expected rows"),
        (lambda r, g: r.array(r.f, "g", (1,), np.float32),
         "/g: is a Group; expected a dataset (float32 shaped (1,))"),
    ],
)
def test_dataset_errors_name_file_and_path(sample, call, expected):
    msg = message(sample, call)
    assert msg == f"{sample}: {expected}"


def test_open_names_the_file_and_wraps_h5py_failures(sample, tmp_path):
    def read(path, body):
        with H5Reader.open(path, error=Bad, what="sample file") as r:
            body(r)

    with pytest.raises(Bad, match="no such sample file"):
        read(tmp_path / "absent.h5", lambda r: None)
    with pytest.raises(Bad, match=r"sample\.h5: HDF5 read failed \(corrupted sample file\?\): Key"):
        read(sample, lambda r: r.f["no/such/object"])
    def own_error(r):
        raise Bad("mine")

    with pytest.raises(Bad, match="^mine$"):  # the reader's own errors pass unchanged
        read(sample, own_error)


# ----------------------------------------------------------- the three formats, one form


SPEC = InputSpec((4, 8), (4, 8))


def tiny_net():
    return build_scrramble_network(
        hidden_cores=(2,), n_classes=4, core_size=16, slot_size=4, p=0.5, input_spec=SPEC,
        rng=np.random.default_rng(0),
    )


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """A network file, a training checkpoint and a chip-instance file of the same network."""
    d = tmp_path_factory.mktemp("formats")
    net = tiny_net()
    network = save_network(net, d / "net.h5")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4, 8)).astype(np.float32), rng.integers(0, 4, 64)
    checkpoint = d / "ckpt.h5"
    train(net, x, y, TrainConfig(epochs=1, batch_size=32, seed=1), progress=False,
          checkpoint=checkpoint)
    config = chip_config_from_dict(
        {"chip": {"grid_rows": 4, "grid_cols": 4, "core_rows": 16, "core_cols": 16,
                  "slot_size": 4}, "device": {"preset": "ideal"}},
        source="<test chip>",
    )
    instance = save_instance(program_chip(net, config, 1), d / "chip.h5")
    return net, {"network": network, "checkpoint": checkpoint, "instance": instance}


LOADERS = {
    "network": (NetworkFormatError, "/", lambda p, net: load_network(p)),
    "checkpoint": (CheckpointError, "/checkpoint", lambda p, net: load_checkpoint(p)),
    "instance": (ChipInstanceError, "/", lambda p, net: load_instance(p, net)),
}


def damaged(three_files, kind, tmp_path, edit):
    net, files = three_files
    path = tmp_path / files[kind].name
    path.write_bytes(files[kind].read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    error, _, load = LOADERS[kind]
    with pytest.raises(error) as info:
        load(path, net)
    return path, str(info.value)


@pytest.mark.parametrize("kind", list(LOADERS))
def test_missing_format_attribute_reads_alike(three_files, kind, tmp_path):
    """The chip-instance reader used to say "/ attribute 'format': missing"."""
    group = LOADERS[kind][1]
    path, msg = damaged(three_files, kind, tmp_path, lambda f: f[group].attrs.__delitem__("format"))
    where = "/@format" if group == "/" else f"{group}@format"
    assert msg.startswith(f"{path}: {where}: missing attribute; expected "), msg


@pytest.mark.parametrize(
    "kind, name",
    [
        ("checkpoint", "checkpoint/optimizer/m/000"),
        ("instance", "layers/layer_000/programmed/g_pos"),
    ],
)
def test_non_finite_array_reads_alike(three_files, kind, name, tmp_path):
    """A NaN in a stored float array (Adam moments; programmed conductances) is named with its
    HDF5 path and position in the same words (the checkpoint used to say 'non-finite values')."""
    first = []

    def poison(f):
        ds = f[name]
        first.append((0,) * ds.ndim)
        ds[first[0]] = np.nan

    path, msg = damaged(three_files, kind, tmp_path, poison)
    assert msg == (
        f"{path}: /{name}: holds NaN or infinite values (1, first at {first[0]}); "
        "expected finite numbers"
    )
