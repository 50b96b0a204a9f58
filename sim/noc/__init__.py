"""Cycle-level packet network (network-on-chip) of the chip: mesh / torus of VC routers.

Build a :class:`NocConfig`, pick traffic (:class:`SyntheticTraffic` or a :class:`Trace` task
graph) and call :func:`simulate_noc`; the :class:`NocResult` holds the statistics as arrays.
The model and every knob are described in docs/noc.md.
"""

from sim.noc.config import ALLOCATORS, ROUTINGS, NocConfig, NocConfigError, noc_config_from_dict
from sim.noc.result import NocResult, TraceTiming
from sim.noc.run import NocDeadlockError, simulate_noc
from sim.noc.topology import build_topology, min_hops
from sim.noc.traffic import PATTERNS, SyntheticTraffic, Trace, message_trace

__all__ = [
    "ALLOCATORS",
    "PATTERNS",
    "ROUTINGS",
    "NocConfig",
    "NocConfigError",
    "NocDeadlockError",
    "NocResult",
    "SyntheticTraffic",
    "Trace",
    "TraceTiming",
    "build_topology",
    "message_trace",
    "min_hops",
    "noc_config_from_dict",
    "simulate_noc",
]
