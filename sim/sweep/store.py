"""Sweep results on disk: one JSON file per finished point, and the labelled Dataset.

Layout of a sweep's output directory::

    OUT/spec.toml          the specification (as given)
    OUT/points/KEY.json    one finished point each, written atomically when it completes
    OUT/results.nc         the xarray Dataset (netCDF4 / HDF5, h5netcdf engine), rebuilt
                           from the point files at the end of every run

A point file exists only once its result is complete (temporary file + rename), so an
interrupted sweep leaves finished points and nothing half-written; the rerun skips them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mappings.safe_files import atomic_write
from sim.sweep.evaluate_point import POINT_FORMAT
from sim.sweep.spec import PointTask, Sweep

POINTS_DIR = "points"
RESULTS_NAME = "results.nc"
SPEC_NAME = "spec.toml"
DATASET_FORMAT = "scrramble-sweep"
DATASET_VERSION = 1
SCALAR_METRICS: tuple[str, ...] = (
    "accuracy", "ideal_accuracy", "n_devices", "inter_core_bits", "latency_ns", "energy_pj",
    "seconds",
)


class SweepStoreError(ValueError):
    """An unreadable point file or results file (the message names it)."""


def point_path(out: str | os.PathLike, key: str) -> Path:
    return Path(out) / POINTS_DIR / f"{key}.json"


def write_point(out: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Write one point's result atomically as ``OUT/points/KEY.json``."""
    path = point_path(out, result["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"),
                        error=SweepStoreError, what="sweep point")


def read_point(path: str | os.PathLike) -> dict[str, Any]:
    """One point file, checked."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepStoreError(f"{path}: unreadable sweep point ({exc}); delete it to "
                              "recompute the point") from None
    if not isinstance(d, dict) or d.get("format") != POINT_FORMAT or d.get("key") != path.stem:
        raise SweepStoreError(f"{path}: not a {POINT_FORMAT} file for key {path.stem}")
    return d


def finished_keys(out: str | os.PathLike) -> set[str]:
    """Keys of the points already in ``OUT/points`` (temporary files ignored)."""
    d = Path(out) / POINTS_DIR
    if not d.is_dir():
        return set()
    return {p.stem for p in d.glob("*.json") if not p.name.startswith(".")}


def read_points(out: str | os.PathLike, keys: Iterable[str]) -> dict[str, dict]:
    return {k: read_point(point_path(out, k)) for k in keys}


# ------------------------------------------------------------------------------ dataset


def _coord(values: Sequence[Any]) -> np.ndarray:
    """Coordinate values: numbers, strings, or one-element lists as their number; other
    lists as JSON text."""
    vals = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    if all(isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.float64)
    return np.array([v if isinstance(v, str) else json.dumps(v) for v in vals], dtype=object)


def build_dataset(sweep: Sweep, tasks: Sequence[PointTask], results: Mapping[str, dict]):
    """The labelled results: dims = swept parameters (grid) or ``point`` (random / LHS),
    then ``seed`` (and ``layer`` for the SNRs); missing points are NaN."""
    import xarray as xr

    dims = sweep.dims
    if sweep.sampling == "grid":
        shape = tuple(len(p.values) for p in sweep.parameters) + (len(sweep.seeds),)
        coords: dict[str, Any] = {p.name: _coord(list(p.values)) for p in sweep.parameters}
    else:
        shape = (len(sweep.points), len(sweep.seeds))
        coords = {"point": np.arange(len(sweep.points))}
        for p in sweep.parameters:
            coords[p.name] = ("point", _coord([pt[p.name] for pt in sweep.points]))
    coords["seed"] = np.array(sweep.seeds, dtype=np.int64)
    n_layers = max((len(r["snr_db"]) for r in results.values()), default=0)
    data = {m: np.full(shape, np.nan) for m in SCALAR_METRICS}
    snr = np.full(shape + (n_layers,), np.nan)
    snr_e2e = np.full(shape + (n_layers,), np.nan)
    done = np.zeros(shape, dtype=bool)
    for t in tasks:
        r = results.get(t.key)
        if r is None:
            continue
        done[t.index] = True
        for m in SCALAR_METRICS:
            v = r.get(m)
            data[m][t.index] = np.nan if v is None else v
        for arr, name in ((snr, "snr_db"), (snr_e2e, "snr_db_end_to_end")):
            for j, v in enumerate(r[name]):
                arr[t.index + (j,)] = np.inf if v is None else v
    ds = xr.Dataset(coords=coords)
    units = {"accuracy": "1", "ideal_accuracy": "1", "inter_core_bits": "bit / inference",
             "latency_ns": "ns / inference", "seconds": "s", "n_devices": "1",
             "energy_pj": "pJ / inference"}
    for m in SCALAR_METRICS:
        ds[m] = (dims, data[m], {"units": units[m]})
    ds["snr_db"] = (dims + ("layer",), snr, {"units": "dB", "note": "layer's own error"})
    ds["snr_db_end_to_end"] = (dims + ("layer",), snr_e2e, {"units": "dB"})
    ds["done"] = (dims, done)
    keys = np.full(shape, "", dtype=object)
    for t in tasks:
        keys[t.index] = t.key
    ds["point_key"] = (dims, keys)
    ds.attrs.update({
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "spec": sweep.path,
        "sampling": sweep.sampling,
        "parameters": json.dumps([p.name for p in sweep.parameters]),
        "fixed": json.dumps(sweep.fixed, sort_keys=True),
        "network": json.dumps(sorted({t.network for t in tasks})),
        "dataset": json.dumps(sorted({r["dataset"] for r in results.values()})),
        "n_samples": json.dumps(sorted({r["n_samples"] for r in results.values()})),
        "seeds_note": "seed = chip instance (programming, retention and read-noise seed)",
    })
    return ds


def write_dataset(ds, path: str | os.PathLike) -> Path:
    """Save the Dataset as netCDF4 / HDF5 (h5netcdf engine), atomically."""
    return atomic_write(path, lambda p: ds.to_netcdf(p, engine="h5netcdf"),
                        error=SweepStoreError, what="sweep results")


def load_dataset(path: str | os.PathLike):
    """A sweep's results file (or directory holding ``results.nc``) as an in-memory Dataset."""
    import xarray as xr

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    if not path.is_file():
        raise SweepStoreError(f"{path}: no sweep results (run scrramble-sim sweep first)")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise SweepStoreError(f"{path}: not a readable results file ({exc})") from None
    if ds.attrs.get("format") != DATASET_FORMAT:
        raise SweepStoreError(f"{path}: not a {DATASET_FORMAT} results file")
    return ds


def parameter_names(ds) -> list[str]:
    """The swept parameters recorded in a results Dataset (network / dataset included)."""
    return list(json.loads(ds.attrs["parameters"]))

