"""``NocConfig``: the frozen, validated description of one packet network.

Every field is a plain number or a policy name; policies (routing, allocator, traffic pattern)
are looked up by name in registries, so a new one is a new registry entry. Invalid values raise
:class:`NocConfigError` naming the key (or the CLI flag / ``[noc]`` key) and the allowed range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ALLOCATORS",
    "ROUTINGS",
    "TOPOLOGIES",
    "NocConfig",
    "NocConfigError",
    "noc_config_from_dict",
]


class NocConfigError(ValueError):
    """A network setting out of range or unknown; the message names the key and what is valid."""


ROUTINGS: dict[str, int] = {"xy": 0, "yx": 1}
"""Routing policies by name -> kernel code (dimension order: X first, or Y first)."""

ALLOCATORS: dict[str, int] = {"islip": 0, "rr": 1}
"""Separable allocators by name -> kernel code: iSLIP (request-grant-accept, pointers move only
on an accepted grant of the first iteration) or input-first round-robin."""

TOPOLOGIES: tuple[str, ...] = ("mesh", "torus")


@dataclass(frozen=True)
class NocConfig:
    """One packet network: topology, router micro-architecture and packet format.

    Stage delays are whole cycles between a stage's start and the earliest start of the next
    one, so a head flit spends ``rc + va + sa + st + link`` cycles per router (see docs/noc.md).
    """

    rows: int = 8
    cols: int = 8
    topology: str = "mesh"
    routing: str = "xy"
    vcs: int = 8
    buffer_depth: int = 8
    wait_for_tail_credit: bool = True
    credit_delay: int = 2
    input_speedup: int = 2
    rc_delay: int = 0
    va_delay: int = 1
    sa_delay: int = 1
    st_delay: int = 1
    link_latency: int = 1
    vc_allocator: str = "islip"
    sw_allocator: str = "islip"
    alloc_iters: int = 1
    link_width_bits: int = 128
    header_bits: int = 32
    multicast: bool = False
    watchdog_cycles: int = 20000

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_field(f.name, getattr(self, f.name), f.name)
        if self.multicast and (self.topology != "mesh" or not self.wait_for_tail_credit):
            raise NocConfigError(
                "multicast: tree replication needs topology 'mesh' and wait_for_tail_credit "
                "(deadlock freedom, see docs/noc.md)"
            )
        if self.topology == "torus" and self.vcs < 2:
            raise NocConfigError(
                f"vcs: a torus needs >= 2 virtual channels (dateline classes), got {self.vcs}"
            )

    @property
    def n_routers(self) -> int:
        return self.rows * self.cols

    def packet_flits(self, payload_bits: int) -> int:
        """Flits of a packet carrying ``payload_bits``: ceil((header + payload) / link width)."""
        if payload_bits < 0:
            raise NocConfigError(f"bits: payload must be >= 0, got {payload_bits}")
        return max(1, -(-(self.header_bits + int(payload_bits)) // self.link_width_bits))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> NocConfig:
        """A validated copy with ``changes`` applied."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise NocConfigError(f"unknown NocConfig key(s) {unknown}; valid: {_valid_keys()}")
        return dataclasses.replace(self, **changes)


# name -> (kind, low, high); kind "int" (inclusive range), "bool" or a tuple of valid names
_RULES: dict[str, tuple[Any, int, int]] = {
    "rows": ("int", 1, 1024),
    "cols": ("int", 1, 1024),
    "topology": (TOPOLOGIES, 0, 0),
    "routing": (tuple(ROUTINGS), 0, 0),
    "vcs": ("int", 1, 64),
    "buffer_depth": ("int", 1, 1024),
    "wait_for_tail_credit": ("bool", 0, 0),
    "credit_delay": ("int", 1, 64),
    "input_speedup": ("int", 1, 16),
    "rc_delay": ("int", 0, 64),
    "va_delay": ("int", 0, 64),
    "sa_delay": ("int", 1, 64),
    "st_delay": ("int", 0, 64),
    "link_latency": ("int", 1, 64),
    "vc_allocator": (tuple(ALLOCATORS), 0, 0),
    "sw_allocator": (tuple(ALLOCATORS), 0, 0),
    "alloc_iters": ("int", 1, 16),
    "link_width_bits": ("int", 1, 1 << 20),
    "header_bits": ("int", 0, 1 << 20),
    "multicast": ("bool", 0, 0),
    "watchdog_cycles": ("int", 100, 1 << 30),
}


def _valid_keys() -> list[str]:
    return list(_RULES)


def _check_field(name: str, value: Any, label: str) -> None:
    kind, lo, hi = _RULES[name]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise NocConfigError(f"{label}: expected an integer in {lo}..{hi}, got {value!r}")
        if not lo <= value <= hi:
            raise NocConfigError(f"{label}: expected an integer in {lo}..{hi}, got {value}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise NocConfigError(f"{label}: expected true or false, got {value!r}")
    elif value not in kind:
        raise NocConfigError(f"{label}: unknown name {value!r}; expected one of {list(kind)}")


def noc_config_from_dict(d: dict[str, Any], source: str = "[noc]") -> NocConfig:
    """A :class:`NocConfig` from a ``[noc]`` table; errors name ``source`` and the key."""
    if not isinstance(d, dict):
        raise NocConfigError(f"{source}: expected a table of keys, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_RULES))
    if unknown:
        raise NocConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {_valid_keys()}")
    for key, value in d.items():
        _check_field(key, value, f"{source} {key}")
    try:
        return NocConfig(**d)
    except NocConfigError as exc:
        raise NocConfigError(f"{source} {exc}") from None
