"""Drawing, aging, saving and loading one programmed chip instance.

:func:`program_chip` tiles the network (``mappings.tiling``), checks that it fits the chip,
encodes every logical block (``mappings.encodings``) and programs every physical device
(``DeviceModel.program_with_report``). A layer's devices are drawn from their own stream,
``SeedSequence(seed).spawn(n_layers)[layer]``, so a layer's conductances do not depend on the
other layers. Per layer the instance keeps the conductances stacked by physical tile
(tile index = (block * row_tiles + row_tile) * col_tiles + col_tile, as ``LayerTiling.tile_id``):

- ``g_pos`` (n_tiles, outputs_per_tile, inputs_per_tile), ``g_neg`` (same; differential only),
  ``g_ref`` (n_tiles, inputs_per_tile; offset only: each tile's reference column). Positions
  outside a partial tile are 0 and belong to no device.
- the stuck-at masks (int8: -1 at g_min, +1 at g_max, 0 healthy) of the same shapes,
- the decode parameters ``out_scale``, ``ref_coeff`` and ``g_zero`` (the conductance that
  stands for weight 0; used by the 'single' encoding's balance correction) per layer output.

:func:`age` applies ``DeviceModel.retain`` t seconds after programming (always starting from
the conductances at programming time) and the global per-layer drift compensation factor that
the digital decode multiplies in, by ``[retention] drift_compensation``:

- ``read``: measured as a chip would (global drift compensation of Joshi et al., Nat. Commun.
  11, 2473 (2020), as in IBM aihwkit's ``GlobalDriftCompensation``): a known input, 1 on every
  row, is applied to every array right after programming and again at time t; each physical
  column (weight, negative and reference columns alike, stuck devices included) is read once
  with its read noise, and the factor is sum(currents at programming) / sum(currents at t).
- ``oracle``: the exact, noise-free sum(G programmed) / sum(G now) over all devices, an
  idealisation no chip can measure (kept to separate estimation error from drift).
- ``none``: factor 1.

The instance also holds the placement of its physical cores on the grid
(:func:`mappings.placement.place_seeded` with ``[mapping] placement`` and the programming seed,
on the headers-included bit matrix of the mapping's flows).

Instances are stored in HDF5 (:func:`save_instance` / :func:`load_instance`) together with the
chip configuration and a SHA-256 fingerprint of the network, so an instance cannot silently be
used with another network or chip.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from devices.models import drift_compensation_factor
from mappings.checks import check_seed
from mappings.encodings import EncodingError, encode_matrix, reference_columns
from mappings.network import DenseLayer, Network, ScrrambleLayer
from mappings.placement import Placement, PlacementError, place_seeded
from mappings.routing import is_balanced
from mappings.safe_files import H5Reader, atomic_write, open_hdf5
from mappings.tiling import ChipPlan, LayerTiling
from sim.chip.config import ChipConfig, chip_config_from_dict, plan_for_chip

FORMAT_NAME = "scrramble-chip-instance"
FORMAT_VERSION = 1
AGE_STREAM = 0x41474500  # spawn-key tag of the retention streams (distinct from layer indices)
COMPENSATION_STREAM = 0x47444300  # spawn-key tag of the drift-compensation probe reads
_ARRAYS = ("g_pos", "g_neg", "g_ref")


class ProgrammingError(ValueError):
    """The network cannot be programmed on the chip (the message names the layer)."""


class ChipInstanceError(ValueError):
    """A chip-instance file is missing, corrupt, of another version, or does not match the
    network / chip it is used with; the message names the file and the dataset."""


# ----------------------------------------------------------------------------- data model


@dataclass(frozen=True, eq=False)
class TileArrays:
    """Per-tile device arrays of one layer (conductances in uS, or int8 stuck masks)."""

    g_pos: np.ndarray
    g_neg: np.ndarray | None = None
    g_ref: np.ndarray | None = None

    def items(self) -> list[tuple[str, np.ndarray]]:
        return [(n, getattr(self, n)) for n in _ARRAYS if getattr(self, n) is not None]


@dataclass(frozen=True, eq=False)
class LayerDevices:
    """The programmed devices of one layer and how to decode its column currents.

    ``programmed`` holds the conductances right after programming, ``current`` those at the
    instance's age (the same arrays when not aged). ``compensation`` is the digital drift
    compensation factor (1 unless aged with compensation on).
    """

    tiling: LayerTiling
    encoding: str
    programmed: TileArrays
    current: TileArrays
    stuck: TileArrays
    out_scale: np.ndarray  # (n_out,) float32
    ref_coeff: np.ndarray  # (n_out,) float32
    g_zero: np.ndarray  # (n_out,) float32, zero-weight conductance (0 for differential)
    compensation: float = 1.0
    n_clipped: int | None = None  # devices clipped at 0 when programmed (None: not recorded)

    @property
    def n_devices(self) -> int:
        return self.tiling.devices(self.encoding)

    @property
    def clipped_fraction(self) -> float | None:
        """Fraction of the layer's devices whose programmed conductance was drawn negative and
        clipped to 0 (see devices.models.ProgrammingResult); None when not recorded."""
        if self.n_clipped is None:
            return None
        return self.n_clipped / self.n_devices if self.n_devices else 0.0

    @property
    def stuck_at_gmin(self) -> int:
        return int(sum(np.count_nonzero(m < 0) for _, m in self.stuck.items()))

    @property
    def stuck_at_gmax(self) -> int:
        return int(sum(np.count_nonzero(m > 0) for _, m in self.stuck.items()))

    @property
    def has_ref(self) -> bool:
        return self.current.g_ref is not None

    @functools.cached_property
    def exists(self) -> np.ndarray:
        """(n_tiles, outputs_per_tile, inputs_per_tile) bool: which tile positions hold a device."""
        return _tile_mask(self.tiling)

    @functools.cached_property
    def effective(self) -> np.ndarray:
        """G_eff (n_tiles, ref + outputs_per_tile, inputs_per_tile) float32, C-contiguous: the
        reference column first (offset only), then g_pos (- g_neg for differential)."""
        c = self.current
        g = c.g_pos if c.g_neg is None else c.g_pos - c.g_neg
        if c.g_ref is not None:
            g = np.concatenate([c.g_ref[:, None, :], g], axis=1)
        return np.ascontiguousarray(g, dtype=np.float32)

    def read_variance(self, device) -> np.ndarray | None:
        """S2 = sigma_read(G)^2 laid out like :attr:`effective` (differential: the sum over the
        pair); None when the device has no read noise. Non-existent positions are 0."""
        if device.read.is_zero():
            return None
        c = self.current
        mask = self.exists

        def s2(g: np.ndarray, m: np.ndarray) -> np.ndarray:
            s = device.read_sigma(g).astype(np.float32)
            s *= s
            s[~m] = 0.0
            return s

        v = s2(c.g_pos, mask)
        if c.g_neg is not None:
            v += s2(c.g_neg, mask)
        if c.g_ref is not None:
            v = np.concatenate([s2(c.g_ref, mask[:, 0, :])[:, None, :], v], axis=1)
        return np.ascontiguousarray(v, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class ChipInstance:
    """One programmed chip: every layer's devices, the plan, and how it was made."""

    config: ChipConfig
    plan: ChipPlan
    layers: tuple[LayerDevices, ...]
    seed: int
    fingerprint: str
    age_s: float = 0.0
    age_seed: int | None = None
    placement: Placement | None = None  # grid cell of every physical core (None: old file)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_devices(self) -> int:
        return sum(layer.n_devices for layer in self.layers)

    @property
    def stuck_at_gmin(self) -> int:
        return sum(layer.stuck_at_gmin for layer in self.layers)

    @property
    def stuck_at_gmax(self) -> int:
        return sum(layer.stuck_at_gmax for layer in self.layers)

    def fault_counts(self) -> dict[str, int]:
        return {"stuck_at_gmin": self.stuck_at_gmin, "stuck_at_gmax": self.stuck_at_gmax}

    def read_variance(self, layer: int) -> np.ndarray | None:
        """Cached :meth:`LayerDevices.read_variance` of one layer under the chip's device."""
        key = ("s2", layer)
        if key not in self._cache:
            self._cache[key] = self.layers[layer].read_variance(self.config.device)
        return self._cache[key]


