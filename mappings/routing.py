"""ScRRAMBLe routing: which source slot feeds which destination slot, with which sign.

The routing tensor ``C[src_core, src_slot, dst_core, dst_slot]`` holds small signed integers.
Every +1 placed from a source slot into a destination core is paired with a -1 from the same
source slot into a random slot of the same destination core, so each core's routed input sums
to zero per feature (the inputs are *balanced*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mappings.checks import check_rng, positive_int, probability

ROUTING_DTYPE = np.int8


class RoutingError(ValueError):
    """Raised for invalid routing arguments or an unbalanced routing tensor."""


@dataclass(frozen=True)
class RoutingSpec:
    """Everything that determines a generated routing tensor."""

    n_src_cores: int
    n_dst_cores: int
    core_size: int = 256
    slot_size: int = 64
    p: float = 0.2
    seed: int = 0

    @property
    def slots_per_core(self) -> int:
        return self.core_size // self.slot_size


def validate_geometry(n_src_cores: int, n_dst_cores: int, core_size: int, slot_size: int) -> int:
    """Check core/slot geometry and return the number of slots per core."""
    positive_int(n_src_cores, "n_src_cores", RoutingError)
    positive_int(n_dst_cores, "n_dst_cores", RoutingError)
    core_size = positive_int(core_size, "core_size", RoutingError)
    slot_size = positive_int(slot_size, "slot_size", RoutingError)
    if core_size % slot_size:
        raise RoutingError(
            f"slot_size {slot_size} must divide core_size {core_size} "
            f"(published choices: 64 or 16 for a 256-wide core)"
        )
    if core_size // slot_size < 2:
        raise RoutingError(
            f"a core needs at least 2 slots for balanced routing (core_size {core_size}, "
            f"slot_size {slot_size}): with one slot every +1 route is cancelled by its -1"
        )
    return core_size // slot_size


@dataclass(frozen=True, eq=False)
class RoutingDraw:
    """A generated routing tensor with the fan-out drawn for each source slot.

    ``fanout[i, j]`` is beta, the number of +1 routes drawn for source slot (i, j); a +1 and
    its own -1 that land on the same destination slot cancel in ``C``, so ``C`` alone shows
    fewer net routes than were drawn.
    """

    C: np.ndarray
    fanout: np.ndarray


def generate_routing(
    n_src_cores: int,
    n_dst_cores: int,
    *,
    core_size: int = 256,
    slot_size: int = 64,
    p: float = 0.2,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw a balanced routing tensor ``C`` shaped (src_cores, slots, dst_cores, slots).

    For every source slot, beta ~ Binomial(n_dst_cores * slots, p) destination (core, slot)
    pairs are drawn uniformly with replacement and get +1; each +1 into core k gets a matching
    -1 from the same source slot into a uniformly random slot of core k.
    """
    return draw_routing(
        n_src_cores, n_dst_cores, core_size=core_size, slot_size=slot_size, p=p, rng=rng
    ).C


def draw_routing(
    n_src_cores: int,
    n_dst_cores: int,
    *,
    core_size: int = 256,
    slot_size: int = 64,
    p: float = 0.2,
    rng: np.random.Generator,
) -> RoutingDraw:
    """Like :func:`generate_routing`, also returning the drawn fan-out per source slot."""
    slots = validate_geometry(n_src_cores, n_dst_cores, core_size, slot_size)
    check_rng(rng, "rng", RoutingError)
    p = probability(p, "connection probability p", RoutingError)
    n_src = n_src_cores * slots
    n_dst = n_dst_cores * slots
    beta = rng.binomial(n_dst, p, size=n_src)
    total = int(beta.sum())
    src = np.repeat(np.arange(n_src), beta)
    pos_dst = rng.integers(0, n_dst, size=total)
    dst_core = pos_dst // slots
    neg_dst = dst_core * slots + rng.integers(0, slots, size=total)
    flat = np.zeros((n_src, n_dst), dtype=np.int32)
    np.add.at(flat, (src, pos_dst), 1)
    np.add.at(flat, (src, neg_dst), -1)
    if np.abs(flat).max(initial=0) > np.iinfo(ROUTING_DTYPE).max:
        raise RoutingError("routing multiplicity overflows int8; lower p or use more slots")
    C = flat.astype(ROUTING_DTYPE).reshape(n_src_cores, slots, n_dst_cores, slots)
    return RoutingDraw(C, beta.reshape(n_src_cores, slots))


def imbalance(C: np.ndarray) -> np.ndarray:
    """Per (src_core, src_slot, dst_core): the sum over destination slots (zero if balanced)."""
    return np.asarray(C).sum(axis=3, dtype=np.int64)


def is_balanced(C: np.ndarray) -> bool:
    """True when every source slot's routes into every destination core sum to zero."""
    return bool(np.all(imbalance(C) == 0))


def check_balanced(C: np.ndarray, where: str = "routing") -> None:
    """Raise :class:`RoutingError` naming the first unbalanced entry, if any."""
    bad = np.argwhere(imbalance(C) != 0)
    if len(bad):
        i, j, k = bad[0]
        raise RoutingError(
            f"{where} is not balanced: source core {i} slot {j} sums to "
            f"{int(imbalance(C)[i, j, k])} into destination core {k} "
            f"({len(bad)} unbalanced (source slot, destination core) pairs; expected 0)"
        )


def routing_matrix(C: np.ndarray, dtype=np.float32) -> np.ndarray:
    """C flattened to (src_cores * slots, dst_cores * slots)."""
    ns, s, nd, s2 = C.shape
    return np.ascontiguousarray(C.reshape(ns * s, nd * s2), dtype=dtype)


@dataclass(frozen=True)
class RoutingStats:
    """Summary of a routing tensor: fan-out, packets and per-destination load."""

    fanout: np.ndarray  # (src_cores, slots): net +1 routes per source slot left in C
    links: np.ndarray  # (src_cores, slots, dst_cores): bool, slot reaches that core
    routes_per_dst_slot: np.ndarray  # (dst_cores, slots): number of nonzero routes in
    n_links: int  # distinct (source slot, destination core) pairs: packets per input

    @property
    def mean_fanout(self) -> float:
        return float(self.fanout.mean())

    def as_dict(self) -> dict:
        return {
            "mean_fanout": self.mean_fanout,
            "max_fanout": int(self.fanout.max(initial=0)),
            "n_links": self.n_links,
            "mean_routes_per_dst_slot": float(self.routes_per_dst_slot.mean()),
            "max_routes_per_dst_slot": int(self.routes_per_dst_slot.max(initial=0)),
        }


def routing_stats(C: np.ndarray) -> RoutingStats:
    """Fan-out per source slot, distinct (source slot, destination core) links, routes in."""
    C = np.asarray(C)
    fanout = np.clip(C, 0, None).sum(axis=(2, 3), dtype=np.int64)
    links = np.any(C != 0, axis=3)
    routes_in = np.abs(C).sum(axis=(0, 1), dtype=np.int64)
    return RoutingStats(fanout, links, routes_in, int(links.sum()))
