"""The mapped network's traffic on the chip: the traffic report against the dense baseline
(:mod:`sim.chipnet.traffic`), the inference stream as a task graph for the packet network
(:mod:`sim.chipnet.trace`), its zero-contention timing (:mod:`sim.chipnet.analytic`), the
cycle-level co-simulation (:mod:`sim.chipnet.cosim`), the analytic chip estimate that ``map``
prints (:mod:`sim.chipnet.estimate`) and the co-simulated report of ``noc NET.h5``
(:func:`run_chip`, :mod:`sim.chipnet.report`, figures in :mod:`sim.chipnet.figures`)."""

from sim.chipnet.analytic import (
    AnalyticTiming,
    ZeroLoad,
    analytic_schedule,
    link_flits,
    throughput_bound,
)
from sim.chipnet.cosim import (
    CosimResult,
    cosimulate,
    critical_compute_cycles,
    noc_config_for,
    zero_load_of,
)
from sim.chipnet.estimate import ChipEstimate, estimate_chip
from sim.chipnet.report import ChipRunReport, run_chip
from sim.chipnet.trace import (
    ChipTrace,
    TraceError,
    build_inference_trace,
    core_cycles,
    default_io_cell,
)
from sim.chipnet.traffic import (
    TrafficComparison,
    TrafficSummary,
    compare_traffic,
    dense_baseline_for,
    dense_grid,
    sequential_positions,
    traffic_summary,
)

__all__ = [
    "AnalyticTiming",
    "ChipEstimate",
    "ChipRunReport",
    "ChipTrace",
    "CosimResult",
    "TraceError",
    "TrafficComparison",
    "TrafficSummary",
    "ZeroLoad",
    "analytic_schedule",
    "build_inference_trace",
    "compare_traffic",
    "core_cycles",
    "cosimulate",
    "critical_compute_cycles",
    "default_io_cell",
    "dense_baseline_for",
    "dense_grid",
    "estimate_chip",
    "link_flits",
    "noc_config_for",
    "run_chip",
    "sequential_positions",
    "throughput_bound",
    "traffic_summary",
    "zero_load_of",
]
