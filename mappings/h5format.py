"""HDF5 network files: save a :class:`Network` atomically, load and validate one.

The schema, version policy and list of validation errors are in ``docs/network_format.md``.
Every problem found while loading raises :class:`NetworkFormatError` whose message names the
file, the HDF5 path of the offending group/dataset/attribute and what was expected.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mappings.activations import ACTIVATION_KINDS, Activation
from mappings.network import DTYPE, DenseLayer, InputSpec, Network, Readout, ScrrambleLayer
from mappings.routing import ROUTING_DTYPE, RoutingError, check_balanced
from mappings.safe_files import H5Reader, atomic_write

FORMAT_NAME = "scrramble-network"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
LAYER_TYPES = ("scrramble", "dense")
READOUT_KINDS = ("capsule", "logits")
QRELU_BITS = (1, 16)  # inclusive range accepted by Activation for qrelu
_CHUNK_BYTES = 1 << 20  # ~1 MiB chunks along the first axis (one or a few cores per chunk)
_LIBVER = ("v108", "latest")  # HDF5 >= 1.8 layout: attributes larger than 64 KiB are allowed


class NetworkFormatError(ValueError):
    """A network file (or a network about to be saved) does not satisfy the schema."""


# ----------------------------------------------------------------------------------------------
# Checks shared with the reference importer.


def coerce_routing(C: np.ndarray, where: str) -> np.ndarray:
    """Integral-valued routing (any int or float dtype) -> C-contiguous int8, else an error.

    ``where`` prefixes the message (e.g. ``"net.h5: /layers/000/routing"``).
    """
    C = np.asarray(C)
    if C.dtype.kind not in "iuf":
        raise NetworkFormatError(
            f"{where}: routing dtype {C.dtype} is not numeric; expected small signed integers"
        )
    if C.dtype.kind == "f":
        bad = ~np.isfinite(C)
        if bad.any():
            idx = tuple(int(v) for v in np.argwhere(bad)[0])
            raise NetworkFormatError(
                f"{where}: {int(bad.sum())} non-finite routing entries (first at index {idx}); "
                "expected integers in [-128, 127]"
            )
        frac = C != np.rint(C)
        if frac.any():
            idx = tuple(int(v) for v in np.argwhere(frac)[0])
            raise NetworkFormatError(
                f"{where}: {int(frac.sum())} routing entries are not integral (first at index "
                f"{idx}: {C[idx]!r}); expected integer-valued routing"
            )
    info = np.iinfo(ROUTING_DTYPE)
    if C.size and (C.min() < info.min or C.max() > info.max):
        raise NetworkFormatError(
            f"{where}: routing values span [{C.min()}, {C.max()}]; expected integers in "
            f"[{info.min}, {info.max}] (int8)"
        )
    return np.ascontiguousarray(C, dtype=ROUTING_DTYPE)


def require_balanced(C: np.ndarray, where: str) -> None:
    """Raise :class:`NetworkFormatError` naming the first unbalanced (src core, slot, dst core)."""
    try:
        check_balanced(C, where)
    except RoutingError as exc:
        raise NetworkFormatError(str(exc)) from None


def require_finite(a: np.ndarray, where: str) -> None:
    """Raise :class:`NetworkFormatError` with the count and first index of non-finite values."""
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        raise NetworkFormatError(
            f"{where}: {int(bad.sum())} non-finite values (NaN/inf) of {a.size}, first at index "
            f"{idx}; expected finite numbers"
        )


def require_float(a: np.ndarray, where: str) -> np.ndarray:
    """A floating array -> C-contiguous float32; other dtypes raise."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise NetworkFormatError(f"{where}: dtype {a.dtype}; expected a floating dtype (float32)")
    return np.ascontiguousarray(a, dtype=DTYPE)


