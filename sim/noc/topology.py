"""Mesh and torus topologies as neighbour tables (router ``r = y * cols + x``).

Every router has five ports: 0 local (inject / eject), 1 east (+x), 2 west (-x), 3 north (+y),
4 south (-y). A flit leaving router ``r`` on output port ``o`` enters router ``nbr[r, o]`` on
input port ``OPPOSITE[o]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.noc.config import NocConfig

__all__ = ["N_PORTS", "OPPOSITE", "PORT_NAMES", "Topology", "build_topology", "min_hops"]

N_PORTS = 5
PORT_NAMES = ("local", "east", "west", "north", "south")
OPPOSITE = np.array([0, 2, 1, 4, 3], dtype=np.int32)


@dataclass(frozen=True)
class Topology:
    """Neighbour table ``nbr`` (routers, 5): the router behind each output port, -1 if none
    (port 0 is the router's own terminal, so ``nbr[r, 0] == r``)."""

    rows: int
    cols: int
    torus: bool
    nbr: np.ndarray

    @property
    def n_routers(self) -> int:
        return self.rows * self.cols

    def coords(self, r: int | np.ndarray) -> tuple:
        """(x, y) of router(s) ``r``."""
        return np.asarray(r) % self.cols, np.asarray(r) // self.cols


def build_topology(config: NocConfig) -> Topology:
    """The neighbour table of ``config``'s mesh or torus."""
    rows, cols, torus = config.rows, config.cols, config.topology == "torus"
    n = rows * cols
    nbr = np.full((n, N_PORTS), -1, dtype=np.int32)
    for r in range(n):
        x, y = r % cols, r // cols
        nbr[r, 0] = r
        for port, (dx, dy) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1)), start=1):
            nx, ny = x + dx, y + dy
            if torus:
                nx, ny = nx % cols, ny % rows
                # a ring of one or two routers has no distinct wrap link in that direction
                if (dx and cols < 3 and not 0 <= x + dx < cols) or (
                    dy and rows < 3 and not 0 <= y + dy < rows
                ):
                    continue
            elif not (0 <= nx < cols and 0 <= ny < rows):
                continue
            nbr[r, port] = ny * cols + nx
    return Topology(rows, cols, torus, nbr)


def min_hops(config: NocConfig, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Routers traversed by a minimal dimension-order route (Manhattan distance + 1)."""
    sx, sy = np.asarray(src) % config.cols, np.asarray(src) // config.cols
    dx, dy = np.asarray(dst) % config.cols, np.asarray(dst) // config.cols
    hx, hy = np.abs(dx - sx), np.abs(dy - sy)
    if config.topology == "torus":
        hx = np.minimum(hx, config.cols - hx)
        hy = np.minimum(hy, config.rows - hy)
    return hx + hy + 1
