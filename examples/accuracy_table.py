"""Accuracy of a trained network on the virtual chip: device preset x ADC bits x chip instance.

For every device preset, ADC resolution and seed (an independently programmed chip instance)
the network is programmed onto the packaged default chip (or ``--chip FILE``) with that preset
and converter resolution (:func:`sim.chip.programming.program_chip`), the converters are calibrated on training
images and the test split is simulated (:func:`sim.chip.functional.simulate`). One more
configuration, the *ideal chip* (``ideal`` devices, 16-bit DAC and ADC, float activations),
checks that the chip model reproduces the float accuracy.

    python examples/accuracy_table.py NET.h5 [--presets ideal rram_wan2022 ...]
        [--adc-bits 4 6 8] [--dac-bits 8] [--encoding single] [--seeds 0 1 2] [--limit N]
        [--dataset fashion-mnist] [--data DIR] [--calibration-samples 512]
        [--chip FILE] [--out runs/accuracy_table] [--threads 1]

Outputs in ``--out`` (each written atomically): ``accuracy_table.md`` (rows = presets, columns
= ADC bits, cells mean +- std over seeds in %, the float accuracy in the caption, plus the
per-layer SNR), ``accuracy_table.csv`` (one row per preset x bits), ``accuracy_table.h5`` (the
raw per-seed results and every chip configuration), ``accuracy_vs_adc.png`` and
``results.json``, the resume file: a configuration whose key (network fingerprint, data
fingerprint, full chip configuration, seed) is already there is not simulated again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devices.converters import MAX_BITS
from devices.presets import PRESETS
from mappings.encodings import ENCODINGS
from mappings.network import Network
from mappings.safe_files import atomic_write
from sim.chip.config import ChipConfig, default_chip_config, load_chip_config
from sim.chip.functional import simulate
from sim.chip.programming import age, network_fingerprint, program_chip

DEFAULT_PRESETS: tuple[str, ...] = (
    "ideal",
    "rram_wan2022",
    "rram_ibm_hfox",
    "rram_milo2021",
    "pcm_joshi2020",
)
DEFAULT_ADC_BITS: tuple[int, ...] = (4, 6, 8)
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
DEFAULT_OUT = Path("runs/accuracy_table")
IDEAL_CHIP_BITS = 16  # DAC and ADC bits of the ideal chip (activations float: bits 0)

RESULTS_NAME = "results.json"
MARKDOWN_NAME = "accuracy_table.md"
CSV_NAME = "accuracy_table.csv"
H5_NAME = "accuracy_table.h5"
FIGURE_NAME = "accuracy_vs_adc.png"
RESULTS_FORMAT = "scrramble-accuracy-table"
RESULTS_VERSION = 1


class AccuracyTableError(ValueError):
    """Invalid grid arguments or an unreadable results file (the message names which)."""


# ------------------------------------------------------------------------------ grid


@dataclass(frozen=True)
class GridPoint:
    """One chip configuration and programming / simulation seed."""

    preset: str
    adc_bits: int
    dac_bits: int
    activation_bits: int
    seed: int
    ideal_chip: bool = False

    @property
    def label(self) -> str:
        return "ideal chip" if self.ideal_chip else self.preset

    def config(self, base: ChipConfig, encoding: str, calibration_samples: int) -> ChipConfig:
        """``base`` with this point's device preset and converter / activation bits."""
        return base.replace(
            device={"preset": self.preset},
            dac={"bits": self.dac_bits},
            adc={"bits": self.adc_bits},
            mapping={"encoding": encoding, "activation_bits": self.activation_bits},
            simulation={"calibration_samples": calibration_samples},
        )


def _int_list(values: Iterable[Any], name: str, lo: int, hi: int | None) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise AccuracyTableError(f"{name}: {v!r} is not an integer")
        if v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise AccuracyTableError(f"{name}: {v} is out of range; expected {rng}")
        out.append(int(v))
    if not out:
        raise AccuracyTableError(f"{name}: give at least one value")
    if len(set(out)) != len(out):
        raise AccuracyTableError(f"{name}: repeated values in {out}")
    return tuple(out)


def check_presets(presets: Iterable[str]) -> tuple[str, ...]:
    """The preset names, validated against :data:`devices.presets.PRESETS`."""
    out = tuple(presets)
    if not out:
        raise AccuracyTableError("presets: give at least one device preset")
    for p in out:
        if p not in PRESETS:
            raise AccuracyTableError(
                f"presets: unknown device preset {p!r}; choose from {', '.join(PRESETS)}"
            )
    if len(set(out)) != len(out):
        raise AccuracyTableError(f"presets: repeated names in {list(out)}")
    return out


