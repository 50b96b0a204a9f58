"""Figures of a co-simulated chip: link utilisation over the mesh, a per-core timeline of a
few inferences, the energy breakdown, and the traffic of the network against the dense
baseline. Every figure is written atomically as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mappings.safe_files import atomic_write
from sim.chipnet.cosim import CosimResult
from sim.chipnet.traffic import TrafficComparison
from sim.costs.energy import EnergyReport

__all__ = ["energy_figure", "link_figure", "save_figures", "timeline_figure", "traffic_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120),
                            what="figure")
    finally:
        plt.close(fig)


def link_figure(res: CosimResult, path: Path) -> Path:
    """Heatmaps over the chip: busiest outgoing link per router (flits/cycle) and core busy."""
    plt = _plt()
    links = res.link_utilisation[..., 1:].max(axis=2)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, data, title, label in (
        (axes[0], links, "busiest outgoing link", "flits / cycle"),
        (axes[1], res.core_busy, "core busy", "fraction of cycles"),
    ):
        im = ax.imshow(data, cmap="viridis", origin="upper", vmin=0)
        ax.set_title(title)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    io = divmod(res.trace.io_router, res.trace.grid[1])
    axes[0].plot(io[1], io[0], "r*", markersize=12, label="I/O port")
    axes[0].legend(loc="upper right", fontsize=7)
    fig.suptitle(f"{res.trace.n_inferences} inferences, {res.makespan:,} cycles")
    fig.tight_layout()
    return _save(fig, path)


def timeline_figure(res: CosimResult, path: Path, inferences: int = 3) -> Path:
    """Per-core bars of the tasks of the first ``inferences`` inferences."""
    plt = _plt()
    tr, tim = res.trace, res.timing
    k = min(inferences, tr.n_inferences)
    t = np.arange(k * tr.tasks_per_inference)
    cores = np.unique(tr.task_tile[t])
    row = {c: i for i, c in enumerate(cores)}
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.06 * len(cores) + 2)))
    colors = plt.get_cmap("tab10")
    for i in range(k):
        sel = t[tr.task_inference[t] == i]
        ax.barh([row[c] for c in tr.task_tile[sel]], tim.task_finish[sel] - tim.task_start[sel],
                left=tim.task_start[sel], height=0.8, color=colors(i % 10),
                label=f"inference {i}")
    ax.set_xlabel("cycle")
    ax.set_ylabel("physical core")
    ax.set_title("core timeline (MVM and partial-sum tasks)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def energy_figure(energy: EnergyReport, path: Path) -> Path:
    """Bars of the energy per inference by category."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(energy.pj)
    vals = [energy.pj[n] / 1e3 for n in names]
    ax.bar(names, vals, color="tab:blue")
    ax.set_ylabel("nJ per inference")
    ax.set_title(f"{energy.total_pj / 1e3:,.1f} nJ per inference, {energy.tops_per_w:.2f} TOPS/W")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _save(fig, path)


def traffic_figure(comparison: TrafficComparison, path: Path) -> Path:
    """Bits, packets, flits and bit-hops per inference: the network against the dense
    baseline (log scale)."""
    plt = _plt()
    keys = ("bits", "packets", "flits", "bit_hops")
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    net = [getattr(comparison.network, k) for k in keys]
    den = [getattr(comparison.dense, k) for k in keys]
    ax.bar(x - 0.2, net, 0.4, label="ScRRAMBLe")
    ax.bar(x + 0.2, den, 0.4, label="dense baseline")
    for i, k in enumerate(keys):
        red = comparison.reduction(k)
        if red is not None:
            ax.annotate(f"-{red:.1f} %", (x[i], max(net[i], den[i])), ha="center",
                        va="bottom", fontsize=8)
    ax.set_xticks(x, [k.replace("_", "-") for k in keys])
    ax.set_yscale("log")
    ax.set_ylabel("per inference")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def save_figures(report, directory: Path) -> dict[str, str]:
    """The four figures of a :class:`sim.chipnet.report.ChipRunReport` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "links": str(link_figure(report.cosim, d / "noc_links.png")),
        "timeline": str(timeline_figure(report.cosim, d / "noc_timeline.png")),
        "energy": str(energy_figure(report.energy, d / "noc_energy.png")),
        "traffic": str(traffic_figure(report.traffic, d / "noc_traffic.png")),
    }
