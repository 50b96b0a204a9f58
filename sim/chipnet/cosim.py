"""Cycle-level co-simulation of the chip: the inference trace (:mod:`sim.chipnet.trace`)
run by the packet network's trace mode (:func:`sim.noc.run.simulate_noc`), and its reports.

Per inference: latency from the head of its first input packet entering the network to the
tail of its last output packet reaching the I/O port; throughput from the completions of the
stream; busy fraction of every core; flits per cycle on every link; the network's share of
latency (cycles on the critical path not spent computing: queueing, hops and serialization);
the bottleneck (the busiest core or link).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.chipnet.analytic import ZeroLoad
from sim.chipnet.trace import MSG_INPUT, MSG_OUTPUT, ChipTrace, TraceError

if TYPE_CHECKING:
    from sim.noc.config import NocConfig
    from sim.noc.result import NocResult, TraceTiming

__all__ = [
    "CosimResult",
    "cosimulate",
    "critical_compute_cycles",
    "noc_config_for",
    "with_multicast",
    "zero_load_of",
]

PORTS = ("local", "east", "west", "north", "south")


def noc_config_for(grid: tuple[int, int], base: NocConfig | None = None, **changes) -> NocConfig:
    """The packet network of a ``grid`` mesh: ``base`` (default NocConfig) with the grid's
    rows and cols and ``header_bits = 0`` (trace messages carry their own headers)."""
    from sim.noc.config import NocConfig

    cfg = base if base is not None else NocConfig()
    return cfg.replace(rows=int(grid[0]), cols=int(grid[1]), header_bits=0, **changes)


def with_multicast(noc: NocConfig) -> NocConfig:
    """``noc`` with tree-replicated multicast on; TraceError if the network has none."""
    if "multicast" not in {f.name for f in dataclasses.fields(noc)}:
        raise TraceError(
            "--multicast: this packet network has no multicast mode (multi-destination "
            "messages would travel as unicast packets); run without --multicast"
        )
    return noc.replace(multicast=True)


def zero_load_of(noc: NocConfig) -> ZeroLoad:
    """The zero-load latency of the packet network: the head crosses the injection link, then
    ``rc + va + sa + st + link`` cycles in each of the ``hops + 1`` routers, then one cycle to
    eject; the tail follows ``flits - 1`` cycles later."""
    per_router = noc.rc_delay + noc.va_delay + noc.sa_delay + noc.st_delay + noc.link_latency
    return ZeroLoad(
        per_hop=per_router,
        base=per_router + noc.link_latency + 1,
        link_width_bits=noc.link_width_bits,
        header_bits=noc.header_bits,
    )


def critical_compute_cycles(trace: ChipTrace, timing) -> np.ndarray:
    """Per inference: task cycles on the critical path, walking back from the last output
    message through the producer of each task's last-delivered input."""
    n_t = trace.n_tasks
    fan = np.diff(trace.msg_dst_ptr)
    msg_of_d = np.repeat(np.arange(trace.n_messages), fan)
    dt = trace.msg_dst_task
    has = dt >= 0
    # last-delivered input message of every task
    order = np.lexsort((timing.dst_deliver[has], dt[has]))
    sdt = dt[has][order]
    last = np.r_[np.flatnonzero(np.diff(sdt)), len(sdt) - 1] if len(sdt) else np.zeros(0, int)
    last_in = np.full(n_t, -1, np.int64)
    last_in[sdt[last]] = msg_of_d[has][order][last]
    per_inf = trace.messages_per_inference
    outs = np.flatnonzero(trace.msg_kind[:per_inf] == MSG_OUTPUT)
    n_inf = trace.n_inferences
    out_msgs = outs[None, :] + per_inf * np.arange(n_inf)[:, None]
    last_out = out_msgs[np.arange(n_inf), np.argmax(timing.msg_deliver[out_msgs], axis=1)]
    task = trace.msg_producer[last_out]
    compute = np.zeros(n_inf, np.int64)
    for _ in range(n_t):  # at most one step per task of the path; stops at the input
        live = task >= 0
        if not live.any():
            break
        t = task[live]
        compute[live] += timing.task_finish[t] - timing.task_start[t]
        m = last_in[t]
        nxt = np.where(m >= 0, trace.msg_producer[np.maximum(m, 0)], -1)
        task = task.copy()
        task[live] = nxt
    return compute


