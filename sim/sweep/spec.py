"""Sweep specifications: a TOML file -> a validated :class:`Sweep` of points.

A specification names the network file(s), the dataset, an optional base chip file, fixed
chip-file overrides and the swept parameters, each by its dotted chip-file path::

    [sweep]
    network = "runs/fashion.h5"       # or a list: the network becomes a dimension
    dataset = "fashion-mnist"         # optional (default: the network's); or a list
    data = "/usr/share/datasets/fashion-mnist"   # optional IDX directory
    chip = "examples/chips/default.toml"         # optional base chip file
    seeds = 3                         # chip instances: 0, 1, 2 (or a list of seeds)
    samples = 2000                    # simulate the first N test images (default: all)
    sampling = "grid"                 # grid | random | lhs (Latin hypercube)
    points = 16                       # random / lhs: how many points
    sampling_seed = 0                 # random / lhs: seed of the draw

    [fixed]                           # chip-file keys set for every point
    "device.programming.kind" = "proportional"

    [parameters]                      # the swept dimensions
    "device.programming.coeffs" = {start = 0.0, stop = 0.1, num = 6}
    "adc.bits" = [4, 5, 6, 7, 8]

Values: a list, ``{start, stop, num}`` (evenly spaced, both ends included; ``log = true`` for
geometric spacing) or ``{start, stop, step}`` (a grid); for random and LHS sampling also
``{low, high}`` (uniform; integers when both bounds are integers; ``log = true``). A number
given for a list-of-numbers key (``device.programming.coeffs``) means a one-element list.
``network`` and ``dataset`` may also be keys of ``[parameters]``. Relative paths are taken
from the current directory.

Every point's chip configuration goes through :func:`sim.chip.config.chip_config_from_dict`
(the chip-file validation) when the specification is loaded, before any work; every error
raises :class:`SweepSpecError` naming the specification file, the key and the expectation.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mappings.safe_files import read_toml
from sim.chip.config import ChipConfig, ChipConfigError, chip_config_from_dict

SAMPLINGS: tuple[str, ...] = ("grid", "random", "lhs")
SPECIAL_KEYS: tuple[str, ...] = ("network", "dataset")
SWEEP_KEYS: tuple[str, ...] = (
    "network", "dataset", "data", "chip", "seeds", "samples", "sampling", "points",
    "sampling_seed",
)
POINT_FORMAT_VERSION = 1  # part of every point's key: bump when a point's result changes meaning


class SweepSpecError(ValueError):
    """An invalid sweep specification; the message names the file, the key and what fits."""


@dataclass(frozen=True)
class Parameter:
    """One swept dimension: its key (dotted chip-file path, ``network`` or ``dataset``) and
    the values of a grid, or the distribution of a random / LHS draw."""

    name: str
    values: tuple[Any, ...] = ()  # grid values, or the choices of a categorical draw
    low: float | None = None  # continuous draw: [low, high]
    high: float | None = None
    integer: bool = False
    log: bool = False

    @property
    def continuous(self) -> bool:
        return self.low is not None


@dataclass(frozen=True)
class PointTask:
    """One unit of work: a point's parameter values, seed, resolved inputs and chip config.

    ``key`` is a stable hash of everything that determines the result (network file
    contents, dataset, samples, the full chip configuration, the seed), never of the worker
    or the order; ``index``: the point's position along the sweep's dimensions."""

    key: str
    index: tuple[int, ...]
    values: dict[str, Any]
    seed: int
    network: str
    dataset: str | None
    data: str | None
    samples: int | None
    config: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """A validated specification and its points."""

    path: str
    parameters: tuple[Parameter, ...]
    sampling: str
    seeds: tuple[int, ...]
    samples: int | None
    data: str | None
    base: ChipConfig
    fixed: dict[str, Any]
    points: tuple[dict[str, Any], ...]  # parameter values of every point (without the seed)
    grid_index: tuple[tuple[int, ...], ...]  # index of each point along the dimensions
    network: str | None  # when not a parameter
    dataset: str | None  # when not a parameter (None: the network's own)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dims(self) -> tuple[str, ...]:
        """Result dimensions: the parameters (grid) or ``point`` (random / LHS), then seed."""
        if self.sampling == "grid":
            return tuple(p.name for p in self.parameters) + ("seed",)
        return ("point", "seed")

    def tasks(self, fingerprints: Mapping[str, str] | None = None) -> list[PointTask]:
        """Every (point, seed) as a :class:`PointTask`; ``fingerprints``: network path ->
        file hash (computed here when not given)."""
        fps = dict(fingerprints or {})
        data = None if self.data is None else str(Path(self.data).resolve())
        out = []
        for values, index in zip(self.points, self.grid_index):
            net = str(values.get("network", self.network))
            if net not in fps:
                fps[net] = file_sha256(net)
            dataset = values.get("dataset", self.dataset)
            cfg = point_config(self, values).to_dict()
            for j, seed in enumerate(self.seeds):
                key = point_key(fps[net], dataset, self.samples, cfg, seed)
                out.append(  # absolute paths: workers may run in another directory
                    PointTask(key, (*index, j), dict(values), seed, str(Path(net).resolve()),
                              dataset, data, self.samples, cfg)
                )
        return out


# ------------------------------------------------------------------------------ hashing


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def point_key(
    network_sha: str, dataset: str | None, samples: int | None, config: Mapping, seed: int
) -> str:
    """Stable 20-hex-digit key of one point's result."""
    blob = json.dumps(
        {
            "version": POINT_FORMAT_VERSION,
            "network": network_sha,
            "dataset": dataset,
            "samples": samples,
            "config": config,
            "seed": int(seed),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------ configs


def _apply(d: dict, path: str, value: Any, where: str) -> None:
    parts = path.split(".")
    node = d
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise SweepSpecError(
                f"{where}: {'.'.join(parts[: i + 1])} is a value, not a table; "
                f"{path!r} is not a chip-file key"
            )
        node = nxt
    if isinstance(node.get(parts[-1]), dict):
        raise SweepSpecError(
            f"{where}: {path!r} is a table of the chip file; name one of its keys "
            f"({', '.join(f'{path}.{k}' for k in node[parts[-1]])})"
        )
    node[parts[-1]] = value


def _chip_dict(base: ChipConfig, overrides: Mapping[str, Any], where: str) -> dict:
    """``base`` as a chip-file dict with the dotted ``overrides`` applied. Setting
    ``device.preset`` starts the device from that preset (like a chip file would)."""
    d = base.to_dict()
    if "device.preset" in overrides:
        d["device"] = {}
    for path, value in overrides.items():
        _apply(d, path, copy.deepcopy(value), where)
    return d


def point_config(sweep: Sweep, values: Mapping[str, Any]) -> ChipConfig:
    """The validated chip configuration of one point (fixed keys, then the point's values)."""
    overrides = {**sweep.fixed, **{k: v for k, v in values.items() if k not in SPECIAL_KEYS}}
    shown = ", ".join(f"{k} = {_show(v)}" for k, v in values.items()) or "(no parameters)"
    where = f"{sweep.path}: point {shown}"
    d = _chip_dict(sweep.base, overrides, where)
    try:
        return chip_config_from_dict(d, source=where)
    except ChipConfigError as exc:
        raise SweepSpecError(str(exc)) from None


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (str, list, bool)) else repr(v)


# ------------------------------------------------------------------------------ parsing


class _Spec:
    """Error messages that name the specification file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, msg: str) -> SweepSpecError:
        return SweepSpecError(f"{self.path}: {msg}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _values(ctx: _Spec, name: str, raw: Any, sampling: str) -> Parameter:
    where = f"[parameters] {name!r}"
    if isinstance(raw, list):
        if not raw:
            raise ctx.error(f"{where}: empty list; give at least one value")
        keys = [json.dumps(v, sort_keys=True) for v in raw]
        if len(set(keys)) != len(keys):
            raise ctx.error(f"{where}: repeated values in {raw}")
        return Parameter(name, tuple(raw))
    if not isinstance(raw, Mapping):
        raise ctx.error(
            f"{where} = {_show(raw)}: expected a list of values, {{start, stop, num}}, "
            "{start, stop, step} or (random / lhs) {low, high}"
        )
    keys = set(raw)
    allowed = ({"start", "stop", "num", "log"}, {"start", "stop", "step"}, {"low", "high", "log"})
    if not any(keys <= a and len(keys - {"log"}) == len(a - {"log"}) for a in allowed):
        raise ctx.error(
            f"{where} = {{{', '.join(sorted(keys))}}}: expected {{start, stop, num}} "
            "(optional log), {start, stop, step} or {low, high} (optional log)"
        )
    for k in keys - {"log"}:
        v = raw[k]
        if not _is_num(v) or not math.isfinite(v):
            raise ctx.error(f"{where}: {k} = {_show(v)} is not a finite number")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ctx.error(f"{where}: log = {_show(log)}; expected true or false")
    if "low" in keys:
        if sampling == "grid":
            raise ctx.error(
                f"{where}: {{low, high}} is a range to draw from; a grid needs a list, "
                "{start, stop, num} or {start, stop, step} (or set [sweep] sampling = "
                '"random" / "lhs")'
            )
        lo, hi = raw["low"], raw["high"]
        if not lo < hi:
            raise ctx.error(f"{where}: empty range low = {lo}, high = {hi}; expected low < high")
        if log and lo <= 0:
            raise ctx.error(f"{where}: log = true needs low > 0, got {lo}")
        integer = _is_int(lo) and _is_int(hi)
        return Parameter(name, (), float(lo), float(hi), integer=integer, log=log)
    start, stop = raw["start"], raw["stop"]
    if "num" in keys:
        num = raw["num"]
        if not _is_int(num) or num < 1:
            raise ctx.error(f"{where}: num = {_show(num)}; expected an integer >= 1")
        if log and (start <= 0 or stop <= 0):
            raise ctx.error(f"{where}: log = true needs start and stop > 0")
        grid = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
        values = [float(round(v, 12)) for v in grid]
        if _is_int(start) and _is_int(stop) and all(float(v).is_integer() for v in values):
            values = [int(v) for v in values]
    else:
        step = raw["step"]
        if step == 0 or (stop - start) * step < 0:
            raise ctx.error(
                f"{where}: empty range start = {start}, stop = {stop}, step = {step}; the "
                "step must be non-zero and lead from start to stop"
            )
        if log:
            raise ctx.error(f"{where}: log = true goes with num, not step")
        n = math.floor((stop - start) / step + 1e-9) + 1
        values = [start + i * step for i in range(n)]
        if all(_is_int(v) for v in (start, stop, step)):
            values = [int(v) for v in values]
        else:
            values = [float(round(v, 12)) for v in values]
    if len(set(values)) != len(values):
        raise ctx.error(f"{where}: repeated values {values}")
    return Parameter(name, tuple(values))


def _seeds(ctx: _Spec, raw: Any) -> tuple[int, ...]:
    if _is_int(raw):
        if raw < 1:
            raise ctx.error(f"[sweep] seeds = {raw}; expected a count >= 1 or a list of seeds")
        return tuple(range(raw))
    if not isinstance(raw, list) or not raw:
        raise ctx.error(
            f"[sweep] seeds = {_show(raw)}; expected a count >= 1 or a non-empty list of "
            "integers >= 0"
        )
    for s in raw:
        if not _is_int(s) or s < 0:
            raise ctx.error(f"[sweep] seeds: {_show(s)} is not an integer >= 0")
    if len(set(raw)) != len(raw):
        raise ctx.error(f"[sweep] seeds: repeated values in {raw}")
    return tuple(raw)


def _positive_int(ctx: _Spec, table: Mapping, key: str, default: Any) -> Any:
    v = table.get(key, default)
    if v is default:
        return v
    if not _is_int(v) or v < 1:
        raise ctx.error(f"[sweep] {key} = {_show(v)}; expected an integer >= 1")
    return v


def _str_or_list(ctx: _Spec, key: str, v: Any, where: str) -> list[str]:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(s, str) and s for s in items):
        raise ctx.error(f"{where} {key} = {_show(v)}; expected a non-empty string or list")
    return items


def _draw(params: Sequence[Parameter], n: int, sampling: str, seed: int) -> list[list]:
    """Random or Latin-hypercube values: ``n`` rows, one column per parameter."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5357,)))
    cols = []
    for p in params:
        if sampling == "lhs":  # one draw inside each of n equal strata, strata shuffled
            u = (rng.permutation(n) + rng.random(n)) / n
        else:
            u = rng.random(n)
        if p.continuous:
            lo, hi = p.low, p.high
            if p.integer:
                v = [math.floor(lo + x * (hi - lo + 1)) for x in u]
                v = [min(x, int(hi)) for x in v]
            elif p.log:
                v = [float(math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))) for x in u]
            else:
                v = [float(lo + x * (hi - lo)) for x in u]
        else:
            k = len(p.values)
            v = [p.values[min(int(x * k), k - 1)] for x in u]
        cols.append(v)
    return [list(row) for row in zip(*cols)] if cols else [[] for _ in range(n)]