def check_scrramble_shapes(c_shape: tuple, w_shape: tuple, c_where: str, w_where: str) -> None:
    """Routing (src, s, dst, s) and weights (dst, s, s, f, f) shapes, consistent with each other."""
    if len(c_shape) != 4 or c_shape[1] != c_shape[3] or min(c_shape, default=0) < 1:
        raise NetworkFormatError(
            f"{c_where}: shape {tuple(c_shape)}; expected 4-D (src_cores, slots, dst_cores, slots) "
            "with equal slot counts and no empty axis"
        )
    nd, s = c_shape[2], c_shape[3]
    if (
        len(w_shape) != 5
        or tuple(w_shape[:3]) != (nd, s, s)
        or w_shape[3] != w_shape[4]
        or w_shape[3] < 1
    ):
        raise NetworkFormatError(
            f"{w_where}: shape {tuple(w_shape)}; expected (dst_cores={nd}, slots={s}, slots={s}, "
            f"slot, slot) to match routing shape {tuple(c_shape)}"
        )


def check_chaining(n_in: int, prev_out: int, where: str, prev_desc: str) -> None:
    """Layer input width must equal the previous layer's (or the input spec's) output width."""
    if n_in != prev_out:
        raise NetworkFormatError(
            f"{where}: layer takes {n_in} inputs but {prev_desc} provides {prev_out}; expected "
            "equal widths"
        )


# ----------------------------------------------------------------------------------------------
# Metadata (JSON).