def grid_points(
    presets: Sequence[str],
    adc_bits: Sequence[int],
    seeds: Sequence[int],
    *,
    dac_bits: int,
    activation_bits: int,
    ideal_chip: bool = True,
) -> list[GridPoint]:
    """The ideal-chip points first (one per seed), then preset x ADC bits x seed."""
    points = []
    if ideal_chip:
        points += [
            GridPoint("ideal", IDEAL_CHIP_BITS, IDEAL_CHIP_BITS, 0, s, ideal_chip=True)
            for s in seeds
        ]
    points += [
        GridPoint(p, b, dac_bits, activation_bits, s)
        for p in presets
        for b in adc_bits
        for s in seeds
    ]
    return points


def data_fingerprint(test_x: np.ndarray, test_y: np.ndarray, calibration_x: np.ndarray) -> str:
    """SHA-256 of the test samples, labels and calibration samples (as float32 / int64)."""
    h = hashlib.sha256()
    for name, a, dtype in (
        ("x", test_x, np.float32),
        ("y", test_y, np.int64),
        ("cal", calibration_x, np.float32),
    ):
        a = np.ascontiguousarray(a, dtype=dtype)
        h.update(f"{name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def record_key(net_fp: str, data_fp: str, config: ChipConfig, seed: int) -> str:
    """Resume key of one result: everything that determines it."""
    blob = json.dumps(
        {"network": net_fp, "data": data_fp, "config": config.to_dict(), "seed": int(seed)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _finite_or_none(v: Any) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def run_grid(
    network: Network,
    presets: Sequence[str],
    adc_bits: Sequence[int],
    seeds: Sequence[int],
    *,
    test_x: np.ndarray,
    test_y: np.ndarray,
    calibration_x: np.ndarray,
    base_config: ChipConfig | None = None,
    dac_bits: int = 8,
    encoding: str = "single",
    calibration_samples: int | None = None,
    ideal_chip: bool = True,
    done: Mapping[str, dict] | None = None,
    on_result: Callable[[dict], None] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Program and simulate every grid point; one result dict per point, in grid order.

    ``base_config`` (default: the packaged default chip) supplies everything (including
    ``[retention] time_s``: each instance is aged that long) but the device preset, DAC / ADC bits, encoding and calibration sample count (default: the base's). The
    activation bits between cores are the base's, except on the ideal chip (float). Points
    whose key is in ``done`` are taken from there instead of being simulated; ``on_result``
    is called with each newly computed result. ``progress``: a tqdm bar on stderr.
    """
    presets = check_presets(presets)
    adc_bits = _int_list(adc_bits, "adc_bits", 1, MAX_BITS)
    seeds = _int_list(seeds, "seeds", 0, None)
    (dac_bits,) = _int_list([dac_bits], "dac_bits", 2, MAX_BITS)
    if encoding not in ENCODINGS:
        raise AccuracyTableError(f"encoding: {encoding!r}; choose from {', '.join(ENCODINGS)}")
    base = default_chip_config() if base_config is None else base_config
    if calibration_samples is None:
        n_cal = base.simulation.calibration_samples
    else:
        (n_cal,) = _int_list([calibration_samples], "calibration_samples", 1, None)
    calibration_x = np.asarray(calibration_x, dtype=np.float32)[:n_cal]
    if calibration_x.shape[0] == 0:
        raise AccuracyTableError("calibration_x: no calibration samples")
    test_x = np.asarray(test_x, dtype=np.float32)
    test_y = np.asarray(test_y)
    done = {} if done is None else done

    net_fp = network_fingerprint(network)
    data_fp = data_fingerprint(test_x, test_y, calibration_x)
    points = grid_points(
        presets, adc_bits, seeds, dac_bits=dac_bits,
        activation_bits=base.mapping.activation_bits, ideal_chip=ideal_chip,
    )
    from tqdm import tqdm

    results = []
    bar = tqdm(total=len(points), desc="configurations", unit="cfg", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    images = tqdm(total=len(test_x), desc="  test images", unit="img", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True, position=1, leave=False)
    with bar, images:
        for pt in points:
            cfg = pt.config(base, encoding, n_cal)
            key = record_key(net_fp, data_fp, cfg, pt.seed)
            bar.set_postfix_str(f"{pt.label} ADC {pt.adc_bits} seed {pt.seed}")
            if key in done:
                results.append(dict(done[key]))
                bar.update()
                continue
            t0 = time.perf_counter()
            images.reset()
            images.set_postfix_str("programming")
            instance = program_chip(network, cfg, pt.seed)
            if cfg.retention.time_s > 0:  # the base chip's read time
                instance = age(instance, cfg.retention.time_s, pt.seed)
            images.set_postfix_str("calibrating and simulating")
            res = simulate(
                network, instance, test_x, labels=test_y, seed=pt.seed, config=cfg,
                calibration=calibration_x, progress=lambda n: images.update(n - images.n),
            )
            rec = {
                "key": key,
                "label": pt.label,
                "preset": pt.preset,
                "ideal_chip": pt.ideal_chip,
                "adc_bits": pt.adc_bits,
                "dac_bits": pt.dac_bits,
                "activation_bits": pt.activation_bits,
                "encoding": encoding,
                "seed": pt.seed,
                "age_s": res.age_s,
                "n_samples": res.n_samples,
                "calibration_samples": res.calibration_samples,
                "accuracy": res.accuracy,
                "ideal_accuracy": res.ideal_accuracy,
                "snr_db": [_finite_or_none(v) for v in res.snr_db or ()],
                "snr_db_end_to_end": [_finite_or_none(v) for v in res.snr_db_end_to_end or ()],
                "seconds": time.perf_counter() - t0,
                "network_fingerprint": net_fp,
                "data_fingerprint": data_fp,
                "config": cfg.to_dict(),
            }
            results.append(rec)
            if on_result is not None:
                on_result(rec)
            bar.update()
    return results


# ------------------------------------------------------------------------------ summary


def _nanmean(values: Sequence[float | None]) -> float | None:
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def summarize(records: Sequence[dict]) -> list[dict]:
    """Group results by (label, ADC, DAC, activation bits), in order of first appearance:
    n_seeds, accuracy mean and sample std (ddof 1; 0 for one seed), float accuracy, mean
    per-layer SNR (dB; layer's own error and end-to-end)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        k = (r["label"], r["adc_bits"], r["dac_bits"], r["activation_bits"])
        groups.setdefault(k, []).append(r)
    out = []
    for (label, adc, dac, act), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs], dtype=np.float64)
        n_layers = max(len(r["snr_db"]) for r in rs)
        out.append(
            {
                "label": label,
                "preset": rs[0]["preset"],
                "ideal_chip": rs[0]["ideal_chip"],
                "adc_bits": adc,
                "dac_bits": dac,
                "activation_bits": act,
                "encoding": rs[0]["encoding"],
                "n_samples": rs[0]["n_samples"],
                "seeds": [r["seed"] for r in rs],
                "n_seeds": len(rs),
                "accuracy_mean": float(acc.mean()),
                "accuracy_std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
                "float_accuracy": rs[0]["ideal_accuracy"],
                "snr_db": [_nanmean([r["snr_db"][i] for r in rs]) for i in range(n_layers)],
                "snr_db_end_to_end": [
                    _nanmean([r["snr_db_end_to_end"][i] for r in rs]) for i in range(n_layers)
                ],
            }
        )
    return out


def float_accuracy(records: Sequence[dict]) -> float:
    """The float (software) accuracy on the simulated samples (the same in every result)."""
    values = {r["ideal_accuracy"] for r in records if r["ideal_accuracy"] is not None}
    if not values:
        raise AccuracyTableError("no result holds a float (ideal) accuracy")
    if len(values) > 1:
        raise AccuracyTableError(
            f"results disagree on the float accuracy ({sorted(values)}): mixed networks or data"
        )
    return values.pop()


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _cell(s: dict) -> str:
    if s["n_seeds"] > 1:
        return f"{_pct(s['accuracy_mean'])} ± {_pct(s['accuracy_std'])}"
    return _pct(s["accuracy_mean"])


def _db(v: float | None) -> str:
    return "inf" if v is None else f"{v:.1f}"


def markdown_table(
    records: Sequence[dict], *, title: str = "", chip: str = "the packaged default chip"
) -> str:
    """Markdown: accuracy table (rows presets, columns ADC bits) with the float accuracy and
    the ideal chip in the caption, then the per-layer SNR table."""
    summary = summarize(records)
    grid = [s for s in summary if not s["ideal_chip"]]
    ideal = [s for s in summary if s["ideal_chip"]]
    f_acc = float_accuracy(records)
    bits = sorted({s["adc_bits"] for s in grid})
    rows = list(dict.fromkeys(s["label"] for s in grid))
    cell = {(s["label"], s["adc_bits"]): s for s in grid}
    seeds = sorted({r["seed"] for r in records})
    any_s = (grid or ideal)[0]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    spread = "mean ± std (sample, ddof 1) over" if len(seeds) > 1 else "one chip instance,"
    lines.append(
        f"Test accuracy (%) on the virtual chip, {any_s['n_samples']} test images; "
        f"{spread} seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} "
        f"(independently programmed chip instances). "
        f"DAC {any_s['dac_bits']}-bit, activations between cores "
        f"{grid[0]['activation_bits'] if grid else 0}-bit, '{any_s['encoding']}' encoding, "
        f"ADCs calibrated on {records[0]['calibration_samples']} training images; everything "
        f"else as in {chip}. **Float (software) accuracy: {_pct(f_acc)} %.**"
    )
    lines.append("")
    if grid:
        lines.append("| device preset | " + " | ".join(f"ADC {b} bit" for b in bits) + " |")
        lines.append("|---|" + "---:|" * len(bits))
        for row in rows:
            cells = [_cell(cell[row, b]) if (row, b) in cell else "–" for b in bits]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    for s in ideal:
        diff = 100 * (s["accuracy_mean"] - f_acc)
        lines.append(
            f"Ideal chip (`ideal` devices, {s['dac_bits']}-bit DAC and {s['adc_bits']}-bit ADC, "
            f"float activations): {_cell(s)} %, {diff:+.2f} points from the float accuracy."
        )
        lines.append("")
    if grid:
        n_layers = len(grid[0]["snr_db"])
        lines.append(
            "Per-layer SNR in dB (mean over seeds; each layer's own error, "
            + " / ".join(f"L{i}" for i in range(n_layers))
            + "):"
        )
        lines.append("")
        lines.append("| device preset | " + " | ".join(f"ADC {b} bit" for b in bits) + " |")
        lines.append("|---|" + "---:|" * len(bits))
        for row in rows:
            cells = [
                " / ".join(_db(v) for v in cell[row, b]["snr_db"]) if (row, b) in cell else "–"
                for b in bits
            ]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ I/O


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def load_results(path: Path) -> dict[str, dict]:
    """The resume file's results by key ({} when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AccuracyTableError(f"{path}: cannot read results file: {exc}") from None
    if not isinstance(d, dict) or d.get("format") != RESULTS_FORMAT:
        raise AccuracyTableError(f"{path}: not a {RESULTS_FORMAT} results file")
    if d.get("version") != RESULTS_VERSION:
        raise AccuracyTableError(
            f"{path}: results version {d.get('version')!r}; expected {RESULTS_VERSION}"
        )
    results = d.get("results")
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and isinstance(r.get("key"), str) for r in results
    ):
        raise AccuracyTableError(f"{path}: 'results' must be a list of objects with a 'key'")
    return {r["key"]: r for r in results}


def save_results(path: Path, results: Mapping[str, dict]) -> Path:
    """Write the resume file (atomically)."""
    d = {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, "results": list(results.values())}
    return _write_text(Path(path), json.dumps(d, indent=1, allow_nan=False) + "\n")


CSV_FIELDS = (
    "label", "preset", "ideal_chip", "adc_bits", "dac_bits", "activation_bits", "encoding",
    "n_samples", "n_seeds", "seeds", "accuracy_mean", "accuracy_std", "float_accuracy",
)


def write_csv(path: Path, records: Sequence[dict]) -> Path:
    """One row per configuration (mean / std over seeds), per-layer SNR columns appended."""
    summary = summarize(records)
    n_layers = max((len(s["snr_db"]) for s in summary), default=0)
    header = list(CSV_FIELDS)
    header += [f"snr_db_layer{i}" for i in range(n_layers)]
    header += [f"snr_db_end_to_end_layer{i}" for i in range(n_layers)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for s in summary:
        row = [s[k] if k != "seeds" else " ".join(map(str, s[k])) for k in CSV_FIELDS]
        for name in ("snr_db", "snr_db_end_to_end"):
            vals = list(s[name]) + [None] * (n_layers - len(s[name]))
            row += ["" if v is None else f"{v:.4f}" for v in vals]
        w.writerow(row)
    return _write_text(Path(path), buf.getvalue())


def write_h5(path: Path, records: Sequence[dict], meta: Mapping[str, Any]) -> Path:
    """Raw per-seed results (one row per record) and each record's chip configuration."""
    import h5py

    n = len(records)
    n_layers = max((len(r["snr_db"]) for r in records), default=0)

    def snr(name: str) -> np.ndarray:
        a = np.full((n, n_layers), np.nan)
        for i, r in enumerate(records):
            for j, v in enumerate(r[name]):
                a[i, j] = np.inf if v is None else v
        return a

    def write(p: Path) -> None:
        s = h5py.string_dtype()
        with h5py.File(p, "w") as f:
            f.attrs["format"] = RESULTS_FORMAT
            f.attrs["version"] = RESULTS_VERSION
            f.attrs["meta_json"] = json.dumps(meta, sort_keys=True)
            f.attrs["float_accuracy"] = float_accuracy(records) if records else np.nan
            g = f.create_group("results")
            for k in ("key", "label", "preset", "encoding"):
                g.create_dataset(k, data=np.array([r[k] for r in records], dtype=object), dtype=s)
            for k in ("adc_bits", "dac_bits", "activation_bits", "seed", "n_samples",
                      "calibration_samples"):
                g.create_dataset(k, data=np.array([r[k] for r in records], dtype=np.int64))
            g.create_dataset("ideal_chip", data=np.array([r["ideal_chip"] for r in records]))
            for k in ("accuracy", "ideal_accuracy", "seconds"):
                g.create_dataset(k, data=np.array([r[k] for r in records], dtype=np.float64))
            g.create_dataset("snr_db", data=snr("snr_db"))
            g.create_dataset("snr_db_end_to_end", data=snr("snr_db_end_to_end"))
            cfg = [json.dumps(r["config"], sort_keys=True) for r in records]
            g.create_dataset("config_json", data=np.array(cfg, dtype=object), dtype=s)
            g.attrs["snr_note"] = "dB; +inf = identical to the ideal layer (no error)"

    return atomic_write(Path(path), write)


def plot_accuracy(
    path: Path, records: Sequence[dict], *, title: str = "", subject: str = ""
) -> Path:
    """Accuracy vs ADC bits, one line per preset (error bars: std over seeds), the float
    accuracy dashed (PNG, Agg backend). Default title: ``subject``, samples and seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = [s for s in summarize(records) if not s["ideal_chip"]]
    f_acc = float_accuracy(records)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
    try:
        labels = list(dict.fromkeys(s["label"] for s in summary))
        markers = "osD^vP*X"
        bits = sorted({s["adc_bits"] for s in summary})
        gap = min(np.diff(bits), default=1)
        for i, label in enumerate(labels):
            pts = sorted((s for s in summary if s["label"] == label), key=lambda s: s["adc_bits"])
            dodge = 0.04 * gap * (i - (len(labels) - 1) / 2)  # keep equal points apart
            ax.errorbar(
                [s["adc_bits"] + dodge for s in pts],
                [100 * s["accuracy_mean"] for s in pts],
                yerr=[100 * s["accuracy_std"] for s in pts],
                marker=markers[i % len(markers)], capsize=3, linewidth=1.5, label=label,
            )
        ax.axhline(100 * f_acc, color="black", linestyle="--", linewidth=1,
                   label=f"float ({100 * f_acc:.2f} %)")
        ax.set_xticks(bits)
        ax.set_xlabel("ADC resolution (bits)")
        ax.set_ylabel("test accuracy (%)")
        n_seeds = len({r["seed"] for r in records})
        spread = (f"mean ± std over {n_seeds} chip instances" if n_seeds > 1
                  else "one chip instance")
        auto = (f"{records[0]['n_samples']} test images, {spread}, "
                f"DAC {records[-1]['dac_bits']} bit")
        ax.set_title(title or (f"{subject}\n{auto}" if subject else auto), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        atomic_write(Path(path), lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)
    return Path(path)


def write_outputs(out: Path, records: Sequence[dict], meta: Mapping[str, Any]) -> dict[str, Path]:
    """Markdown table, CSV, HDF5 and PNG for ``records`` in directory ``out``."""
    out = Path(out)
    text = markdown_table(
        records, title=meta.get("title", ""), chip=meta.get("chip", "the packaged default chip")
    )
    subject = ", ".join(
        str(v) for v in (Path(meta["network"]).name if "network" in meta else None,
                         meta.get("dataset")) if v
    )
    return {
        "markdown": _write_text(out / MARKDOWN_NAME, text + "\n"),
        "csv": write_csv(out / CSV_NAME, records),
        "h5": write_h5(out / H5_NAME, records, meta),
        "figure": plot_accuracy(out / FIGURE_NAME, records, subject=subject),
    }


# ------------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Accuracy of a trained network on the virtual chip: device preset x ADC "
        "bits x chip seed, as a markdown table, CSV, HDF5 and figure."
    )
    ap.add_argument("network", metavar="NET.h5", type=Path, help="trained network (HDF5)")
    ap.add_argument("--chip", type=Path, default=None, metavar="FILE",
                    help="base chip file (TOML; default: the packaged default chip)")
    ap.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), metavar="NAME",
                    help=f"device presets (default: {' '.join(DEFAULT_PRESETS)})")
    ap.add_argument("--adc-bits", nargs="+", type=int, default=list(DEFAULT_ADC_BITS),
                    metavar="B", help="ADC resolutions (default: 4 6 8)")
    ap.add_argument("--dac-bits", type=int, default=8, help="DAC resolution (default: 8)")
    ap.add_argument("--encoding", choices=ENCODINGS, default="single",
                    help="weight encoding (default: single)")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), metavar="S",
                    help="chip seeds: independent programmed instances (default: 0 1 2)")
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="simulate only the first N test images")
    ap.add_argument("--dataset", default=None,
                    help="dataset (default: the network's metadata, else fashion-mnist)")
    ap.add_argument("--data", type=Path, default=None, metavar="DIR",
                    help="directory with the IDX files (default: $SCRRAMBLE_DATA, then "
                    "/usr/share/datasets/<dataset>)")
    ap.add_argument("--calibration-samples", type=int, default=512, metavar="N",
                    help="training images used to calibrate the converters (default: 512)")
    ap.add_argument("--no-ideal-chip", action="store_true",
                    help="skip the ideal-chip row (ideal devices, 16-bit converters)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output directory (default: {DEFAULT_OUT})")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS and Numba threads (default: 1)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except ValueError as exc:  # every library error is a ValueError subclass with a message
        print(f"accuracy_table: error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from mappings.h5format import load_network
    from sim.datasets import DATASETS, load_dataset

    for name in ("limit", "calibration_samples", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise AccuracyTableError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    check_presets(args.presets)
    base = default_chip_config() if args.chip is None else load_chip_config(args.chip)
    network = load_network(args.network)
    dataset = args.dataset or network.metadata.get("dataset", "fashion-mnist")
    if dataset not in DATASETS:
        raise AccuracyTableError(f"--dataset {dataset!r}: choose from {', '.join(DATASETS)}")
    test_x, test_y = load_dataset(dataset, args.data, "test")
    train_x, _ = load_dataset(dataset, args.data, "train")
    if args.limit is not None:
        test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    calibration_x = train_x[: args.calibration_samples]
    del train_x

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_NAME
    stored = load_results(results_path)
    before = set(stored)

    def keep(rec: dict) -> None:
        stored[rec["key"]] = rec
        save_results(results_path, stored)

    import numba
    from threadpoolctl import threadpool_limits

    numba_threads = numba.get_num_threads()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.perf_counter()
    try:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            records = run_grid(
                network, args.presets, args.adc_bits, args.seeds,
                test_x=test_x, test_y=test_y, calibration_x=calibration_x, base_config=base,
                dac_bits=args.dac_bits, encoding=args.encoding,
                calibration_samples=args.calibration_samples,
                ideal_chip=not args.no_ideal_chip, done=stored, on_result=keep,
                progress=not args.no_progress,
            )
    finally:
        numba.set_num_threads(numba_threads)
    wall = time.perf_counter() - t0
    meta = {
        "network": str(args.network),
        "dataset": dataset,
        "split": "test",
        "n_test": int(test_x.shape[0]),
        "calibration": f"first {calibration_x.shape[0]} {dataset} training images",
        "presets": list(args.presets),
        "adc_bits": list(args.adc_bits),
        "dac_bits": args.dac_bits,
        "encoding": args.encoding,
        "seeds": list(args.seeds),
        "chip": f"chip file {args.chip}" if args.chip else "the packaged default chip",
        "base_config": base.to_dict(),
        "threads": args.threads,
    }
    paths = write_outputs(out, records, meta)
    computed = sum(r["seconds"] for r in records)
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(
        f"{len(records)} configurations ({sum(1 for r in records if r['key'] in before)} reused from {results_path}); "
        f"this run {wall:.1f} s, simulation time of all results {computed:.1f} s; "
        f"outputs in {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
