"""The mapped network's traffic on the chip: the traffic report against the dense baseline
(:mod:`sim.chipnet.traffic`), the inference stream as a task graph for the packet network
(:mod:`sim.chipnet.trace`) and its zero-contention timing (:mod:`sim.chipnet.analytic`)."""

from sim.chipnet.analytic import (
    AnalyticTiming,
    ZeroLoad,
    analytic_schedule,
    link_flits,
    throughput_bound,
)
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
    dense_grid,
    traffic_summary,
)

__all__ = [
    "AnalyticTiming",
    "ChipTrace",
    "TraceError",
    "TrafficComparison",
    "TrafficSummary",
    "ZeroLoad",
    "analytic_schedule",
    "build_inference_trace",
    "compare_traffic",
    "core_cycles",
    "default_io_cell",
    "dense_grid",
    "link_flits",
    "throughput_bound",
    "traffic_summary",
]