def _jsonable(value: Any, where: str) -> Any:
    """Normalise metadata to plain JSON types (numpy scalars/arrays -> Python; tuples -> lists)."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item(), where)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise NetworkFormatError(
                    f"{where}: key {k!r} is a {type(k).__name__}; expected str keys"
                )
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    raise NetworkFormatError(
        f"{where}: value of type {type(value).__name__} is not storable; expected "
        "str/int/float/bool/None/list/dict (or numpy scalars/arrays)"
    )


def metadata_to_json(metadata: dict, where: str = "metadata") -> str:
    """Metadata dict -> JSON text (exact for str/int/float/bool/None/list/dict; NaN allowed)."""
    if not isinstance(metadata, dict):
        raise NetworkFormatError(f"{where}: is a {type(metadata).__name__}; expected a dict")
    return json.dumps(_jsonable(metadata, where), allow_nan=True)


# ----------------------------------------------------------------------------------------------
# Saving.


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    row = itemsize * math.prod(shape[1:])
    rows = max(1, min(shape[0], _CHUNK_BYTES // max(row, 1)))
    return (rows, *shape[1:])


def _write_dataset(group: h5py.Group, name: str, data: np.ndarray, compress: bool = False):
    kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if compress else {}
    return group.create_dataset(
        name, data=data, chunks=_chunks(data.shape, data.itemsize), fletcher32=True, **kw
    )


def _write_activation(group: h5py.Group, act: Activation) -> None:
    group.attrs["activation_kind"] = act.kind
    group.attrs["activation_bits"] = np.int64(act.bits)
    group.attrs["activation_ceiling"] = np.float64(act.ceiling)


def _prepared_layers(network: Network, where: str) -> list[tuple[str, Any, dict]]:
    """Validate every layer and return (type, layer, arrays to store) without touching disk."""
    if not isinstance(network, Network):
        raise NetworkFormatError(f"{where}: expected a Network, got {type(network).__name__}")
    spec = network.input_spec
    if not spec.image_shape or min(spec.image_shape) < 1:
        raise NetworkFormatError(
            f"{where}: input_spec.image_shape {spec.image_shape}; expected positive sizes"
        )
    out = []
    for i, layer in enumerate(network.layers):
        lw = f"{where}: layer {i}"
        if isinstance(layer, ScrrambleLayer):
            C = coerce_routing(layer.routing, f"{lw} routing")
            require_balanced(C, f"{lw} routing")
            W = require_float(layer.weights, f"{lw} weights")
            require_finite(W, f"{lw} weights")
            p = float(layer.p)
            if not (math.isnan(p) or 0.0 <= p <= 1.0):
                raise NetworkFormatError(f"{lw} p={p}; expected a probability in [0, 1] or NaN")
            seed = int(layer.seed)
            if not (np.iinfo(np.int64).min <= seed <= np.iinfo(np.int64).max):
                raise NetworkFormatError(f"{lw} seed {seed}; expected a 64-bit signed integer")
            out.append(("scrramble", layer, {"routing": C, "weights": W}))
        elif isinstance(layer, DenseLayer):
            W = require_float(layer.weights, f"{lw} weights")
            b = require_float(layer.bias, f"{lw} bias")
            require_finite(W, f"{lw} weights")
            require_finite(b, f"{lw} bias")
            out.append(("dense", layer, {"weights": W, "bias": b}))
        else:
            raise NetworkFormatError(
                f"{lw}: type {type(layer).__name__}; expected ScrrambleLayer or DenseLayer"
            )
    return out


def _informational_scalar(key: str, value: Any) -> bool:
    """Whether a metadata entry can be mirrored as a plain HDF5 attribute."""
    if not key or "\0" in key or len(key) > 255:
        return False
    if isinstance(value, str):
        return "\0" not in value and len(value) <= 1024
    if isinstance(value, int):  # includes bool
        return abs(value) < 2**63
    return isinstance(value, float)


def _write_network(f: h5py.File, network: Network, layers: list, meta_json: str) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    f.attrs["metadata_json"] = meta_json

    g = f.create_group("input")
    g.attrs["image_shape"] = np.asarray(network.input_spec.image_shape, dtype=np.int64)
    g.attrs["padded_shape"] = np.asarray(network.input_spec.padded_shape, dtype=np.int64)

    g = f.create_group("readout")
    g.attrs["kind"] = network.readout.kind
    g.attrs["n_classes"] = np.int64(network.readout.n_classes)

    # Informational copy of top-level scalar metadata (for h5ls/HDFView); ignored on load.
    g = f.create_group("metadata")
    for key, value in json.loads(meta_json).items():
        if _informational_scalar(key, value):
            g.attrs[key] = value

    lg = f.create_group("layers")
    lg.attrs["n_layers"] = np.int64(len(layers))
    for i, (kind, layer, arrays) in enumerate(layers):
        g = lg.create_group(f"{i:03d}")
        g.attrs["type"] = kind
        g.attrs["n_in"] = np.int64(layer.n_in)
        g.attrs["n_out"] = np.int64(layer.n_out)
        _write_activation(g, layer.activation)
        if kind == "scrramble":
            g.attrs["p"] = np.float64(layer.p)
            g.attrs["seed"] = np.int64(layer.seed)
            _write_dataset(g, "routing", arrays["routing"], compress=True)
            _write_dataset(g, "weights", arrays["weights"])
        else:
            _write_dataset(g, "weights", arrays["weights"])
            _write_dataset(g, "bias", arrays["bias"])


def save_network(network: Network, path: str | os.PathLike) -> Path:
    """Validate and write ``network`` to ``path`` atomically; return the path.

    The file is written to a temporary name in the same directory and moved into place with
    :func:`os.replace`, so a failure leaves neither a partial file nor a clobbered old one.
    A network that :func:`load_network` would reject (non-finite weights, unbalanced routing,
    unstorable metadata) is refused before anything is written.
    """
    path = Path(path)
    where = str(path)
    layers = _prepared_layers(network, where)
    meta_json = metadata_to_json(network.metadata, f"{where}: metadata")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "x", libver=_LIBVER) as f:
            _write_network(f, network, layers, meta_json)

    return atomic_write(path, write, error=NetworkFormatError, what="network file")


# ----------------------------------------------------------------------------------------------
# Loading.


class _NetworkReader(H5Reader):
    """The shared HDF5 reader plus the network format's shape and activation attributes."""

    def attr_shape(self, obj: h5py.HLObject, name: str, what: str) -> tuple[int, ...]:
        v = np.asarray(self.raw_attr(obj, name, what))
        where = f"{obj.name}@{name}"
        if v.ndim != 1 or v.size == 0 or v.dtype.kind not in "iu":
            raise self.error(
                where,
                f"value {v.tolist()!r} (dtype {v.dtype}); expected a 1-D integer array ({what})",
            )
        if np.any(v < 1):
            raise self.error(where, f"value {v.tolist()!r}; expected positive sizes ({what})")
        return tuple(int(x) for x in v)

    def activation(self, g: h5py.Group) -> Activation:
        kind = self.attr(g, "activation_kind", str, f"one of {ACTIVATION_KINDS}")
        if kind not in ACTIVATION_KINDS:
            raise self.error(
                f"{g.name}@activation_kind",
                f"unknown activation {kind!r}; expected one of {ACTIVATION_KINDS}",
            )
        bits = self.attr(g, "activation_bits", int, "an integer (0 unless qrelu)")
        lo, hi = QRELU_BITS
        if kind == "qrelu" and not lo <= bits <= hi:
            raise self.error(
                f"{g.name}@activation_bits", f"{bits} out of range; qrelu expects {lo}..{hi}"
            )
        if kind != "qrelu" and bits != 0:
            raise self.error(f"{g.name}@activation_bits", f"{bits}; {kind} expects 0")
        ceiling = self.attr(g, "activation_ceiling", float, "a positive finite number")
        if not (math.isfinite(ceiling) and ceiling > 0):
            raise self.error(
                f"{g.name}@activation_ceiling", f"{ceiling}; expected a positive finite number"
            )
        return Activation(kind, bits, ceiling)