@dataclass(frozen=True, eq=False)
class CosimResult:
    """One co-simulated stream of inferences (cycles of the chip clock)."""

    trace: ChipTrace
    timing: TraceTiming
    noc: NocResult
    clock_mhz: float
    latency_cycles: np.ndarray  # per inference
    start_cycles: np.ndarray  # first input head injected
    end_cycles: np.ndarray  # last output tail ejected
    compute_cycles: np.ndarray  # per inference, on the critical path
    core_busy: np.ndarray  # (rows, cols) busy fraction of every router's core
    link_utilisation: np.ndarray  # (rows, cols, 5) flits per cycle on each output port
    injection: np.ndarray  # (rows, cols) flits per cycle each router's source injects

    @property
    def makespan(self) -> int:
        return int(self.end_cycles.max())

    @property
    def throughput_inferences_per_cycle(self) -> float:
        """n inferences over the cycles from the first input entering the network to the last
        result leaving it (1 / latency for one inference). Conservative: it includes filling
        and draining the pipeline, and it does not mistake a burst of completions at the end
        of a congested run for a sustained rate."""
        span = float(self.end_cycles.max() - self.start_cycles.min())
        return len(self.end_cycles) / span

    @property
    def throughput_inferences_per_s(self) -> float:
        return self.throughput_inferences_per_cycle * self.clock_mhz * 1e6

    @property
    def network_share(self) -> float:
        """Mean over inferences of the latency not spent in tasks on the critical path."""
        return float(np.mean(1.0 - self.compute_cycles / self.latency_cycles))

    def bottleneck(self) -> dict:
        """The busiest core (busy fraction), link, injection and ejection port (flits per
        cycle, at most 1), and which of them binds (the highest)."""
        _rows, cols = self.core_busy.shape
        c = int(np.argmax(self.core_busy))
        link = self.link_utilisation.copy()
        link[..., 0] = 0.0  # ejection is not a link between routers
        flat = int(np.argmax(link))
        r, cc, port = np.unravel_index(flat, link.shape)
        inj = int(np.argmax(self.injection))
        ej = self.link_utilisation[..., 0]
        e = int(np.argmax(ej))
        use = {
            "core": float(self.core_busy.flat[c]),
            "link": float(link[r, cc, port]),
            "injection": float(self.injection.flat[inj]),
            "ejection": float(ej.flat[e]),
        }
        return {
            "core": {"router": [c // cols, c % cols], "busy": use["core"]},
            "link": {"router": [int(r), int(cc)], "port": PORTS[port],
                     "flits_per_cycle": use["link"]},
            "injection": {"router": [inj // cols, inj % cols],
                          "flits_per_cycle": use["injection"]},
            "ejection": {"router": [e // cols, e % cols], "flits_per_cycle": use["ejection"]},
            "binding": max(use, key=lambda k: (use[k], k == "core")),
        }

    def as_dict(self) -> dict:
        lat = self.latency_cycles
        t = self.trace
        return {
            "inferences": t.n_inferences,
            "multicast": t.multicast,
            "input_interval_cycles": t.input_interval,
            "latency_cycles": {
                "mean": float(lat.mean()), "p50": float(np.percentile(lat, 50)),
                "p99": float(np.percentile(lat, 99)), "min": int(lat.min()), "max": int(lat.max()),
            },
            "latency_ns_mean": float(lat.mean()) * 1e3 / self.clock_mhz,
            "throughput_inferences_per_s": self.throughput_inferences_per_s,
            "cycles": self.makespan,
            "network_share_of_latency": self.network_share,
            "core_busy_max": float(self.core_busy.max()),
            "link_utilisation_max": float(self.link_utilisation[..., 1:].max()),
            "bottleneck": self.bottleneck(),
            "flit_hops": int(self.noc.flit_hops),
            "sim_seconds": float(self.noc.sim_seconds),
            "flit_hops_per_s": (
                float(self.noc.flit_hops) / self.noc.sim_seconds if self.noc.sim_seconds else 0.0
            ),
        }


def cosimulate(
    trace: ChipTrace,
    noc: NocConfig,
    *,
    clock_mhz: float,
    seed: int = 0,
    max_cycles: int = 100_000_000,
) -> CosimResult:
    """Run ``trace`` through the packet network ``noc`` and collect the chip-level reports.

    Raises :class:`TraceError` when the mesh is not the trace's grid, and when a message or
    task never completes (the conservation check)."""
    from sim.noc.run import simulate_noc

    if (noc.rows, noc.cols) != tuple(trace.grid):
        raise TraceError(
            f"the packet network is {noc.rows}x{noc.cols} but the trace is placed on a "
            f"{trace.grid[0]}x{trace.grid[1]} mesh"
        )
    if trace.multicast:
        noc = with_multicast(noc)
    res = simulate_noc(noc, trace.to_noc(), seed=seed, max_cycles=max_cycles)
    tim = res.trace
    # conservation: every destination of every message delivered, every task run
    if np.any(tim.dst_deliver < 0) or np.any(tim.task_finish < 0):
        lost = int((tim.dst_deliver < 0).sum())
        raise TraceError(
            f"the co-simulation lost {lost} deliveries and "
            f"{int((tim.task_finish < 0).sum())} tasks (network deadlock or cycle limit)"
        )
    per = trace.messages_per_inference
    n = trace.n_inferences
    kinds = trace.msg_kind[:per]
    ins = np.flatnonzero(kinds == MSG_INPUT)[None, :] + per * np.arange(n)[:, None]
    outs = np.flatnonzero(kinds == MSG_OUTPUT)[None, :] + per * np.arange(n)[:, None]
    start = tim.msg_inject[ins].min(axis=1)
    end = tim.msg_deliver[outs].max(axis=1)
    latency = end - start
    rows, cols = trace.grid
    span = max(1, int(end.max()))
    busy = np.bincount(trace.task_core, weights=tim.task_finish - tim.task_start,
                       minlength=rows * cols).reshape(rows, cols) / span
    link = np.asarray(res.link_flits, np.float64).reshape(rows, cols, -1) / span
    flits = zero_load_of(noc).flits(trace.msg_bits)
    inj = np.bincount(trace.msg_src, weights=flits, minlength=rows * cols).reshape(rows, cols)
    return CosimResult(
        trace=trace, timing=tim, noc=res, clock_mhz=float(clock_mhz),
        latency_cycles=latency.astype(np.int64), start_cycles=start, end_cycles=end,
        compute_cycles=critical_compute_cycles(trace, tim), core_busy=busy,
        link_utilisation=link, injection=inj / span,
    )
