"""``NocResult``: the statistics of one network run as arrays, a JSON summary and HDF5 file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mappings.safe_files import atomic_write
from sim.noc.config import NocConfig

__all__ = ["NocResult", "TraceTiming"]


@dataclass(frozen=True)
class TraceTiming:
    """Per-message and per-task cycles of a trace run (-1 where it never happened).

    ``msg_create[m]``: cycle the message entered its source queue; ``msg_inject[m]``: cycle its
    first head flit entered the network; ``msg_deliver[m]``: cycle its last tail flit was
    ejected (all destinations); ``dst_deliver[k]``: per destination entry (CSR order of the
    trace). ``task_ready/start/finish[t]``: ready (inputs delivered and earliest start
    reached), start and finish cycles. ``msg_tag`` is the trace's opaque tag, copied.
    """

    msg_create: np.ndarray
    msg_inject: np.ndarray
    msg_deliver: np.ndarray
    dst_deliver: np.ndarray
    msg_tag: np.ndarray
    task_ready: np.ndarray
    task_start: np.ndarray
    task_finish: np.ndarray


@dataclass(frozen=True)
class NocResult:
    """Statistics of one run (means over the tagged packets of the measurement window).

    Latencies in cycles: packet = creation to tail ejection (source queueing included),
    network = head injection to tail ejection, flit = packet creation to that flit's ejection;
    a multicast packet counts once per destination. Flits are conserved:
    ``injected_flits + replicated_flits`` = ``ejected_flits`` + flits still in the network.
    Histograms have one-cycle bins; the last bin holds everything longer. Rates are flits per
    node per cycle over the window. ``link_flits[r, port]`` counts flits sent on each output
    port in the window (port 0 = ejection); ``buffer_occupancy[r]`` is the mean number of flits
    buffered in router r.
    """

    config: NocConfig
    traffic: dict[str, Any]
    seed: int
    cycles: int
    window: tuple[int, int]
    sim_seconds: float
    saturated: bool
    drained: bool
    packets: int
    packet_latency: float
    network_latency: float
    flit_latency: float
    packet_latency_std: float
    max_packet_latency: int
    avg_hops: float
    offered_rate: float
    accepted_rate: float
    accepted_min: float
    accepted_per_node: np.ndarray
    link_flits: np.ndarray
    buffer_occupancy: np.ndarray
    packet_latency_hist: np.ndarray
    network_latency_hist: np.ndarray
    flit_latency_hist: np.ndarray
    flit_hops: int
    injected_flits: int
    ejected_flits: int
    replicated_flits: int = 0
    trace: TraceTiming | None = field(default=None)

    @property
    def link_utilisation(self) -> np.ndarray:
        """Fraction of window cycles each output port carried a flit, (routers, 5)."""
        return self.link_flits / max(1, self.window[1] - self.window[0])

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalar statistics."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        return {
            "mesh": f"{self.config.rows}x{self.config.cols}",
            "topology": self.config.topology,
            "vcs": self.config.vcs,
            "buffer": self.config.buffer_depth,
            "traffic": self.traffic,
            "seed": self.seed,
            "cycles": self.cycles,
            "window": list(self.window),
            "sim_seconds": round(self.sim_seconds, 6),
            "cycles_per_s": round(self.cycles / self.sim_seconds, 1) if self.sim_seconds else None,
            "flit_hops_per_s": (
                round(self.flit_hops / self.sim_seconds, 1) if self.sim_seconds else None
            ),
            "saturated": self.saturated,
            "drained": self.drained,
            "packets": self.packets,
            "packet_latency": num(self.packet_latency),
            "network_latency": num(self.network_latency),
            "flit_latency": num(self.flit_latency),
            "packet_latency_std": num(self.packet_latency_std),
            "max_packet_latency": self.max_packet_latency,
            "avg_hops": num(self.avg_hops),
            "offered_rate": num(self.offered_rate),
            "accepted_rate": num(self.accepted_rate),
            "accepted_min": num(self.accepted_min),
            "max_link_utilisation": num(float(self.link_utilisation[:, 1:].max(initial=0.0))),
            "mean_buffer_occupancy": num(float(self.buffer_occupancy.mean())),
            "flit_hops": self.flit_hops,
            "injected_flits": self.injected_flits,
            "ejected_flits": self.ejected_flits,
            "replicated_flits": self.replicated_flits,
        }

    def save(self, path: str | Path) -> Path:
        """Write the result to an HDF5 file (atomically): summary as attributes, arrays as
        datasets, the config as JSON."""

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = "scrramble-noc-result"
                f.attrs["config"] = json.dumps(self.config.to_dict())
                f.attrs["summary"] = json.dumps(self.summary())
                for name in ("accepted_per_node", "link_flits", "buffer_occupancy",
                             "packet_latency_hist", "network_latency_hist", "flit_latency_hist"):
                    f.create_dataset(name, data=getattr(self, name), compression="gzip")
                if self.trace is not None:
                    g = f.create_group("trace")
                    for name, arr in vars(self.trace).items():
                        g.create_dataset(name, data=arr)

        return atomic_write(path, write, what="network result")