# ----------------------------------------------------------------------------- helpers


def network_fingerprint(network: Network) -> str:
    """SHA-256 over every layer's kind, shapes, routing, weights, bias and activation."""
    h = hashlib.sha256()
    h.update(repr((network.input_spec, network.readout)).encode())
    for layer in network.layers:
        if isinstance(layer, ScrrambleLayer):
            parts = [("scrramble", layer.routing.astype(np.int8)), ("w", layer.weights)]
        else:
            parts = [("dense", layer.weights), ("b", layer.bias)]
        for name, a in parts:
            a = np.ascontiguousarray(a)
            if a.dtype.kind == "f":
                a = a.astype(np.float32)
            h.update(f"{name}{a.shape}{a.dtype.str}".encode())
            h.update(a.reshape(-1).view(np.uint8))  # the bytes of a.tobytes(), without a copy
        h.update(layer.activation.describe().encode() + repr(layer.activation.ceiling).encode())
    return h.hexdigest()


def _tile_mask(t: LayerTiling) -> np.ndarray:
    real = np.ones((t.n_blocks, t.block_out, t.block_in), dtype=bool)
    return _to_tiles(real, t)


def _to_tiles(a: np.ndarray, t: LayerTiling) -> np.ndarray:
    """(blocks, block_out, block_in) -> (n_tiles, opt, ipt), zero-padded partial tiles."""
    opt, ipt = t.outputs_per_tile, t.inputs_per_tile
    padded = np.zeros((t.n_blocks, t.col_tiles * opt, t.row_tiles * ipt), dtype=a.dtype)
    padded[:, : t.block_out, : t.block_in] = a
    tiles = padded.reshape(t.n_blocks, t.col_tiles, opt, t.row_tiles, ipt).transpose(0, 3, 1, 2, 4)
    return np.ascontiguousarray(tiles.reshape(t.n_tiles, opt, ipt))