def _read_scrramble(r: _NetworkReader, g: h5py.Group) -> ScrrambleLayer:
    cds = r.dataset(
        g, "routing", kinds="iu", ndim=4, what="(src_cores, slots, dst_cores, slots) int8"
    )
    wds = r.dataset(
        g, "weights", kinds="f", ndim=5, what="(dst_cores, slots, slots, slot, slot) float32"
    )
    c_where, w_where = f"{r.path}: {cds.name}", f"{r.path}: {wds.name}"
    check_scrramble_shapes(cds.shape, wds.shape, c_where, w_where)
    C = coerce_routing(r.read(cds), c_where)
    require_balanced(C, c_where)
    W = np.ascontiguousarray(r.read(wds), dtype=DTYPE)
    require_finite(W, w_where)
    act = r.activation(g)
    p = r.attr(g, "p", float, "the connection probability (float, NaN if unknown)", finite=False)
    if not (math.isnan(p) or 0.0 <= p <= 1.0):
        raise r.error(f"{g.name}@p", f"{p}; expected a probability in [0, 1] or NaN")
    seed = r.attr(g, "seed", int, "the routing seed (integer, -1 if unknown)")
    return ScrrambleLayer(C, W, act, p, seed)


def _read_dense(r: _NetworkReader, g: h5py.Group) -> DenseLayer:
    wds = r.dataset(g, "weights", kinds="f", ndim=2, what="(n_in, n_out) float32")
    bds = r.dataset(g, "bias", kinds="f", ndim=1, what=f"(n_out={wds.shape[1]},) float32")
    if bds.shape != (wds.shape[1],):
        raise r.error(
            bds.name, f"shape {bds.shape}; expected ({wds.shape[1]},) to match weights {wds.shape}"
        )
    W = np.ascontiguousarray(r.read(wds), dtype=DTYPE)
    b = np.ascontiguousarray(r.read(bds), dtype=DTYPE)
    require_finite(W, f"{r.path}: {wds.name}")
    require_finite(b, f"{r.path}: {bds.name}")
    return DenseLayer(W, b, r.activation(g))


