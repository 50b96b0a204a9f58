"""The traffic report: bits, packets, flits, bit-hops and address bits of a mapped network,
against the fully connected baseline of the same layer shapes on the same core size.

Counts are per inference and between cores (the network input from the I/O port is
reported separately). The dense baseline is :func:`mappings.tiling.plan_dense_baseline`:
activations to every tile that needs them, partial sums between row tiles. It usually needs
more cores than the chip has, so it is placed sequentially on the smallest square mesh that
holds it; the network itself uses the given placement on the chip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mappings.flows import PSUM, Flows
from mappings.tiling import ChipPlan, plan_dense_baseline

if TYPE_CHECKING:
    from sim.chip.config import ChipConfig

__all__ = [
    "TrafficComparison",
    "TrafficSummary",
    "compare_traffic",
    "dense_baseline_for",
    "dense_grid",
    "sequential_positions",
    "traffic_summary",
]


def sequential_positions(n: int, cols: int) -> np.ndarray:
    """Cores 0..n-1 on the cells of a ``cols``-wide mesh in row-major order."""
    return np.stack(np.divmod(np.arange(n), cols), axis=1)


@dataclass(frozen=True)
class TrafficSummary:
    """Traffic of one plan per inference (between cores unless named ``io_``)."""

    cores: int
    grid: tuple[int, int]
    multicast: bool
    bits: int
    payload_bits: int
    header_bits: int
    psum_bits: int
    packets: int
    flits: int
    bit_hops: float
    address_bits_per_packet: float  # mean header bits per packet
    address_bits_per_activation: float  # header bits per delivered activation
    unstructured_address_bits_per_activation: float  # ceil(log2(n_in)), delivery-weighted
    io_bits_in: int
    io_packets_in: int

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def traffic_summary(
    plan: ChipPlan,
    positions: np.ndarray,
    *,
    grid: tuple[int, int],
    link_width_bits: int,
    multicast: bool = False,
) -> TrafficSummary:
    """:class:`TrafficSummary` of ``plan`` placed at ``positions`` on a ``grid`` mesh."""
    flows: Flows = plan.flows
    inter = flows.inter_core
    acts = inter.select(inter.kind != PSUM)
    delivered = int((acts.elements * acts.fanout).sum())
    act_headers = acts.header_total(multicast)
    layer_in = {t.layer: t.n_in for t in plan.layers}
    unstructured = acts.unstructured_address_bits(layer_in)
    packets = inter.n_packets(multicast)
    io = flows.of_kind("input")
    return TrafficSummary(
        cores=plan.n_physical_cores,
        grid=tuple(grid),
        multicast=bool(multicast),
        bits=inter.bits(multicast),
        payload_bits=inter.payload_total(multicast),
        header_bits=inter.header_total(multicast),
        psum_bits=inter.select(inter.kind == PSUM).bits(multicast),
        packets=packets,
        flits=inter.flits(link_width_bits, multicast),
        bit_hops=inter.bit_hops(positions, multicast=multicast),
        address_bits_per_packet=inter.header_total(multicast) / packets if packets else 0.0,
        address_bits_per_activation=act_headers / delivered if delivered else 0.0,
        unstructured_address_bits_per_activation=unstructured / delivered if delivered else 0.0,
        io_bits_in=io.bits(multicast),
        io_packets_in=io.n_packets(multicast),
    )


@dataclass(frozen=True)
class TrafficComparison:
    """The network's traffic against the dense baseline's; reductions in percent."""

    network: TrafficSummary
    dense: TrafficSummary

    def reduction(self, key: str) -> float | None:
        """100 x (1 - network / dense) for one count; None when the baseline has none."""
        d = getattr(self.dense, key)
        return None if not d else 100.0 * (1.0 - getattr(self.network, key) / d)

    def as_dict(self) -> dict:
        keys = ("bits", "payload_bits", "packets", "flits", "bit_hops")
        return {
            "network": self.network.as_dict(),
            "dense": self.dense.as_dict(),
            "reduction_percent": {k: self.reduction(k) for k in keys},
        }

    def table(self) -> str:
        rows = [("", "network", "dense", "reduction")]
        for k in ("bits", "payload_bits", "header_bits", "psum_bits", "packets", "flits",
                  "bit_hops"):
            red = self.reduction(k)
            rows.append((
                k.replace("_", " "), f"{getattr(self.network, k):,.0f}",
                f"{getattr(self.dense, k):,.0f}", "" if red is None else f"{red:.1f} %",
            ))
        for k in ("address_bits_per_packet", "address_bits_per_activation"):
            rows.append((k.replace("_", " "), f"{getattr(self.network, k):.3f}",
                         f"{getattr(self.dense, k):.3f}", ""))
        rows.append(("cores (mesh)", (f"{self.network.cores} ({self.network.grid[0]}x"
                     f"{self.network.grid[1]})"), (f"{self.dense.cores} ({self.dense.grid[0]}x"
                     f"{self.dense.grid[1]})"), ""))
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(v.rjust(w[i]) if i else v.ljust(w[i]) for i, v in enumerate(r))
                 for r in rows]
        n = self.network
        lines.append(
            f"address bits per activation: {n.address_bits_per_activation:.3f} with slot "
            f"packets vs {n.unstructured_address_bits_per_activation:.1f} for unstructured "
            f"sparsity (one source index per activation)"
        )
        return "\n".join(lines)


def dense_grid(n_cores: int) -> tuple[int, int]:
    """The smallest square mesh that holds ``n_cores``."""
    side = max(1, math.isqrt(n_cores - 1) + 1) if n_cores > 1 else 1
    return side, side


def dense_baseline_for(network, config: ChipConfig) -> tuple[ChipPlan, tuple[int, int]]:
    """The dense baseline of ``network`` on the chip's core size, bit widths and packet size,
    and the square mesh it is placed on (:func:`dense_grid` with a free cell for the I/O
    port); headers address every router of that mesh (or of the chip, if larger)."""
    m = config.mapping
    n = plan_dense_baseline(
        network, config.chip.core_rows, config.chip.core_cols, m.encoding,
        activation_bits=m.activation_bits, psum_bits=m.psum_bits,
        slot_elements=config.chip.slot_size, address_cores=config.n_cores,
    ).n_physical_cores
    g = dense_grid(n + 1)
    dense = plan_dense_baseline(
        network, config.chip.core_rows, config.chip.core_cols, m.encoding,
        activation_bits=m.activation_bits, psum_bits=m.psum_bits,
        slot_elements=config.chip.slot_size, address_cores=max(g[0] * g[1], config.n_cores),
    )
    return dense, g


def compare_traffic(
    network,
    config: ChipConfig,
    plan: ChipPlan,
    positions: np.ndarray,
    *,
    link_width_bits: int,
    multicast: bool = False,
) -> TrafficComparison:
    """The network placed at ``positions`` on the chip vs the dense baseline of the same
    layer shapes, core size, bit widths and packet size, placed sequentially on a square
    mesh (:func:`dense_baseline_for`)."""
    dense, g = dense_baseline_for(network, config)
    return TrafficComparison(
        traffic_summary(plan, positions, grid=config.grid, link_width_bits=link_width_bits,
                        multicast=multicast),
        traffic_summary(dense, sequential_positions(dense.n_physical_cores, g[1]), grid=g,
                        link_width_bits=link_width_bits, multicast=multicast),
    )