def _ref_to_tiles(a: np.ndarray, t: LayerTiling) -> np.ndarray:
    """(blocks, col_tiles, block_in) -> (n_tiles, ipt), zero-padded."""
    ipt = t.inputs_per_tile
    padded = np.zeros((t.n_blocks, t.col_tiles, t.row_tiles * ipt), dtype=a.dtype)
    padded[:, :, : t.block_in] = a
    tiles = padded.reshape(t.n_blocks, t.col_tiles, t.row_tiles, ipt).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(tiles.reshape(t.n_tiles, ipt))


def _block_matrices(layer) -> tuple[np.ndarray, bool]:
    """(blocks, block_out, block_in) logical matrices and whether their inputs are balanced."""
    if isinstance(layer, ScrrambleLayer):
        return layer.core_matrices(), is_balanced(layer.routing)
    if isinstance(layer, DenseLayer):
        return np.ascontiguousarray(layer.weights.T, dtype=np.float32)[None], False
    raise ProgrammingError(f"cannot program a layer of type {type(layer).__name__}")


def layer_rng(seed: int, layer: int, n_layers: int) -> np.random.Generator:
    """The programming stream of one layer: SeedSequence(seed).spawn(n_layers)[layer]."""
    return np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(n_layers)[layer])


# ----------------------------------------------------------------------------- programming