def _read_header(r: _NetworkReader) -> None:
    f = r.f
    fmt = r.attr(f, "format", str, f"{FORMAT_NAME!r}")
    if fmt != FORMAT_NAME:
        raise r.error("/@format", f"{fmt!r}; expected {FORMAT_NAME!r}")
    version = r.attr(f, "format_version", int, f"an integer in {SUPPORTED_VERSIONS}")
    if version not in SUPPORTED_VERSIONS:
        newer = " (written by a newer scrramble-sim?)" if version > FORMAT_VERSION else ""
        raise r.error(
            "/@format_version",
            f"unsupported version {version}{newer}; this reader supports {SUPPORTED_VERSIONS}",
        )


def _read_metadata(r: _NetworkReader) -> dict:
    return r.json_attr(r.f, "metadata_json", dict, "a JSON object")


def _layer_names(r: _NetworkReader, lg: h5py.Group) -> Iterable[str]:
    n = r.attr(lg, "n_layers", int, "the number of layers (>= 1)")
    if n < 1:
        raise r.error("/layers@n_layers", f"{n}; expected at least 1 layer")
    expected = [f"{i:03d}" for i in range(n)]
    present = set(lg.keys())
    for name in expected:
        if name not in present:
            raise r.error(f"/layers/{name}", f"missing layer group; n_layers is {n}")
    extra = sorted(present - set(expected))
    if extra:
        raise r.error(
            f"/layers/{extra[0]}", f"unexpected member; expected only {expected[0]}..{expected[-1]}"
        )
    return expected


def _read_network(r: _NetworkReader) -> Network:
    _read_header(r)
    meta = _read_metadata(r)

    ig = r.group(r.f, "input", "the input spec")
    image_shape = r.attr_shape(ig, "image_shape", "sample shape, e.g. [28, 28]")
    padded_shape = r.attr_shape(ig, "padded_shape", "padded shape, e.g. [32, 32]")
    try:
        spec = InputSpec(image_shape, padded_shape)
    except ValueError as exc:
        raise r.error("/input", f"{exc}") from None

    rg = r.group(r.f, "readout", "the readout")
    kind = r.attr(rg, "kind", str, "'capsule' or 'logits'")
    n_classes = r.attr(rg, "n_classes", int, "an integer >= 2")
    if kind not in READOUT_KINDS:
        raise r.error("/readout@kind", f"unknown readout {kind!r}; expected one of {READOUT_KINDS}")
    if n_classes < 2:
        raise r.error("/readout@n_classes", f"{n_classes}; expected an integer >= 2")
    readout = Readout(kind, n_classes)

    lg = r.group(r.f, "layers", "one group per layer")
    layers = []
    width, source = spec.n_features, f"/input (padded_shape {padded_shape})"
    for name in _layer_names(r, lg):
        g = r.group(lg, name, "a layer")
        kind = r.attr(g, "type", str, f"one of {LAYER_TYPES}")
        if kind == "scrramble":
            layer = _read_scrramble(r, g)
        elif kind == "dense":
            layer = _read_dense(r, g)
        else:
            raise r.error(
                f"{g.name}@type", f"unknown layer type {kind!r}; expected one of {LAYER_TYPES}"
            )
        check_chaining(layer.n_in, width, f"{r.path}: {g.name}", source)
        for attr, value in (("n_in", layer.n_in), ("n_out", layer.n_out)):
            if attr in g.attrs:
                stored = r.attr(g, attr, int, "an integer")
                if stored != value:
                    raise r.error(
                        f"{g.name}@{attr}",
                        f"{stored} disagrees with the datasets; expected {value}",
                    )
        width, source = layer.n_out, g.name
        layers.append(layer)

    try:
        readout.check_width(width)
    except ValueError as exc:
        raise r.error("/readout", f"{exc} (from {source})") from None
    try:
        return Network(tuple(layers), spec, readout, meta)
    except ValueError as exc:
        raise r.error("/", f"inconsistent network: {exc}") from None


def load_network(path: str | os.PathLike) -> Network:
    """Read and fully validate a network file written by :func:`save_network`."""
    with _NetworkReader.open(path, error=NetworkFormatError, what=f"{FORMAT_NAME} file") as r:
        return _read_network(r)
