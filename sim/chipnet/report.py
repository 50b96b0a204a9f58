"""One call from a network and a chip to the co-simulated chip report (the ``noc NET.h5``
command's Python API): program the chip (its placement comes with the instance), stream
inferences through the packet network, and report timing, energy, area and traffic against
the dense baseline (also co-simulated, on the smallest square mesh that holds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.chipnet.cosim import CosimResult, cosimulate, noc_config_for, with_multicast
from sim.chipnet.trace import ChipTrace, TraceError, build_inference_trace
from sim.chipnet.traffic import (
    TrafficComparison,
    compare_traffic,
    dense_baseline_for,
    sequential_positions,
)
from sim.costs.area import AreaReport, area_report
from sim.costs.energy import EnergyReport, energy_report

if TYPE_CHECKING:
    from mappings.tiling import ChipPlan
    from sim.chip.config import ChipConfig
    from sim.chip.programming import ChipInstance

__all__ = ["STAGES", "ChipRunReport", "run_chip"]

STAGES: tuple[str, ...] = ("program", "co-simulate", "energy", "dense baseline")


@dataclass(frozen=True, eq=False)
class ChipRunReport:
    """Everything ``scrramble-sim noc NET.h5`` reports."""

    config: ChipConfig
    plan: ChipPlan
    instance: ChipInstance
    cosim: CosimResult
    energy: EnergyReport
    area: AreaReport
    traffic: TrafficComparison
    dense: CosimResult | None
    dense_network_pj: float | None
    network_pj: float

    def as_dict(self) -> dict:
        c = self.cosim.as_dict()
        t = self.traffic
        n = t.network
        out = {
            "bits": n.bits,
            "packets": n.packets,
            "flits": n.flits,
            "bit_hops": n.bit_hops,
            "latency_cycles": c["latency_cycles"],
            "throughput_inferences_per_s": c["throughput_inferences_per_s"],
            "energy_pj_per_inference": self.energy.total_pj,
            "tops_per_w": self.energy.tops_per_w,
            "inferences_per_j": self.energy.inferences_per_j,
            "dense_bits": t.dense.bits,
            "traffic_reduction": t.reduction("bits"),
            "cosim": c,
            "energy": self.energy.as_dict(),
            "area": self.area.as_dict(),
            "traffic": t.as_dict(),
            "network_energy_pj": self.network_pj,
            "placement": {
                "method": self.instance.placement.method,
                "positions": self.instance.placement.positions.tolist(),
            },
        }
        if self.dense is not None:
            d = self.dense.as_dict()
            out["dense"] = {
                "grid": list(self.dense.trace.grid),
                "inferences": d["inferences"],
                "latency_cycles": d["latency_cycles"],
                "cycles": d["cycles"],
                "throughput_inferences_per_s": d["throughput_inferences_per_s"],
                "network_energy_pj": self.dense_network_pj,
                "flit_hops": d["flit_hops"],
            }
        return out

    def table(self) -> str:
        c = self.cosim.as_dict()
        lat = c["latency_cycles"]
        b = c["bottleneck"]
        lines = [
            (f"co-simulated {c['inferences']} inferences "
            f"({'multicast' if c['multicast'] else 'unicast'}, input every "
            f"{c['input_interval_cycles'] or 'as fast as accepted'} cycles) in {c['cycles']:,} "
            f"cycles ({c['sim_seconds']:.2f} s, {c['flit_hops_per_s'] / 1e6:.2f} M flit-hops/s)"),
            (f"latency per inference: mean {lat['mean']:,.1f}, p50 {lat['p50']:,.0f}, p99 "
            f"{lat['p99']:,.0f} cycles ({c['latency_ns_mean']:,.0f} ns); network share "
            f"{100 * c['network_share_of_latency']:.1f} %"),
            f"throughput: {c['throughput_inferences_per_s']:,.0f} inferences/s",
            (f"busiest core {tuple(b['core']['router'])} busy {100 * b['core']['busy']:.1f} %; "
            f"link {b['link']['port']} of {tuple(b['link']['router'])} "
            f"{b['link']['flits_per_cycle']:.3f} flits/cycle; injection at "
            f"{tuple(b['injection']['router'])} {b['injection']['flits_per_cycle']:.3f} "
            f"flits/cycle; bound by the {b['binding']}"),
            "",
            "traffic per inference between cores, network vs dense baseline:",
            self.traffic.table(),
        ]
        if self.dense is not None:
            d = self.dense.as_dict()
            lines.append(
                f"dense baseline co-simulated on {self.dense.trace.grid[0]}x"
                f"{self.dense.trace.grid[1]}: latency mean {d['latency_cycles']['mean']:,.1f} "
                f"cycles ({d['inferences']} inferences); network energy "
                f"{self.dense_network_pj:,.0f} pJ vs {self.network_pj:,.0f} pJ per inference"
            )
        lines += ["", self.energy.table(),
                  f"area: {self.area.chip_mm2:.2f} mm^2 (" + ", ".join(
                      f"{k} {v:.2f}" for k, v in self.area.breakdown_mm2().items()) + " mm^2)"]
        return "\n".join(lines)


def run_chip(
    network,
    config: ChipConfig,
    *,
    n_inferences: int = 100,
    input_interval: int = 0,
    multicast: bool = False,
    seed: int = 0,
    samples: np.ndarray | None = None,
    noc=None,
    mesh: tuple[int, int] | None = None,
    dense_inferences: int = 10,
    instance: ChipInstance | None = None,
    progress=None,
) -> ChipRunReport:
    """Program ``network`` on the chip of ``config`` (seed ``seed``; or use ``instance``),
    co-simulate ``n_inferences`` through the packet network ``noc`` (a NocConfig; its mesh is
    ``mesh`` or the chip grid) and report. ``samples`` (batch-major inputs) give the array
    read energy; without them it is nominal. ``dense_inferences = 0`` skips the dense
    baseline's co-simulation. ``progress(stage)`` is called as each of the :data:`STAGES`
    begins (e.g. to advance a progress bar)."""
    step = progress if progress is not None else (lambda stage: None)
    from sim.chip.mapping_report import count_devices
    from sim.chip.programming import program_chip

    if isinstance(n_inferences, bool) or not isinstance(n_inferences, (int, np.integer)) \
            or n_inferences < 1:
        raise TraceError(f"n_inferences (inference count) must be an integer >= 1, got "
                         f"{n_inferences!r}")
    grid = tuple(mesh) if mesh is not None else config.grid
    if noc is None:  # the chip file's [noc] section, where the chip config has one
        noc = getattr(config, "noc", None)
    noc_cfg = noc_config_for(grid, noc)
    multicast = bool(multicast or noc_cfg.multicast)  # [noc] multicast = true asks for it too
    if multicast:
        noc_cfg = with_multicast(noc_cfg)  # refuse early, before programming
    step("program")
    inst = instance if instance is not None else program_chip(network, config, seed)
    plan = inst.plan
    trace: ChipTrace = build_inference_trace(
        plan, config, inst.placement.positions, n_inferences=n_inferences,
        input_interval=input_interval, multicast=multicast, grid=grid,
    )
    step("co-simulate")
    res = cosimulate(trace, noc_cfg, clock_mhz=config.chip.clock_mhz, seed=seed)
    step("energy")
    io = divmod(trace.io_router, grid[1])
    seconds = 1.0 / res.throughput_inferences_per_s
    devices, _ = count_devices(network, config)
    energy = energy_report(
        plan, config, positions=inst.placement.positions, seconds_per_inference=seconds,
        multicast=multicast, io_position=io, network=network, instance=inst, samples=samples,
    )
    traffic = compare_traffic(network, config, plan, inst.placement.positions,
                              link_width_bits=noc_cfg.link_width_bits, multicast=multicast)
    dense_res = dense_pj = None
    if dense_inferences:
        step("dense baseline")
        dense, g = dense_baseline_for(network, config)
        dpos = sequential_positions(dense.n_physical_cores, g[1])
        dtrace = build_inference_trace(
            dense, config, dpos, n_inferences=int(dense_inferences),
            input_interval=input_interval, multicast=multicast, grid=g,
        )
        dense_res = cosimulate(dtrace, noc_config_for(g, noc), clock_mhz=config.chip.clock_mhz,
                               seed=seed)
        de = energy_report(dense, config, positions=dpos, seconds_per_inference=0.0,
                           multicast=multicast, io_position=divmod(dtrace.io_router, g[1]))
        dense_pj = de.pj["router"] + de.pj["link"]
    return ChipRunReport(
        config=config, plan=plan, instance=inst, cosim=res, energy=energy,
        area=area_report(config, devices), traffic=traffic, dense=dense_res,
        dense_network_pj=dense_pj, network_pj=energy.pj["router"] + energy.pj["link"],
    )
