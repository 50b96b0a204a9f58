"""Chip-level estimate without the cycle-level network: traffic against the dense baseline,
zero-contention latency, the analytic throughput bound, energy (nominal array read) and area.

This is what ``scrramble-sim map`` reports; ``scrramble-sim noc NET.h5`` replaces the latency
and throughput with the co-simulation's and the array energy with the programmed instance's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.chipnet.analytic import analytic_schedule, throughput_bound
from sim.chipnet.cosim import noc_config_for, zero_load_of
from sim.chipnet.trace import build_inference_trace
from sim.chipnet.traffic import TrafficComparison, compare_traffic
from sim.costs.area import AreaReport, area_report
from sim.costs.energy import EnergyReport, energy_report

if TYPE_CHECKING:
    from mappings.tiling import ChipPlan
    from sim.chip.config import ChipConfig

__all__ = ["ChipEstimate", "estimate_chip"]


@dataclass(frozen=True)
class ChipEstimate:
    """Analytic chip-level numbers of one mapped network (cycles of the chip clock)."""

    traffic: TrafficComparison
    energy: EnergyReport
    area: AreaReport
    latency_cycles: int  # one inference alone, links assumed free
    interval_cycles: int  # pipelined: cycles per inference of the busiest resource
    bottleneck: str
    clock_mhz: float
    io_cell: tuple[int, int]

    @property
    def throughput_inferences_per_s(self) -> float:
        return self.clock_mhz * 1e6 / self.interval_cycles if self.interval_cycles else 0.0

    def as_dict(self) -> dict:
        return {
            "traffic": self.traffic.as_dict(),
            "energy": self.energy.as_dict(),
            "area": self.area.as_dict(),
            "latency_cycles": self.latency_cycles,
            "interval_cycles": self.interval_cycles,
            "throughput_inferences_per_s": self.throughput_inferences_per_s,
            "bottleneck": self.bottleneck,
            "io_cell": list(self.io_cell),
        }

    def table(self) -> str:
        return "\n".join([
            "traffic per inference between cores (unicast packets), network vs dense baseline:",
            self.traffic.table(),
            (
                f"zero-contention latency {self.latency_cycles:,} cycles; pipelined bound "
                f"{self.interval_cycles:,} cycles per inference "
                f"({self.throughput_inferences_per_s:,.0f} inferences/s), set by the "
                f"{self.bottleneck} (I/O port at {self.io_cell})"
            ),
            self.energy.table(),
            (
                f"area: {self.area.chip_mm2:.2f} mm^2 ({self.area.n_cores} cores of "
                f"{self.area.core_um2 / 1e6:.4f} mm^2: "
                + ", ".join(f"{k} {v:.2f}" for k, v in self.area.breakdown_mm2().items())
                + " mm^2)"
            ),
        ])


def estimate_chip(
    network,
    config: ChipConfig,
    plan: ChipPlan,
    positions: np.ndarray,
    *,
    devices: dict | None = None,
    multicast: bool = False,
    noc=None,
) -> ChipEstimate:
    """:class:`ChipEstimate` of ``plan`` placed at ``positions`` on the chip of ``config``."""
    noc = noc_config_for(config.grid, noc if noc is not None else getattr(config, "noc", None))
    zl = zero_load_of(noc)
    trace = build_inference_trace(plan, config, positions, n_inferences=1, input_interval=0,
                                  multicast=multicast)
    sched = analytic_schedule(trace, zl)
    latency = int(sched.msg_deliver.max() - sched.msg_inject[sched.msg_inject >= 0].min())
    interval, what = throughput_bound(trace, zl)
    io = divmod(trace.io_router, config.grid[1])
    clock = config.chip.clock_mhz
    return ChipEstimate(
        traffic=compare_traffic(network, config, plan, positions,
                                link_width_bits=noc.link_width_bits, multicast=multicast),
        energy=energy_report(plan, config, positions=positions,
                             seconds_per_inference=interval / (clock * 1e6),
                             multicast=multicast, io_position=io, network=network),
        area=area_report(config, devices),
        latency_cycles=latency,
        interval_cycles=int(interval),
        bottleneck=what,
        clock_mhz=clock,
        io_cell=(int(io[0]), int(io[1])),
    )