def program_chip(network: Network, config: ChipConfig, seed: int) -> ChipInstance:
    """Tile, check, encode and program ``network`` on the chip of ``config``.

    Raises ChipConfigError (the network does not fit the chip) or ProgrammingError (an
    encoding that cannot represent a layer, e.g. 'single' on a dense layer).
    """
    seed = check_seed(seed, "programming seed", ProgrammingError)
    plan = plan_for_chip(network, config, check=True)
    device = config.device
    enc, scaling = config.mapping.encoding, config.mapping.scaling
    n = len(network.layers)
    layers = []
    for i, (layer, t) in enumerate(zip(network.layers, plan.layers)):
        mats, balanced = _block_matrices(layer)
        try:
            encoded = [encode_matrix(m, enc, scaling, device, balanced=balanced) for m in mats]
        except EncodingError as exc:
            kind = "ScRRAMBLe" if isinstance(layer, ScrrambleLayer) else "dense"
            raise ProgrammingError(
                f"{config.source}: layer {i} ({kind}) cannot use encoding {enc!r}: {exc}"
            ) from None
        rng = layer_rng(seed, i, n)
        prog: dict[str, np.ndarray] = {}
        stuck: dict[str, np.ndarray] = {}
        n_clipped = 0
        for name in ("g_pos", "g_neg"):
            if getattr(encoded[0], name) is None:
                continue
            target = np.stack([getattr(e, name) for e in encoded])
            res = device.program_with_report(target, rng)
            prog[name] = _to_tiles(res.g, t)
            stuck[name] = _to_tiles(res.stuck, t)
            n_clipped += res.n_clipped
        if reference_columns(enc):
            # every column tile has its own reference column over the block's inputs
            target = np.stack([np.broadcast_to(e.g_ref, (t.col_tiles, t.block_in)) for e in encoded])
            res = device.program_with_report(target, rng)
            prog["g_ref"] = _ref_to_tiles(res.g, t)
            stuck["g_ref"] = _ref_to_tiles(res.stuck, t)
            n_clipped += res.n_clipped
        arrays = TileArrays(**prog)
        layers.append(
            LayerDevices(
                tiling=t,
                encoding=enc,
                programmed=arrays,
                current=arrays,
                stuck=TileArrays(**stuck),
                out_scale=np.concatenate([e.out_scale for e in encoded]).astype(np.float32),
                ref_coeff=np.concatenate([e.ref_coeff for e in encoded]).astype(np.float32),
                g_zero=np.concatenate(
                    [np.zeros(e.n_out) if e.g_zero is None else e.g_zero for e in encoded]
                ).astype(np.float32),
                n_clipped=n_clipped,
            )
        )
    placement = place_seeded(
        plan.flows.core_matrix(header=True), config.grid, config.mapping.placement, seed
    )
    return ChipInstance(
        config, plan, tuple(layers), seed, network_fingerprint(network), placement=placement
    )


