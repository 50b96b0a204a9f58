"""Zero-contention timing of an inference trace, computed event by event without the network.

Every message takes the packet network's zero-load latency, ``base + per_hop x hops +
(flits - 1)`` cycles from its head leaving the source queue to its tail being ejected (the
head's router pipeline per hop plus the serialization of the body flits); sources inject one
flit per cycle in creation order; cores run one task at a time in the order their inputs
complete. Links are assumed free, so on a trace whose packets never share a link at the same
time this is exactly what the cycle-level network gives, and otherwise a lower bound.

The analytic throughput bound of a pipelined stream (:func:`throughput_bound`) is the
busiest resource's cycles per inference: a core's task durations, a source's or a
destination's flits, or a link's flits.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from sim.chipnet.trace import ChipTrace

__all__ = ["AnalyticTiming", "ZeroLoad", "analytic_schedule", "link_flits", "throughput_bound"]


@dataclass(frozen=True)
class ZeroLoad:
    """Zero-load packet latency: ``base + per_hop x hops + flits - 1`` cycles from head
    injection to tail ejection; ``flits = max(1, ceil((bits + header_bits) / link_width))``."""

    per_hop: int
    base: int
    link_width_bits: int
    header_bits: int = 0

    def flits(self, bits: np.ndarray) -> np.ndarray:
        b = np.asarray(bits, np.int64) + self.header_bits
        return np.maximum(1, -(-b // self.link_width_bits))

    def latency(self, hops: np.ndarray, flits: np.ndarray) -> np.ndarray:
        return self.base + self.per_hop * np.asarray(hops) + np.asarray(flits) - 1


@dataclass(frozen=True, eq=False)
class AnalyticTiming:
    """Cycles of every message (creation, head injection, delivery) and task (start, finish)."""

    msg_create: np.ndarray
    msg_inject: np.ndarray
    msg_deliver: np.ndarray
    task_start: np.ndarray
    task_finish: np.ndarray


def _manhattan_hops(trace: ChipTrace) -> np.ndarray:
    """Per destination entry: links on the XY path from the message's source router."""
    cols = trace.grid[1]
    fan = np.diff(trace.msg_dst_ptr)
    src = np.repeat(trace.msg_src, fan)
    d = trace.msg_dst
    return np.abs(src // cols - d // cols) + np.abs(src % cols - d % cols)


def analytic_schedule(trace: ChipTrace, zero_load: ZeroLoad) -> AnalyticTiming:
    """Event-by-event zero-contention schedule of ``trace`` (see the module docstring)."""
    n_t, n_m = trace.n_tasks, trace.n_messages
    flits = zero_load.flits(trace.msg_bits)
    hops_d = _manhattan_hops(trace)
    fan = np.diff(trace.msg_dst_ptr)
    msg_of_d = np.repeat(np.arange(n_m), fan)
    lat_d = zero_load.latency(hops_d, flits[msg_of_d])
    # what each task emits
    emits: list[list[int]] = [[] for _ in range(n_t)]
    for m in np.flatnonzero(trace.msg_producer >= 0):
        emits[int(trace.msg_producer[m])].append(int(m))
    left = trace.task_inputs.astype(np.int64).copy()
    ready_at = trace.task_start.astype(np.int64).copy()
    create = np.full(n_m, -1, np.int64)
    inject = np.full(n_m, -1, np.int64)
    deliver = np.full(n_m, -1, np.int64)
    start = np.full(n_t, -1, np.int64)
    finish = np.full(n_t, -1, np.int64)
    src_free: dict[int, int] = {}
    core_free: dict[int, int] = {}
    core_queue: dict[int, list] = {}
    # events: (cycle, order, kind, index); kind 0 = message created, 1 = task ready
    events: list[tuple[int, int, int, int]] = []
    for m in np.flatnonzero(trace.msg_producer < 0):
        heapq.heappush(events, (int(trace.msg_cycle[m]), 0, 0, int(m)))
    for t in np.flatnonzero(left == 0):
        heapq.heappush(events, (int(ready_at[t]), 1, 1, int(t)))
    pending_src: dict[int, list] = {}

    def run_core(core: int, now: int) -> None:
        q = core_queue.get(core)
        while q and core_free.get(core, 0) <= now:
            rdy, t = heapq.heappop(q)
            s = max(rdy, core_free.get(core, 0))
            start[t], finish[t] = s, s + int(trace.task_duration[t])
            core_free[core] = finish[t]
            heapq.heappush(events, (int(finish[t]), 2, 2, t))  # finish event
            return

    while events:
        c, _, kind, i = heapq.heappop(events)
        if kind == 0:  # message created: enqueue at its source, inject in creation order
            create[i] = c
            s = int(trace.msg_src[i])
            h = max(c, src_free.get(s, 0))
            inject[i] = h
            src_free[s] = h + int(flits[i])
            lo, hi = trace.msg_dst_ptr[i], trace.msg_dst_ptr[i + 1]
            deliver[i] = h + int(lat_d[lo:hi].max())
            for k in range(lo, hi):
                t = int(trace.msg_dst_task[k])
                if t < 0:
                    continue
                left[t] -= 1
                ready_at[t] = max(ready_at[t], h + int(lat_d[k]))
                if left[t] == 0:
                    heapq.heappush(events, (int(ready_at[t]), 1, 1, t))
        elif kind == 1:  # task ready
            core = int(trace.task_core[i])
            heapq.heappush(core_queue.setdefault(core, []), (c, i))
            run_core(core, c)
        else:  # task finished: emit its messages, start the next ready task
            for m in emits[i]:
                heapq.heappush(events, (c, 0, 0, m))
            run_core(int(trace.task_core[i]), c)
    del pending_src
    return AnalyticTiming(create, inject, deliver, start, finish)


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for every n in ``lengths``, concatenated."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


def link_flits(trace: ChipTrace, zero_load: ZeroLoad) -> dict[str, np.ndarray]:
    """Flits per inference on every directed link of the XY routes (multicast: each tree link
    once), as (rows, cols) arrays ``east``, ``west``, ``north`` (row + 1), ``south`` (row - 1)
    indexed by the link's upstream router, plus ``inject`` and ``eject`` per router."""
    rows, cols = trace.grid
    m = np.arange(trace.messages_per_inference)
    fl = zero_load.flits(trace.msg_bits[m])
    fan = np.diff(trace.msg_dst_ptr[: len(m) + 1])
    dst = trace.msg_dst[: trace.msg_dst_ptr[len(m)]]
    msg = np.repeat(m, fan)
    sr, sc = trace.msg_src[msg] // cols, trace.msg_src[msg] % cols
    dr, dc = dst // cols, dst % cols
    # X first along the source row, then Y along the destination column
    hx, hy = np.abs(dc - sc), np.abs(dr - sr)
    sx, sy = np.sign(dc - sc), np.sign(dr - sr)
    jx, jy = _ramp(hx), _ramp(hy)
    kx, ky = np.repeat(np.arange(len(msg)), hx), np.repeat(np.arange(len(msg)), hy)
    x_router = sr[kx] * cols + sc[kx] + sx[kx] * jx
    y_router = (sr[ky] + sy[ky] * jy) * cols + dc[ky]
    x_dir = np.where(sx[kx] > 0, 0, 1)  # east, west
    y_dir = np.where(sy[ky] > 0, 2, 3)  # north, south
    link = np.concatenate([x_router * 4 + x_dir, y_router * 4 + y_dir])
    owner = np.concatenate([msg[kx], msg[ky]])
    pairs = np.unique(owner.astype(np.int64) * (rows * cols * 4) + link)  # a tree link once
    per_link = np.bincount(pairs % (rows * cols * 4), weights=fl[pairs // (rows * cols * 4)],
                           minlength=rows * cols * 4).reshape(rows, cols, 4)
    out = {name: per_link[..., i] for i, name in enumerate(("east", "west", "north", "south"))}
    out["inject"] = np.bincount(trace.msg_src[m], weights=fl, minlength=rows * cols).reshape(
        rows, cols
    )
    out["eject"] = np.bincount(dst, weights=fl[msg].astype(np.float64),
                               minlength=rows * cols).reshape(rows, cols)
    return out


def throughput_bound(trace: ChipTrace, zero_load: ZeroLoad) -> tuple[int, str]:
    """(cycles per inference, resource) of the busiest core, source, destination or link."""
    T = trace.tasks_per_inference
    busy = np.bincount(trace.task_core[:T], weights=trace.task_duration[:T],
                       minlength=trace.grid[0] * trace.grid[1])
    best = (float(busy.max()), f"core at router {int(busy.argmax())}")
    loads = link_flits(trace, zero_load)
    for name, a in loads.items():
        if a.max() > best[0]:
            r, c = np.unravel_index(int(a.argmax()), a.shape)
            best = (float(a.max()), f"{name} link of router ({r}, {c})")
    return int(np.ceil(best[0])), best[1]
