"""Figures and tables of a sweep's labelled results (``OUT/results.nc``).

- ``accuracy_vs_<param>.png`` per parameter: mean accuracy with error bars = sample standard
  deviation over seeds (chip instances); one line per combination of the other parameters
  when there are at most :data:`MAX_LINES`, else averaged over them. Random / LHS sweeps: one
  marker per point.
- ``heatmap_<a>__<b>.png`` per pair of grid parameters: mean accuracy over seeds (and the
  other parameters).
- ``summary.md`` and ``summary.csv``: one row per point, accuracy mean ± std over seeds,
  per-layer SNR, inter-core traffic, latency and energy per inference.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mappings.safe_files import atomic_write
from sim.sweep.store import parameter_names

MAX_LINES = 6
MAX_HEATMAPS = 6
LABELS: dict[str, str] = {
    "adc.bits": "ADC resolution (bits)",
    "dac.bits": "DAC resolution (bits)",
    "device.programming.coeffs": "programming error (sigma coefficient)",
    "device.read.coeffs": "read noise (sigma coefficient)",
    "retention.time_s": "time after programming (s)",
    "mapping.activation_bits": "activation bits between cores",
    "mapping.encoding": "weight encoding",
    "device.preset": "device preset",
}


def label(name: str) -> str:
    """Axis label of a parameter."""
    return LABELS.get(name, name)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _values(ds, name: str) -> list:
    return [v.item() if hasattr(v, "item") else v for v in ds[name].values]


def _mean_std(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nan-aware mean, sample std (ddof 1; 0 for one value) and count along ``axis``."""
    n = np.sum(np.isfinite(a), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(a, axis=axis) / np.where(n > 0, n, 1)
        mean = np.where(n > 0, mean, np.nan)
        dev = np.where(np.isfinite(a), a - np.expand_dims(mean, axis), 0.0)
        var = np.sum(dev * dev, axis=axis) / np.where(n > 1, n - 1, 1)
    return mean, np.where(n > 1, np.sqrt(var), 0.0), n


# ------------------------------------------------------------------------------ tables


def summary_rows(ds) -> list[dict[str, Any]]:
    """One row per point: parameter values, seeds done, accuracy mean / std, float accuracy,
    per-layer SNR (mean over seeds), inter-core bits and latency."""
    params = parameter_names(ds)
    acc = ds["accuracy"].values
    n_layers = ds.sizes.get("layer", 0)
    grid = "point" not in ds.dims
    if grid:
        shape = acc.shape[:-1]
        index = list(itertools.product(*(range(s) for s in shape)))
    else:
        index = [(i,) for i in range(acc.shape[0])]
    rows = []
    for ix in index:
        a = acc[ix]
        mean, std, n = _mean_std(a[None], axis=1)
        row: dict[str, Any] = {}
        for j, p in enumerate(params):
            v = ds[p].values[ix[j]] if grid else ds[p].values[ix[0]]
            row[p] = v.item() if hasattr(v, "item") else v
        snr = ds["snr_db"].values[ix]  # (seed, layer)
        row.update({
            "n_seeds": int(n[0]),
            "accuracy_mean": float(mean[0]),
            "accuracy_std": float(std[0]),
            "float_accuracy": float(np.nanmean(ds["ideal_accuracy"].values[ix]))
            if np.any(np.isfinite(ds["ideal_accuracy"].values[ix])) else math.nan,
            "snr_db": [
                float(np.mean(snr[np.isfinite(snr[:, k]) | np.isinf(snr[:, k]), k]))
                if np.any(~np.isnan(snr[:, k])) else math.nan
                for k in range(n_layers)
            ],
            "inter_core_bits": float(np.nanmax(ds["inter_core_bits"].values[ix]))
            if np.any(np.isfinite(ds["inter_core_bits"].values[ix])) else math.nan,
            "latency_ns": float(np.nanmax(ds["latency_ns"].values[ix]))
            if np.any(np.isfinite(ds["latency_ns"].values[ix])) else math.nan,
            "energy_pj": float(np.nanmean(ds["energy_pj"].values[ix]))
            if "energy_pj" in ds and np.any(np.isfinite(ds["energy_pj"].values[ix]))
            else math.nan,
        })
        rows.append(row)
    return rows


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _pct(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{100 * v:.2f}"


def _db(v: float) -> str:
    if math.isnan(v):
        return "–"
    return "inf" if math.isinf(v) else f"{v:.1f}"


def markdown_summary(ds, rows: list[dict] | None = None) -> str:
    """The summary table as Markdown (accuracy in %)."""
    rows = summary_rows(ds) if rows is None else rows
    params = parameter_names(ds)
    n_layers = ds.sizes.get("layer", 0)
    seeds = [int(s) for s in ds["seed"].values]
    head = (
        f"Accuracy (%) per point: mean ± sample std over {len(seeds)} chip instance(s) "
        f"(seeds {', '.join(map(str, seeds))}); {_samples_note(ds)}. SNR: each layer's own "
        f"error, dB, mean over seeds."
    )
    cols = [*params, "accuracy (%)", "seeds", "float (%)",
            *(f"SNR L{k} (dB)" for k in range(n_layers)), "inter-core bits", "latency (ns)",
            "energy (nJ)"]
    lines = [head, "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(params) + "---:|" * (len(cols) - len(params))]
    for r in rows:
        acc = (f"{_pct(r['accuracy_mean'])} ± {_pct(r['accuracy_std'])}"
               if r["n_seeds"] > 1 else _pct(r["accuracy_mean"]))
        cells = [_fmt_value(r[p]) for p in params] + [
            acc, str(r["n_seeds"]), _pct(r["float_accuracy"]),
            *(_db(v) for v in r["snr_db"]),
            "–" if math.isnan(r["inter_core_bits"]) else f"{r['inter_core_bits']:,.0f}",
            "–" if math.isnan(r["latency_ns"]) else f"{r['latency_ns']:g}",
            "–" if math.isnan(r["energy_pj"]) else f"{r['energy_pj'] / 1e3:,.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _samples_note(ds) -> str:
    n = json.loads(ds.attrs.get("n_samples", "[]"))
    data = json.loads(ds.attrs.get("dataset", "[]"))
    what = " / ".join(map(str, n)) or "?"
    return f"{what} test images of {', '.join(data) or 'the dataset'}"


def summary_csv(ds, rows: list[dict] | None = None) -> str:
    """The summary table as CSV (accuracy as a fraction)."""
    rows = summary_rows(ds) if rows is None else rows
    params = parameter_names(ds)
    n_layers = ds.sizes.get("layer", 0)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*params, "n_seeds", "accuracy_mean", "accuracy_std", "float_accuracy",
                *(f"snr_db_layer{k}" for k in range(n_layers)), "inter_core_bits",
                "latency_ns", "energy_pj"])
    for r in rows:
        w.writerow([r[p] for p in params] + [
            r["n_seeds"], f"{r['accuracy_mean']:.6f}", f"{r['accuracy_std']:.6f}",
            f"{r['float_accuracy']:.6f}", *(f"{v:.4f}" for v in r["snr_db"]),
            f"{r['inter_core_bits']:.0f}", f"{r['latency_ns']:g}", f"{r['energy_pj']:.1f}",
        ])
    return buf.getvalue()


# ------------------------------------------------------------------------------ figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _positions(values: list) -> tuple[list, list | None]:
    """x positions of coordinate values (numbers as they are, others as 0..n-1 + labels)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return list(values), None
    return list(range(len(values))), [str(v) for v in values]


def _float_line(ax, ds) -> None:
    f = ds["ideal_accuracy"].values
    f = f[np.isfinite(f)]
    if f.size and np.allclose(f, f[0]):
        ax.axhline(100 * f[0], color="black", linestyle="--", linewidth=1,
                   label=f"float ({100 * f[0]:.2f} %)")


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    try:
        fig.tight_layout()
        atomic_write(path, lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)
    return path


def plot_parameter(ds, name: str, path: str | os.PathLike) -> Path:
    """Accuracy against parameter ``name`` with error bars over seeds (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    params = parameter_names(ds)
    acc = 100 * ds["accuracy"]
    n_seeds = ds.sizes["seed"]
    if "point" in ds.dims:  # random / LHS: one marker per point
        x, ticks = _positions(_values(ds, name))
        mean, std, _ = _mean_std(acc.values, axis=1)
        ax.errorbar(x, mean, yerr=std, fmt="o", capsize=3, label="points")
    else:
        others = [p for p in params if p != name]
        combos = int(np.prod([ds.sizes[p] for p in others])) if others else 1
        x, ticks = _positions(_values(ds, name))
        if combos > MAX_LINES:  # average over the other parameters, per seed
            a = acc.mean(dim=others).transpose(name, "seed").values
            mean, std, _ = _mean_std(a, axis=1)
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3,
                        label=f"mean over {', '.join(others)}")
        else:
            markers = "osD^vP*X"
            sel_lists = [[(p, i) for i in range(ds.sizes[p])] for p in others]
            for k, sel in enumerate(itertools.product(*sel_lists)):
                sub = acc.isel({p: i for p, i in sel}).transpose(name, "seed").values
                mean, std, _ = _mean_std(sub, axis=1)
                dodge = 0.0
                if ticks is None and len(x) > 1:
                    dodge = 0.01 * (max(x) - min(x)) * (k - (combos - 1) / 2)
                lab = ", ".join(f"{p} = {_fmt_value(_values(ds, p)[i])}" for p, i in sel)
                ax.errorbar([v + dodge for v in x], mean, yerr=std,
                            marker=markers[k % len(markers)], capsize=3, label=lab or None)
    _float_line(ax, ds)
    if ticks is not None:
        ax.set_xticks(x, ticks)
    elif all(isinstance(v, int) for v in x):
        ax.set_xticks(x)
    ax.set_xlabel(label(name))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{_samples_note(ds)}; error bars: std over {n_seeds} chip instance(s)",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _save(fig, Path(path))


def plot_heatmap(ds, a: str, b: str, path: str | os.PathLike) -> Path:
    """Mean accuracy over seeds (and the other parameters) on the (a, b) grid (PNG)."""
    plt = _pyplot()
    others = [p for p in ds["accuracy"].dims if p not in (a, b)]
    m = (100 * ds["accuracy"]).mean(dim=others, skipna=True).transpose(a, b).values
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=150)
    im = ax.imshow(m, origin="lower", aspect="auto", cmap="viridis")
    va, vb = _values(ds, a), _values(ds, b)
    ax.set_yticks(range(len(va)), [_fmt_value(v) for v in va])
    ax.set_xticks(range(len(vb)), [_fmt_value(v) for v in vb])
    ax.set_ylabel(label(a))
    ax.set_xlabel(label(b))
    finite = m[np.isfinite(m)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < mid else "black")
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    ax.set_title(f"mean over {ds.sizes['seed']} chip instance(s); {_samples_note(ds)}",
                 fontsize=9)
    return _save(fig, Path(path))


def write_report(ds, out: str | os.PathLike) -> dict[str, Any]:
    """Every figure and both summary tables into directory ``out``; their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(ds)
    md = markdown_summary(ds, rows)
    paths: dict[str, Any] = {
        "summary_md": atomic_write(out / "summary.md", lambda p: p.write_text(md)),
        "summary_csv": atomic_write(
            out / "summary.csv", lambda p: p.write_text(summary_csv(ds, rows))
        ),
        "figures": [],
        "heatmaps": [],
    }
    params = parameter_names(ds)
    for p in params:
        paths["figures"].append(plot_parameter(ds, p, out / f"accuracy_vs_{_slug(p)}.png"))
    if "point" not in ds.dims:
        numeric = [p for p in params if ds.sizes[p] > 1]
        for a, b in list(itertools.combinations(numeric, 2))[:MAX_HEATMAPS]:
            paths["heatmaps"].append(
                plot_heatmap(ds, a, b, out / f"heatmap_{_slug(a)}__{_slug(b)}.png")
            )
    return paths
