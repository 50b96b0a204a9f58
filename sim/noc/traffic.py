"""Traffic: synthetic patterns with Bernoulli or on-off injection, and explicit traces.

Patterns (Dally & Towles, "Principles and Practices of Interconnection Networks", 2004,
section 3.2) are chosen by name from :data:`PATTERNS`; each maps the mesh to either "uniform"
(a random destination per packet, the source itself included), a fixed destination per source
(a permutation), or uniform with a hotspot share.

A :class:`Trace` is a small task graph evaluated inside the cycle loop: tasks run on cores
(one at a time per core, in order of ready cycle, ties by task index) and produce messages;
messages without a producer are released at a given cycle. See docs/noc.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim.noc.config import NocConfig, NocConfigError

__all__ = [
    "PATTERNS",
    "SyntheticTraffic",
    "Trace",
    "destination_table",
    "message_trace",
]


def _coords(cfg: NocConfig) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(cfg.n_routers)
    return r % cfg.cols, r // cfg.cols


def _need_pow2(cfg: NocConfig, name: str) -> int:
    n = cfg.n_routers
    if n & (n - 1):
        raise NocConfigError(
            f"traffic {name!r}: needs a power-of-two number of routers, got {cfg.rows}x{cfg.cols}"
        )
    return n.bit_length() - 1


def _transpose(cfg: NocConfig) -> np.ndarray:
    if cfg.rows != cfg.cols:
        raise NocConfigError(
            f"traffic 'transpose': needs a square mesh, got {cfg.rows}x{cfg.cols}"
        )
    x, y = _coords(cfg)
    return x * cfg.cols + y


def _bitcomp(cfg: NocConfig) -> np.ndarray:
    # (k-1-x, k-1-y): the bit complement of the node id when both sides are powers of two
    x, y = _coords(cfg)
    return (cfg.rows - 1 - y) * cfg.cols + (cfg.cols - 1 - x)


def _bitrev(cfg: NocConfig) -> np.ndarray:
    b = _need_pow2(cfg, "bitrev")
    r = np.arange(cfg.n_routers)
    out = np.zeros_like(r)
    for i in range(b):
        out |= ((r >> i) & 1) << (b - 1 - i)
    return out


def _shuffle(cfg: NocConfig) -> np.ndarray:
    b = _need_pow2(cfg, "shuffle")
    r = np.arange(cfg.n_routers)
    if b == 0:
        return r
    return ((r << 1) | (r >> (b - 1))) & (cfg.n_routers - 1)


def _tornado(cfg: NocConfig) -> np.ndarray:
    x, y = _coords(cfg)
    tx = (x + (cfg.cols + 1) // 2 - 1) % cfg.cols
    ty = (y + (cfg.rows + 1) // 2 - 1) % cfg.rows
    return ty * cfg.cols + tx


def _neighbor(cfg: NocConfig) -> np.ndarray:
    x, y = _coords(cfg)
    return ((y + 1) % cfg.rows) * cfg.cols + (x + 1) % cfg.cols


PATTERNS: dict[str, Callable[[NocConfig], np.ndarray] | None] = {
    "uniform": None,
    "hotspot": None,
    "transpose": _transpose,
    "bitcomp": _bitcomp,
    "bitrev": _bitrev,
    "shuffle": _shuffle,
    "tornado": _tornado,
    "neighbor": _neighbor,
}
"""Traffic patterns by name: None for random destinations, else source -> destination table."""


def destination_table(cfg: NocConfig, pattern: str) -> np.ndarray | None:
    """Fixed destination of every source for a permutation pattern, None for random ones."""
    if pattern not in PATTERNS:
        raise NocConfigError(f"--traffic: unknown pattern {pattern!r}; expected one of "
                             f"{list(PATTERNS)}")
    fn = PATTERNS[pattern]
    return None if fn is None else fn(cfg).astype(np.int32)


@dataclass(frozen=True)
class SyntheticTraffic:
    """Synthetic traffic: pattern, offered load and packet length.

    ``rate`` is in flits/node/cycle (``rate_unit="flits"``, as BookSim2) or packets/node/cycle.
    With ``burst`` the sources are on-off Markov chains: off -> on with probability
    ``burst_on`` per cycle, on -> off with ``burst_off``; the on-state rate is raised so that
    the average equals ``rate``. ``hotspot`` sends a ``hotspot_fraction`` of packets to the
    ``hotspots`` routers (default: the centre router), the rest uniformly.
    """

    pattern: str = "uniform"
    rate: float = 0.1
    packet_flits: int = 4
    rate_unit: str = "flits"
    burst: bool = False
    burst_on: float = 0.1
    burst_off: float = 0.1
    hotspots: tuple[int, ...] = ()
    hotspot_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise NocConfigError(
                f"--traffic: unknown pattern {self.pattern!r}; expected one of {list(PATTERNS)}"
            )
        if not (isinstance(self.rate, (int, float)) and 0.0 <= self.rate <= 1.0):
            raise NocConfigError(f"--rate: expected a number in [0, 1], got {self.rate!r}")
        if isinstance(self.packet_flits, bool) or not isinstance(self.packet_flits, int) or not (
            1 <= self.packet_flits <= 1 << 16
        ):
            raise NocConfigError(
                f"--packet: expected an integer in 1..65536 flits, got {self.packet_flits!r}"
            )
        if self.rate_unit not in ("flits", "packets"):
            raise NocConfigError(
                f"rate_unit: expected 'flits' or 'packets', got {self.rate_unit!r}"
            )
        for name in ("burst_on", "burst_off", "hotspot_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise NocConfigError(f"{name}: expected a probability in [0, 1], got {v!r}")
        if self.burst and self.burst_on <= 0.0:
            raise NocConfigError("burst_on: must be > 0 with bursty injection")
        if self.packet_probability() > 1.0:
            raise NocConfigError(
                f"--rate: {self.rate} {self.rate_unit}/node/cycle needs more than one packet per "
                f"cycle{' in the on state' if self.burst else ''}; lower the rate"
            )

    def packet_probability(self) -> float:
        """Probability that a node creates a packet in a cycle (in the on state if bursty)."""
        p = self.rate / self.packet_flits if self.rate_unit == "flits" else self.rate
        if self.burst:
            duty = self.burst_on / (self.burst_on + self.burst_off)
            p = p / duty
        return p

    def offered_flits(self) -> float:
        """Offered load in flits/node/cycle."""
        return self.rate if self.rate_unit == "flits" else self.rate * self.packet_flits


@dataclass(frozen=True)
class Trace:
    """Explicit traffic: a task graph plus messages (arrays; see docs/noc.md).

    Tasks ``t``: ``task_core[t]`` (router of the core), ``task_start[t]`` (earliest start cycle),
    ``task_duration[t]`` (cycles), ``task_inputs[t]`` (number of (message, destination) entries
    it consumes). Messages ``m``: ``msg_producer[m]`` (task index or -1), ``msg_cycle[m]``
    (release cycle when the producer is -1), ``msg_src[m]`` (source router), destinations
    ``msg_dst[msg_dst_ptr[m]:msg_dst_ptr[m+1]]`` (CSR) with their consuming task
    ``msg_dst_task`` (or -1), ``msg_bits[m]`` (payload bits) and ``msg_tag[m]`` (opaque).
    """

    msg_src: np.ndarray
    msg_dst_ptr: np.ndarray
    msg_dst: np.ndarray
    msg_bits: np.ndarray
    msg_producer: np.ndarray
    msg_cycle: np.ndarray
    msg_dst_task: np.ndarray
    msg_tag: np.ndarray
    task_core: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    task_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    task_duration: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    task_inputs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_messages(self) -> int:
        return int(self.msg_src.shape[0])

    @property
    def n_tasks(self) -> int:
        return int(self.task_core.shape[0])

    def validate(self, cfg: NocConfig) -> None:
        """Raise NocConfigError naming the array and entry that is inconsistent."""
        m, t, n = self.n_messages, self.n_tasks, cfg.n_routers
        for name in ("msg_bits", "msg_producer", "msg_cycle", "msg_tag"):
            if getattr(self, name).shape != (m,):
                raise NocConfigError(f"trace {name}: expected shape ({m},)")
        for name in ("task_start", "task_duration", "task_inputs"):
            if getattr(self, name).shape != (t,):
                raise NocConfigError(f"trace {name}: expected shape ({t},)")
        ptr = self.msg_dst_ptr
        if ptr.shape != (m + 1,) or ptr[0] != 0 or np.any(np.diff(ptr) < 1):
            raise NocConfigError(
                "trace msg_dst_ptr: expected m + 1 increasing offsets from 0, every message "
                "with at least one destination"
            )
        k = int(ptr[-1])
        if self.msg_dst.shape != (k,) or self.msg_dst_task.shape != (k,):
            raise NocConfigError(f"trace msg_dst / msg_dst_task: expected shape ({k},)")
        for name, arr in (("msg_src", self.msg_src), ("msg_dst", self.msg_dst),
                          ("task_core", self.task_core)):
            bad = np.flatnonzero((arr < 0) | (arr >= n))
            if bad.size:
                raise NocConfigError(
                    f"trace {name}[{bad[0]}] = {arr[bad[0]]}: router outside the "
                    f"{cfg.rows}x{cfg.cols} mesh (expected 0..{n - 1})"
                )
        if np.any(self.msg_bits < 0):
            raise NocConfigError("trace msg_bits: payload bits must be >= 0")
        if np.any(self.task_duration < 0) or np.any(self.task_start < 0):
            raise NocConfigError("trace task_duration / task_start: must be >= 0")
        prod = self.msg_producer
        if np.any((prod < -1) | (prod >= t)):
            raise NocConfigError(f"trace msg_producer: expected -1 or a task index 0..{t - 1}")
        if np.any((prod < 0) & (self.msg_cycle < 0)):
            raise NocConfigError("trace msg_cycle: must be >= 0 for messages without producer")
        has = prod >= 0
        if np.any(self.task_core[prod[has]] != self.msg_src[has]):
            i = int(np.flatnonzero(has)[np.flatnonzero(
                self.task_core[prod[has]] != self.msg_src[has])[0]])
            raise NocConfigError(
                f"trace msg_src[{i}] = {self.msg_src[i]}: must be the core of its producer "
                f"task {prod[i]} ({self.task_core[prod[i]]})"
            )
        dt = self.msg_dst_task
        if np.any((dt < -1) | (dt >= t)):
            raise NocConfigError(f"trace msg_dst_task: expected -1 or a task index 0..{t - 1}")
        cons = dt >= 0
        if np.any(self.task_core[dt[cons]] != self.msg_dst[cons]):
            raise NocConfigError(
                "trace msg_dst_task: a consuming task must run on the destination router"
            )
        if cfg.multicast:
            for i in np.flatnonzero(np.diff(ptr) > 1):
                dsts = self.msg_dst[ptr[i]:ptr[i + 1]]
                if np.unique(dsts).size != dsts.size:
                    raise NocConfigError(
                        f"trace msg_dst: message {i} names a router twice (multicast needs "
                        "distinct destinations)"
                    )
                flits = cfg.packet_flits(int(self.msg_bits[i]))
                if flits > cfg.buffer_depth:
                    raise NocConfigError(
                        f"trace msg_bits[{i}] = {self.msg_bits[i]}: a multicast packet of {flits} "
                        f"flits must fit one VC buffer (buffer_depth {cfg.buffer_depth})"
                    )
        counts = np.bincount(dt[cons], minlength=t) if t else np.zeros(0, np.int64)
        bad = np.flatnonzero(counts != self.task_inputs)
        if bad.size:
            raise NocConfigError(
                f"trace task_inputs[{bad[0]}] = {self.task_inputs[bad[0]]}: but "
                f"{counts[bad[0]]} message destinations name that task"
            )


def message_trace(
    src, dst, cycle, bits, *, tag=None
) -> Trace:
    """A plain list of unicast messages (no tasks): message i goes from ``src[i]`` to
    ``dst[i]``, released at ``cycle[i]`` with ``bits[i]`` payload bits."""
    src = np.asarray(src, np.int64)
    m = src.shape[0]
    return Trace(
        msg_src=src,
        msg_dst_ptr=np.arange(m + 1, dtype=np.int64),
        msg_dst=np.asarray(dst, np.int64).reshape(m),
        msg_bits=np.asarray(bits, np.int64).reshape(m),
        msg_producer=np.full(m, -1, np.int64),
        msg_cycle=np.asarray(cycle, np.int64).reshape(m),
        msg_dst_task=np.full(m, -1, np.int64),
        msg_tag=np.zeros(m, np.int64) if tag is None else np.asarray(tag, np.int64).reshape(m),
    )