def age(instance: ChipInstance, t: float, seed: int) -> ChipInstance:
    """The instance ``t`` seconds after programming (``DeviceModel.retain`` on the programmed
    conductances; stuck devices keep their value). Layer l draws from
    ``SeedSequence(seed, spawn_key=(AGE_STREAM, l))``, the reads of the ``read`` drift
    compensation from ``SeedSequence(seed, spawn_key=(COMPENSATION_STREAM, l))``; each layer's
    decode factor follows ``[retention] drift_compensation`` (module docstring)."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.number)) or not (
        np.isfinite(t) and t >= 0
    ):
        raise ProgrammingError(f"retention time must be a finite number >= 0 seconds, got {t!r}")
    seed = check_seed(seed, "retention seed", ProgrammingError)
    device = instance.config.device
    mode = instance.config.retention.drift_compensation
    out = []
    for i, layer in enumerate(instance.layers):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(AGE_STREAM, i)))
        mask = layer.exists
        now: dict[str, np.ndarray] = {}
        for name, g0 in layer.programmed.items():
            m = mask if name != "g_ref" else mask[:, 0, :]
            g = device.retain(g0, float(t), rng, stuck=getattr(layer.stuck, name))
            g[~m] = 0.0
            now[name] = g
        current = TileArrays(**now) if t > 0 else layer.programmed
        comp = compensation_factor(mode, layer, current, device, seed, i) if t > 0 else 1.0
        out.append(dataclasses.replace(layer, current=current, compensation=float(comp)))
    return ChipInstance(
        instance.config, instance.plan, tuple(out), instance.seed, instance.fingerprint,
        float(t), seed if t > 0 else None, placement=instance.placement,
    )


def compensation_factor(
    mode: str, layer: LayerDevices, current: TileArrays, device, seed: int, index: int
) -> float:
    """The drift compensation factor of one layer (``mode``: read, oracle or none; see the
    module docstring); ``seed`` and ``index`` key the probe reads' noise."""
    if mode == "none":
        return 1.0
    if mode == "oracle":
        return _compensation(layer.programmed, current)
    if mode != "read":
        raise ProgrammingError(f"unknown drift compensation {mode!r}")
    rng = np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(COMPENSATION_STREAM, index))
    )
    mask = layer.exists
    before = _probe_read(layer.programmed, mask, device, rng)
    after = _probe_read(current, mask, device, rng)
    if not (before > 0 and after > 0):
        raise ProgrammingError(
            f"layer {index}: drift compensation read a non-positive summed current "
            f"({before:g} uA at programming, {after:g} uA now); use drift_compensation "
            f"'oracle' or 'none'"
        )
    return before / after


def _probe_read(arrays: TileArrays, mask: np.ndarray, device, rng) -> float:
    """Summed column currents (uA per unit input) of every physical column with input 1 on
    every row, each column read once with its read noise N(0, sum_i sigma_read(G_i)^2)."""
    total = 0.0
    for name, g in arrays.items():
        m = mask if name != "g_ref" else mask[:, 0, :]
        g64 = np.where(m, g, 0.0).astype(np.float64)
        currents = g64.sum(axis=-1)
        if not device.read.is_zero():
            s2 = np.where(m, device.read_sigma(g64), 0.0) ** 2
            currents = currents + np.sqrt(s2.sum(axis=-1)) * rng.standard_normal(currents.shape)
        total += float(currents[np.any(m, axis=-1)].sum())
    return total


def _compensation(programmed: TileArrays, current: TileArrays) -> float:
    """drift_compensation_factor over all devices of a layer: sum(G programmed) / sum(G now)."""
    g_ref = np.concatenate([a.ravel() for _, a in programmed.items()])
    g_now = np.concatenate([a.ravel() for _, a in current.items()])
    return float(drift_compensation_factor(g_ref, g_now))


# ----------------------------------------------------------------------------- saving