def sweep_from_dict(d: Mapping[str, Any], path: str = "<spec>") -> Sweep:
    """Validate a parsed specification (see the module docstring) into a :class:`Sweep`."""
    from sim.chip.config import default_chip_config, load_chip_config

    ctx = _Spec(str(path))
    if not isinstance(d, Mapping):
        raise ctx.error("expected a table with [sweep] and [parameters]")
    unknown = set(d) - {"sweep", "fixed", "parameters"}
    if unknown:
        raise ctx.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; valid: [sweep], [fixed], "
            "[parameters]"
        )
    sw = d.get("sweep", {})
    fixed_raw = d.get("fixed", {})
    params_raw = d.get("parameters", {})
    for name, t in (("sweep", sw), ("fixed", fixed_raw), ("parameters", params_raw)):
        if not isinstance(t, Mapping):
            raise ctx.error(f"[{name}] must be a table")
    for k in sw:
        if k not in SWEEP_KEYS:
            raise ctx.error(f"[sweep] unknown key {k!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    sampling = sw.get("sampling", "grid")
    if sampling not in SAMPLINGS:
        raise ctx.error(
            f"[sweep] sampling = {_show(sampling)}; expected one of {', '.join(SAMPLINGS)}"
        )
    seeds = _seeds(ctx, sw.get("seeds", 1))
    samples = _positive_int(ctx, sw, "samples", None)
    n_points = _positive_int(ctx, sw, "points", None)
    sampling_seed = sw.get("sampling_seed", 0)
    if not _is_int(sampling_seed) or sampling_seed < 0:
        raise ctx.error(f"[sweep] sampling_seed = {_show(sampling_seed)}; expected an integer >= 0")
    if sampling == "grid" and n_points is not None:
        raise ctx.error('[sweep] points is for sampling = "random" or "lhs"; a grid has them all')
    if sampling != "grid" and n_points is None:
        raise ctx.error(f'[sweep] sampling = "{sampling}" needs points = N (how many to draw)')
    data = sw.get("data")
    if data is not None and (not isinstance(data, str) or not data):
        raise ctx.error(f"[sweep] data = {_show(data)}; expected a directory path")
    if data is not None and not Path(data).is_dir():
        raise ctx.error(f"[sweep] data = {data!r}: no such directory")

    chip = sw.get("chip")
    if chip is None:
        base = default_chip_config()
    else:
        if not isinstance(chip, str) or not chip:
            raise ctx.error(f"[sweep] chip = {_show(chip)}; expected a chip-file path")
        try:
            base = load_chip_config(chip)
        except ChipConfigError as exc:
            raise ctx.error(f"[sweep] chip: {exc}") from None

    # dimensions (network and dataset may be given in either table)
    params: list[Parameter] = []
    for name, raw in params_raw.items():
        if name not in SPECIAL_KEYS and "." not in name:
            raise ctx.error(
                f"[parameters] {name!r}: expected a dotted chip-file path such as 'adc.bits' "
                "or 'device.programming.coeffs', or 'network' / 'dataset'"
            )
        params.append(_values(ctx, name, raw, sampling))
    fixed: dict[str, Any] = {}
    for name, value in fixed_raw.items():
        if name in SPECIAL_KEYS or "." not in name:
            raise ctx.error(
                f"[fixed] {name!r}: expected a dotted chip-file path such as 'dac.bits' "
                "(network and dataset go in [sweep])"
            )
        if name in params_raw:
            raise ctx.error(f"[fixed] {name!r} is also a swept parameter; keep one")
        fixed[name] = value

    specials: dict[str, str | None] = {"network": None, "dataset": None}
    for key in SPECIAL_KEYS:
        if key not in sw:
            continue
        if key in params_raw:
            raise ctx.error(f"{key!r} is in [sweep] and [parameters]; keep one")
        items = _str_or_list(ctx, key, sw[key], "[sweep]")
        if len(items) == 1:
            specials[key] = items[0]
        else:
            params.append(_values(ctx, key, items, sampling))
    by_name = {p.name: p for p in params}
    if specials["network"] is None and "network" not in by_name:
        raise ctx.error("[sweep] network is missing; name the network file (HDF5)")
    for key in SPECIAL_KEYS:
        p = by_name.get(key)
        if p is not None and (p.continuous or not all(isinstance(v, str) for v in p.values)):
            raise ctx.error(f"[parameters] {key!r}: expected a list of names / paths")

    # each value on its own first (errors name the key), then every point
    base_fixed = _chip_dict(base, fixed, f"{ctx.path}: [fixed]")
    try:
        base_fixed_cfg = chip_config_from_dict(base_fixed, source=f"{ctx.path}: [fixed]")
    except ChipConfigError as exc:
        raise SweepSpecError(str(exc)) from None
    for p in params:
        if p.name in SPECIAL_KEYS:
            continue
        probes = p.values if not p.continuous else (p.low, p.high)
        for v in probes:
            if p.continuous and p.integer:
                v = int(v)
            v = _coerce_list_key(p.name, v, base_fixed_cfg)
            where = f"{ctx.path}: [parameters] {p.name!r} = {_show(v)}"
            try:
                chip_config_from_dict(_chip_dict(base_fixed_cfg, {p.name: v}, where), source=where)
            except ChipConfigError as exc:
                raise SweepSpecError(str(exc)) from None
    params = [_coerced(p, base_fixed_cfg) for p in params]

    if sampling == "grid":
        axes = [range(len(p.values)) for p in params]
        grid_index = [tuple(ix) for ix in itertools.product(*axes)]
        points = [{p.name: p.values[i] for p, i in zip(params, ix)} for ix in grid_index]
    else:
        rows = _draw(params, n_points, sampling, sampling_seed)
        points = [{p.name: v for p, v in zip(params, row)} for row in rows]
        points = [{k: _coerce_list_key(k, v, base_fixed_cfg) for k, v in pt.items()}
                  for pt in points]
        grid_index = [(i,) for i in range(n_points)]

    sweep = Sweep(
        path=ctx.path, parameters=tuple(params), sampling=sampling, seeds=seeds,
        samples=samples, data=data, base=base, fixed=fixed, points=tuple(points),
        grid_index=tuple(grid_index), network=specials["network"],
        dataset=specials["dataset"], raw=dict(d),
    )
    for pt in points:
        point_config(sweep, pt)  # every point through the chip-file validation
    _check_inputs(ctx, sweep)
    return sweep


def _coerce_list_key(name: str, value: Any, cfg: ChipConfig) -> Any:
    """A number for a list-of-numbers chip key (e.g. ``device.programming.coeffs``) -> [v]."""
    if not _is_num(value):
        return value
    if name.startswith("device.") and name.count(".") == 2:
        sub = name.split(".")[1]
        model = getattr(cfg.device, sub, None)
        if model is not None and isinstance(getattr(model, name.split(".")[2], None), tuple):
            return [value]
    return value


def _coerced(p: Parameter, cfg: ChipConfig) -> Parameter:
    if p.continuous or p.name in SPECIAL_KEYS:
        return p
    return Parameter(p.name, tuple(_coerce_list_key(p.name, v, cfg) for v in p.values))


def _check_inputs(ctx: _Spec, sweep: Sweep) -> None:
    """Network files readable, datasets known and present, networks fit their chips."""
    from mappings.h5format import NetworkFormatError, load_network
    from sim.chip.config import plan_for_chip
    from sim.datasets import DATASETS, DatasetError, find_dataset_dir

    by_name = {p.name: p for p in sweep.parameters}
    networks = list(by_name["network"].values) if "network" in by_name else [sweep.network]
    datasets = list(by_name["dataset"].values) if "dataset" in by_name else [sweep.dataset]
    loaded = {}
    for net in networks:
        try:
            loaded[net] = load_network(net)
        except NetworkFormatError as exc:
            raise ctx.error(f"network: {exc}") from None
    for ds in datasets:
        names = [ds] if ds is not None else [
            n.metadata.get("dataset", "fashion-mnist") for n in loaded.values()
        ]
        for name in names:
            if name not in DATASETS:
                raise ctx.error(f"dataset = {name!r}; expected one of {', '.join(DATASETS)}")
            try:
                for split in ("test", "train"):
                    find_dataset_dir(name, sweep.data, split)
            except DatasetError as exc:
                raise ctx.error(f"dataset: {exc}") from None
    seen = set()
    for pt in sweep.points:
        cfg = point_config(sweep, pt)
        net = pt.get("network", sweep.network)
        m = cfg.mapping
        k = (net, json.dumps(cfg.to_dict()["chip"], sort_keys=True), m.encoding,
             m.activation_bits, m.psum_bits)
        if k in seen:
            continue
        seen.add(k)
        try:
            plan_for_chip(loaded[net], cfg, check=True)
        except ChipConfigError as exc:
            raise SweepSpecError(f"{exc} (network {net})") from None


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a TOML sweep specification."""
    d = read_toml(path, error=SweepSpecError, what="sweep specification")
    return sweep_from_dict(d, str(path))