def save_instance(instance: ChipInstance, path: str | os.PathLike) -> Path:
    """Write ``instance`` to HDF5 atomically (temp file in the same directory + os.replace)."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "x") as f:
            _write(f, instance)

    return atomic_write(path, write, error=ChipInstanceError, what="chip instance")


def _write(f: h5py.File, inst: ChipInstance) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["version"] = np.int64(FORMAT_VERSION)
    f.attrs["seed"] = np.int64(inst.seed)
    f.attrs["age_s"] = np.float64(inst.age_s)
    f.attrs["age_seed"] = np.int64(-1 if inst.age_seed is None else inst.age_seed)
    f.attrs["fingerprint"] = inst.fingerprint
    f.attrs["chip_config"] = json.dumps(inst.config.to_dict(), sort_keys=True)
    f.attrs["n_layers"] = np.int64(len(inst.layers))
    if inst.placement is not None:
        ds = f.create_dataset("placement", data=np.asarray(inst.placement.positions, np.int64))
        ds.attrs["method"] = inst.placement.method
    root = f.create_group("layers")
    for i, layer in enumerate(inst.layers):
        g = root.create_group(f"layer_{i:03d}")
        g.attrs["encoding"] = layer.encoding
        g.attrs["compensation"] = np.float64(layer.compensation)
        g.attrs["n_clipped"] = np.int64(-1 if layer.n_clipped is None else layer.n_clipped)
        g.attrs["tiling"] = json.dumps(layer.tiling.as_dict(), sort_keys=True)
        g.create_dataset("out_scale", data=layer.out_scale)
        g.create_dataset("ref_coeff", data=layer.ref_coeff)
        g.create_dataset("g_zero", data=layer.g_zero)
        for name, a in layer.programmed.items():
            g.create_dataset(f"programmed/{name}", data=a, compression="gzip", compression_opts=1)
            g.create_dataset(f"stuck/{name}", data=getattr(layer.stuck, name), compression="gzip")
            if inst.age_s > 0:
                g.create_dataset(
                    f"current/{name}", data=getattr(layer.current, name),
                    compression="gzip", compression_opts=1,
                )


def load_instance(
    path: str | os.PathLike, network: Network, config: ChipConfig | None = None
) -> ChipInstance:
    """Read a chip instance saved by :func:`save_instance` for ``network``.

    The network must match the stored fingerprint. If ``config`` is given, its [chip],
    [device] and [mapping] encoding / scaling must match the stored configuration and it
    becomes the instance's configuration (read-time settings such as the converters may
    differ; a different ``[retention] drift_compensation`` recomputes the stored layers'
    compensation factors); otherwise the stored configuration is used.
    """
    path = Path(path)
    with open_hdf5(path, error=ChipInstanceError, what="chip-instance file") as f:
        try:
            return _read(H5Reader(f, path, ChipInstanceError), network, config)
        except (OSError, KeyError, RuntimeError) as exc:  # h5py errors on damaged files
            raise ChipInstanceError(f"{path}: damaged chip-instance file: {exc}") from None


def _read(r: H5Reader, network: Network, config: ChipConfig | None) -> ChipInstance:
    f = r.f
    fmt = r.attr(f, "format", str)
    if fmt != FORMAT_NAME:
        raise r.error("/ attribute 'format'", f"{fmt!r}; expected {FORMAT_NAME!r}")
    version = r.attr(f, "version", int)
    if version != FORMAT_VERSION:
        raise r.error(
            "/ attribute 'version'", f"{version}; this program reads version {FORMAT_VERSION}"
        )
    fp = r.attr(f, "fingerprint", str)
    if fp != network_fingerprint(network):
        raise r.error(
            "/ attribute 'fingerprint'",
            "the instance was programmed for a different network (weights, routing or "
            "shapes differ); program the chip again for this network",
        )
    try:
        raw = json.loads(r.attr(f, "chip_config", str))
        ret = raw.get("retention") if isinstance(raw, dict) else None
        if isinstance(ret, dict) and ret.get("drift_compensation") is True:
            # files written before the 'read' estimate stored the exact (oracle) factors
            ret["drift_compensation"] = "oracle"
        stored = chip_config_from_dict(raw, str(r.path))
    except (ValueError, TypeError) as exc:
        raise r.error("/ attribute 'chip_config'", f"invalid chip configuration: {exc}") from None
    saved_config = stored
    if config is not None:
        pairs = [
            ("[chip]", config.chip, stored.chip),
            ("[device]", config.device, stored.device),
            ("[mapping] encoding", config.mapping.encoding, stored.mapping.encoding),
            ("[mapping] scaling", config.mapping.scaling, stored.mapping.scaling),
        ]
        for what, given, saved in pairs:
            if given != saved:
                raise r.error(
                    "/ attribute 'chip_config'",
                    f"{what} differs from the chip file {config.source} (instance: {saved}; "
                    f"chip file: {given}); program the chip again",
                )
        stored = config
    recompensate = config is not None and (
        config.retention.drift_compensation != saved_config.retention.drift_compensation
    )
    seed = r.attr(f, "seed", int)
    age_s = r.attr(f, "age_s", float)
    age_seed = r.attr(f, "age_seed", int)
    plan = plan_for_chip(network, stored, check=True)
    n = r.attr(f, "n_layers", int)
    if n != len(plan.layers):
        raise r.error("/ attribute 'n_layers'", f"{n}; the network has {len(plan.layers)} layers")
    if "layers" not in f or not isinstance(f["layers"], h5py.Group):
        raise r.error("group /layers", "missing")
    layers = []
    enc = stored.mapping.encoding
    for i, t in enumerate(plan.layers):
        name = f"layer_{i:03d}"
        if name not in f["layers"]:
            raise r.error(f"group /layers/{name}", "missing")
        g = f["layers"][name]
        if r.attr(g, "encoding", str) != enc:
            raise r.error(f"{g.name} attribute 'encoding'", f"differs from [mapping] {enc!r}")
        stored_t = r.attr(g, "tiling", str)
        if json.loads(stored_t) != json.loads(json.dumps(t.as_dict(), sort_keys=True)):
            raise r.error(f"{g.name} attribute 'tiling'", "does not match the network's tiling")
        comp = r.attr(g, "compensation", float)
        if comp <= 0:
            raise r.error(f"{g.name} attribute 'compensation'", f"{comp}; expected > 0")
        tile = (t.n_tiles, t.outputs_per_tile, t.inputs_per_tile)
        shapes = {"g_pos": tile, "g_neg": tile, "g_ref": (t.n_tiles, t.inputs_per_tile)}
        names = ["g_pos"] + (["g_neg"] if enc == "differential" else [])
        names += ["g_ref"] if enc == "offset" else []
        groups = {}
        for sub in ("programmed", "stuck") + (("current",) if age_s > 0 else ()):
            if sub not in g or not isinstance(g[sub], h5py.Group):
                raise r.error(f"group {g.name}/{sub}", "missing")
            dt = np.int8 if sub == "stuck" else np.float32
            groups[sub] = TileArrays(**{k: r.array(g[sub], k, shapes[k], dt) for k in names})
        for sub, arrays in groups.items():
            if sub == "stuck":
                continue
            for k in names:
                if np.any(getattr(arrays, k) < 0):
                    raise r.error(f"dataset {g.name}/{sub}/{k}", "negative conductances")
        programmed = groups["programmed"]
        n_clipped = r.attr(g, "n_clipped", int) if "n_clipped" in g.attrs else -1
        layer = LayerDevices(
            t, enc, programmed, groups.get("current", programmed), groups["stuck"],
            r.array(g, "out_scale", (t.n_out,), np.float32),
            r.array(g, "ref_coeff", (t.n_out,), np.float32),
            r.array(g, "g_zero", (t.n_out,), np.float32),
            comp,
            None if n_clipped < 0 else n_clipped,
        )
        if recompensate and age_s > 0:  # the chip file switches [retention] drift_compensation
            comp = compensation_factor(
                stored.retention.drift_compensation, layer, layer.current, stored.device,
                age_seed, i,
            )
            layer = dataclasses.replace(layer, compensation=float(comp))
        elif recompensate:
            layer = dataclasses.replace(layer, compensation=1.0)
        layers.append(layer)
    placement = None
    if "placement" in f:  # optional: files written before placements were saved lack it
        n_cores = plan.n_physical_cores
        positions = r.array(f, "placement", (n_cores, 2), np.int64)
        try:
            placement = Placement(positions, stored.grid, r.attr(f["placement"], "method", str))
        except PlacementError as exc:
            raise r.error("dataset /placement", str(exc)) from None
    return ChipInstance(
        stored, plan, tuple(layers), seed, fp, age_s, None if age_seed < 0 else age_seed,
        placement=placement,
    )
