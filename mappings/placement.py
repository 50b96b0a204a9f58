"""Placement of logical cores onto a 2-D chip grid, minimising bit-hops.

A placement gives every logical core a distinct (row, col) cell of a ``rows x cols`` mesh.
Packets travel on a mesh network-on-chip with dimension-ordered (XY) routing, so a bit sent
from core i to core j crosses ``|r_i - r_j| + |c_i - c_j|`` links; the cost of a placement is

    bit_hops = sum_ij traffic[i, j] * manhattan(pos_i, pos_j)

which is proportional to the network's dynamic energy (energy per bit per hop: ISAAC, Shafiee
et al., ISCA 2016, ~0.08 pJ/bit/hop from its 20.74 pJ router per 256-bit transfer; PUMA,
Ankit et al., ASPLOS 2019, ~0.5 pJ/bit/hop).
The traffic matrix comes from the mapping's flows (:meth:`mappings.flows.Flows.core_matrix`).

Methods (``METHODS``):

- ``sequential``: core i on cell i in row-major order.
- ``random``: a seeded random choice of distinct cells.
- ``annealing``: simulated annealing on bit-hops (schedule in :func:`place`).
- ``spectral``: cores ordered by the Fiedler vector of the traffic graph's Laplacian and laid
  along a boustrophedon (snake) path, so neighbours in the order are neighbours on the grid
  (spectral seriation; Atkins, Boman & Hendrickson, SIAM J. Comput. 28(1), 1998).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from numba import njit

from mappings.checks import check_rng, positive_int

METHODS: tuple[str, ...] = ("sequential", "random", "annealing", "spectral")
ANNEALING_OPTIONS: tuple[str, ...] = ("steps", "initial_temperature", "cooling")

#: Default annealing length: ``clip(STEPS_PER_CORE * n, MIN_STEPS, MAX_STEPS)`` proposed moves.
STEPS_PER_CORE = 5000
MIN_STEPS = 20_000
MAX_STEPS = 2_000_000
#: Default geometric cooling ends at ``FINAL_TEMPERATURE_RATIO * T0`` after ``steps`` moves.
FINAL_TEMPERATURE_RATIO = 1e-3
#: Default T0: an average uphill move of the start state is accepted with this probability.
INITIAL_ACCEPTANCE = 0.5
PROBE_MOVES = 1000
_CHUNK = 1 << 16


class PlacementError(ValueError):
    """Raised for invalid placement arguments (traffic, grid, method, options)."""


@dataclass(frozen=True, eq=False)
class Placement:
    """Grid cell (row, col) of every logical core; all cells distinct and inside the grid."""

    positions: np.ndarray  # (n_logical, 2) int64
    grid: tuple[int, int]
    method: str

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions)
        rows, cols = self.grid
        if pos.ndim != 2 or pos.shape[1] != 2:
            raise PlacementError(f"positions must be (n_logical, 2), got shape {pos.shape}")
        if len(pos) and (pos.min() < 0 or pos[:, 0].max() >= rows or pos[:, 1].max() >= cols):
            raise PlacementError(f"positions must lie inside the {rows}x{cols} grid")
        if len(np.unique(pos[:, 0] * cols + pos[:, 1])) != len(pos):
            raise PlacementError("positions must be distinct: two cores share a grid cell")

    @property
    def n_cores(self) -> int:
        return len(self.positions)

    @property
    def cells(self) -> np.ndarray:
        """Row-major cell index of every core."""
        return self.positions[:, 0] * self.grid[1] + self.positions[:, 1]

    def bit_hops(self, traffic: np.ndarray) -> float:
        return bit_hops(traffic, self.positions)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "grid": list(self.grid),
            "positions": self.positions.tolist(),
        }


# ---------------------------------------------------------------------------- validation


def _check_traffic(traffic) -> np.ndarray:
    try:
        t = np.asarray(traffic, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PlacementError(f"traffic must be a numeric (n, n) array: {exc}") from None
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise PlacementError(
            f"traffic must be a square (n_cores, n_cores) array of bits, got shape {t.shape}"
        )
    if t.shape[0] < 1:
        raise PlacementError("traffic must describe at least one logical core, got (0, 0)")
    if not np.all(np.isfinite(t)):
        raise PlacementError("traffic must be finite (found NaN or inf)")
    if np.any(t < 0):
        i, j = np.argwhere(t < 0)[0]
        raise PlacementError(
            f"traffic must be non-negative bits per inference, got {t[i, j]} at [{i}, {j}]"
        )
    return t


def _check_grid(grid) -> tuple[int, int]:
    if not isinstance(grid, (Sequence, np.ndarray)) or len(grid) != 2:
        raise PlacementError(f"grid must be (rows, cols), got {grid!r}")
    rows = positive_int(grid[0], "grid rows", PlacementError)
    return rows, positive_int(grid[1], "grid cols", PlacementError)


def _check_fits(n: int, grid: tuple[int, int]) -> None:
    rows, cols = grid
    if n > rows * cols:
        raise PlacementError(
            f"{n} logical cores are needed but the {rows}x{cols} grid has only "
            f"{rows * cols} cells; use a grid with at least {n} cells"
        )


def _symmetric(t: np.ndarray) -> np.ndarray:
    """S = T + T^T with a zero diagonal, so bit_hops = sum_{i<j} S[i, j] d(i, j)."""
    s = t + t.T
    np.fill_diagonal(s, 0.0)
    return np.ascontiguousarray(s)


# ---------------------------------------------------------------------------- cost


def hop_matrix(positions: np.ndarray) -> np.ndarray:
    """(n, n) Manhattan distances (hops on an XY-routed mesh) between core positions."""
    pos = np.asarray(positions, dtype=np.int64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise PlacementError(f"positions must be (n_cores, 2) (row, col), got {pos.shape}")
    return np.abs(pos[:, None, :] - pos[None, :, :]).sum(axis=2)


def bit_hops(traffic: np.ndarray, positions: np.ndarray) -> float:
    """Sum over core pairs of traffic[i, j] * Manhattan distance (the diagonal costs 0)."""
    t = _check_traffic(traffic)
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape != (t.shape[0], 2):
        raise PlacementError(
            f"positions must be (n_cores={t.shape[0]}, 2) to match traffic, got {pos.shape}"
        )
    return float(np.einsum("ij,ij->", t, hop_matrix(pos).astype(np.float64)))


# ---------------------------------------------------------------------------- kernels


@njit(cache=True)
def _move_delta(S, cell_of, occupant, cell_r, cell_c, a, c):  # pragma: no cover - numba
    """Bit-hop change of moving core ``a`` to cell ``c``, swapping with its occupant if any.

    O(n): only the pairs (a, k) and (b, k) change; the pair (a, b) keeps its distance.
    """
    pa = cell_of[a]
    b = occupant[c]
    ra = cell_r[pa]
    ca = cell_c[pa]
    rc = cell_r[c]
    cc = cell_c[c]
    delta = 0.0
    for k in range(S.shape[0]):
        if k == a or k == b:
            continue
        pk = cell_of[k]
        rk = cell_r[pk]
        ck = cell_c[pk]
        diff = (abs(rc - rk) + abs(cc - ck)) - (abs(ra - rk) + abs(ca - ck))
        if diff != 0:
            delta += S[a, k] * diff
            if b >= 0:
                delta -= S[b, k] * diff
    return delta


@njit(cache=True)
def _probe_uphill(S, cell_of, occupant, cell_r, cell_c, core_pick, cell_pick):  # pragma: no cover
    """Mean positive delta over the given moves from the current state (nothing applied)."""
    total = 0.0
    count = 0
    for t in range(core_pick.shape[0]):
        a = core_pick[t]
        c = cell_pick[t]
        if c >= cell_of[a]:
            c += 1
        d = _move_delta(S, cell_of, occupant, cell_r, cell_c, a, c)
        if d > 0.0:
            total += d
            count += 1
    return total / count if count > 0 else 0.0


@njit(cache=True)
def _anneal_chunk(
    S,
    cell_of,
    occupant,
    cell_r,
    cell_c,
    core_pick,
    cell_pick,
    uniforms,
    temperature,
    cooling,
    cost,
    best_cost,
    best_cell_of,
    eps,
):  # pragma: no cover - numba
    """Run len(core_pick) Metropolis steps in place; return (cost, best_cost, temperature).

    Move t: core ``core_pick[t]`` goes to cell ``cell_pick[t]`` (drawn from [0, m - 1) and
    shifted past the core's own cell), swapping with the occupant when the cell is taken.
    """
    for t in range(core_pick.shape[0]):
        a = core_pick[t]
        pa = cell_of[a]
        c = cell_pick[t]
        if c >= pa:
            c += 1
        delta = _move_delta(S, cell_of, occupant, cell_r, cell_c, a, c)
        accept = delta <= 0.0
        if not accept and temperature > 0.0:
            accept = uniforms[t] < math.exp(-delta / temperature)
        if accept:
            b = occupant[c]
            cell_of[a] = c
            occupant[c] = a
            occupant[pa] = b
            if b >= 0:
                cell_of[b] = pa
            cost += delta
            if cost < best_cost - eps:
                best_cost = cost
                best_cell_of[:] = cell_of
        temperature *= cooling
    return cost, best_cost, temperature


def move_delta(
    traffic: np.ndarray, cells: np.ndarray, grid: tuple[int, int], core: int, cell: int
) -> float:
    """Incremental bit-hop change of moving ``core`` to row-major ``cell`` (swap if occupied).

    A thin wrapper over the annealing kernel's O(n) delta, for tests and diagnostics.
    """
    t = _check_traffic(traffic)
    rows, cols = _check_grid(grid)
    cells = np.asarray(cells, dtype=np.int64)
    occupant = np.full(rows * cols, -1, dtype=np.int64)
    occupant[cells] = np.arange(len(cells))
    cell_r, cell_c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
    return float(
        _move_delta(_symmetric(t), cells.copy(), occupant, cell_r, cell_c, int(core), int(cell))
    )


# ---------------------------------------------------------------------------- methods


def _cells_to_positions(cells: np.ndarray, cols: int) -> np.ndarray:
    r, c = np.divmod(np.asarray(cells, dtype=np.int64), cols)
    return np.ascontiguousarray(np.stack([r, c], axis=1))


def _sequential_cells(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def _random_cells(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(m)[:n].astype(np.int64)


def snake_cells(grid: tuple[int, int]) -> np.ndarray:
    """Row-major cell ids along a boustrophedon path (odd rows reversed): a Hamiltonian path."""
    rows, cols = grid
    cells = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
    cells[1::2] = cells[1::2, ::-1]
    return cells.ravel()


def _spectral_cells(s: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    n = s.shape[0]
    if n <= 2:
        order = np.arange(n)
    else:
        lap = np.diag(s.sum(axis=1)) - s
        _, vecs = np.linalg.eigh(lap)
        fiedler = vecs[:, 1]
        pivot = np.flatnonzero(np.abs(fiedler) > 1e-12)
        if len(pivot) and fiedler[pivot[0]] < 0:  # fix the eigenvector's sign
            fiedler = -fiedler
        order = np.argsort(fiedler, kind="stable")
    cells = np.empty(n, dtype=np.int64)
    cells[order] = snake_cells(grid)[:n]
    return cells


def default_steps(n: int) -> int:
    """Default number of proposed annealing moves for n logical cores."""
    return int(min(max(STEPS_PER_CORE * n, MIN_STEPS), MAX_STEPS))


def _real(v) -> bool:
    """A real number (numpy scalars included), not a bool."""
    return isinstance(v, Real) and not isinstance(v, (bool, np.bool_))


def _annealing_options(options: dict, n: int) -> tuple[int, float | None, float | None]:
    unknown = sorted(set(options) - set(ANNEALING_OPTIONS))
    if unknown:
        raise PlacementError(
            f"unknown annealing option(s) {unknown}; valid: {list(ANNEALING_OPTIONS)}"
        )
    steps = options.get("steps")
    if steps is None:
        steps = default_steps(n)
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 0:
        raise PlacementError(f"annealing steps must be an integer >= 0, got {steps!r}")
    t0 = options.get("initial_temperature")
    if t0 is not None and not (_real(t0) and math.isfinite(t0) and t0 > 0):
        raise PlacementError(
            f"annealing initial_temperature must be a finite number > 0 (bit-hops), got {t0!r}"
        )
    cooling = options.get("cooling")
    if cooling is not None and not (_real(cooling) and math.isfinite(cooling) and 0 < cooling <= 1):
        raise PlacementError(
            f"annealing cooling must be a factor per step in (0, 1], got {cooling!r}"
        )
    return (
        int(steps),
        (None if t0 is None else float(t0)),
        (None if cooling is None else float(cooling)),
    )


def _anneal_cells(
    t: np.ndarray,
    grid: tuple[int, int],
    rng: np.random.Generator,
    steps: int,
    t0: float | None,
    cooling: float | None,
) -> np.ndarray:
    n = t.shape[0]
    rows, cols = grid
    m = rows * cols
    cols_arr = np.arange(m, dtype=np.int64)
    cell_r, cell_c = np.divmod(cols_arr, cols)

    starts = [_sequential_cells(n), _random_cells(n, m, rng)]
    costs = [bit_hops(t, _cells_to_positions(c, cols)) for c in starts]
    start = starts[int(np.argmin(costs))]
    start_cost = min(costs)
    if m < 2 or steps == 0 or start_cost == 0.0:
        return start

    s = _symmetric(t)
    cell_of = start.copy()
    occupant = np.full(m, -1, dtype=np.int64)
    occupant[cell_of] = np.arange(n)

    if t0 is None:
        probes = min(PROBE_MOVES, steps)
        t0 = _probe_uphill(
            s,
            cell_of,
            occupant,
            cell_r,
            cell_c,
            rng.integers(0, n, size=probes),
            rng.integers(0, m - 1, size=probes),
        ) / -math.log(INITIAL_ACCEPTANCE)
    if cooling is None:
        cooling = FINAL_TEMPERATURE_RATIO ** (1.0 / steps)

    best = cell_of.copy()
    cost = best_cost = float(start_cost)
    eps = 1e-9 * max(1.0, float(s.sum()))
    temperature = float(t0)
    done = 0
    while done < steps:  # chunks bound the pre-drawn random numbers' memory
        k = min(_CHUNK, steps - done)
        cost, best_cost, temperature = _anneal_chunk(
            s,
            cell_of,
            occupant,
            cell_r,
            cell_c,
            rng.integers(0, n, size=k),
            rng.integers(0, m - 1, size=k),
            rng.random(k),
            temperature,
            cooling,
            cost,
            best_cost,
            best,
            eps,
        )
        done += k
    # Guard against floating drift of the running cost: never return worse than the start.
    if bit_hops(t, _cells_to_positions(best, cols)) > start_cost:
        return start
    return best


def place(
    traffic: np.ndarray,
    grid: tuple[int, int],
    method: str,
    rng: np.random.Generator | None = None,
    **options,
) -> Placement:
    """Place logical cores (rows/cols of ``traffic``, bits per inference) on a grid.

    ``sequential`` and ``spectral`` are deterministic and ignore ``rng``; ``random`` and
    ``annealing`` need a seeded Generator and are pure functions of inputs and seed.

    Annealing starts from the better of the sequential and a random placement and proposes
    moves of a uniformly chosen core to a uniformly chosen other cell (a swap when the cell is
    occupied). An uphill move of delta bit-hops is accepted with probability exp(-delta / T).
    Options:

    - ``steps``: proposed moves (default ``clip(5000 * n, 20_000, 2_000_000)``);
    - ``initial_temperature`` T0 in bit-hops (default: the mean uphill delta of 1000 probe
      moves from the start, divided by ln 2, so such a move is first accepted half the time);
    - ``cooling``: geometric factor applied to T after every move (default
      ``1e-3 ** (1 / steps)``, so T falls from T0 to T0 / 1000 over the run).

    The best placement visited is returned, so the result is never worse than the start.
    """
    t = _check_traffic(traffic)
    g = _check_grid(grid)
    if method not in METHODS:
        raise PlacementError(f"unknown placement method {method!r}; valid: {list(METHODS)}")
    if method != "annealing" and options:
        raise PlacementError(f"placement method {method!r} takes no options, got {sorted(options)}")
    n = t.shape[0]
    _check_fits(n, g)
    needs = f"rng of placement method {method!r}"
    if method == "sequential":
        cells = _sequential_cells(n)
    elif method == "random":
        cells = _random_cells(n, g[0] * g[1], check_rng(rng, needs, PlacementError))
    elif method == "spectral":
        cells = _spectral_cells(_symmetric(t), g)
    else:
        steps, t0, cooling = _annealing_options(options, n)
        cells = _anneal_cells(t, g, check_rng(rng, needs, PlacementError), steps, t0, cooling)
    return Placement(_cells_to_positions(cells, g[1]), g, method)


def placement_rng(method: str, seed: int) -> np.random.Generator:
    """The stream of one placement method: ``SeedSequence(seed, spawn_key=(tag of method,))``,
    so a method's result depends only on the traffic, the grid and the seed, never on which
    other methods ran before it."""
    if method not in METHODS:
        raise PlacementError(f"unknown placement method {method!r}; valid: {list(METHODS)}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise PlacementError(f"placement seed must be an integer >= 0, got {seed!r}")
    tag = int.from_bytes(method.encode(), "little") % (1 << 63)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(tag,)))


def place_seeded(
    traffic: np.ndarray, grid: tuple[int, int], method: str, seed: int, **options
) -> Placement:
    """:func:`place` with the method's own stream of ``seed`` (:func:`placement_rng`)."""
    return place(traffic, grid, method, placement_rng(method, seed), **options)


# ---------------------------------------------------------------------------- reports


@dataclass(frozen=True, eq=False)
class PlacementReport:
    """Placements of one traffic matrix by several methods, with their bit-hops."""

    grid: tuple[int, int]
    n_cores: int
    total_bits: float  # off-diagonal bits per inference
    placements: dict[str, Placement] = field(default_factory=dict)
    bit_hops: dict[str, float] = field(default_factory=dict)

    def mean_hops(self, method: str) -> float:
        """Average hops travelled per bit (0 when there is no traffic)."""
        return self.bit_hops[method] / self.total_bits if self.total_bits > 0 else 0.0

    @property
    def best_method(self) -> str:
        return min(self.bit_hops, key=lambda k: (self.bit_hops[k], k))

    def as_dict(self) -> dict:
        out = {
            "grid": list(self.grid),
            "n_cores": self.n_cores,
            "total_bits": self.total_bits,
            "bit_hops": dict(self.bit_hops),
            "mean_hops_per_bit": {k: self.mean_hops(k) for k in self.bit_hops},
            "best_method": self.best_method,
        }
        if "sequential" in self.bit_hops and "annealing" in self.bit_hops:
            seq = self.bit_hops["sequential"]
            out["annealing_reduction"] = 1.0 - self.bit_hops["annealing"] / seq if seq else 0.0
        return out


def placement_report(
    traffic: np.ndarray,
    grid: tuple[int, int],
    seed: int | np.random.Generator,
    methods: Sequence[str] = ("sequential", "random", "annealing"),
    progress: Callable[[str], None] | None = None,
    **options,
) -> PlacementReport:
    """Place with each method, each from its own stream of ``seed``
    (:func:`placement_rng`; a Generator gives one seed drawn before any method runs);
    ``options`` go to annealing. ``progress(method)`` is called after each method's placement
    is done."""
    t = _check_traffic(traffic)
    g = _check_grid(grid)
    methods = tuple(methods)
    if not methods:
        raise PlacementError(f"placement_report needs at least one method of {list(METHODS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise PlacementError(f"unknown placement method(s) {unknown}; valid: {list(METHODS)}")
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 1 << 63))
    placements = {}
    for m in methods:
        placements[m] = place_seeded(t, g, m, seed, **(options if m == "annealing" else {}))
        if progress is not None:
            progress(m)
    off_diag = float(t.sum() - np.trace(t))
    return PlacementReport(
        grid=g,
        n_cores=t.shape[0],
        total_bits=off_diag,
        placements=placements,
        bit_hops={m: p.bit_hops(t) for m, p in placements.items()},
    )


def compare_placements(
    traffic: np.ndarray,
    grid: tuple[int, int],
    seed: int | np.random.Generator,
    methods: Sequence[str] = ("sequential", "random", "annealing"),
    **options,
) -> dict:
    """JSON-ready bit-hops of each method (see :meth:`PlacementReport.as_dict`)."""
    return placement_report(traffic, grid, seed, methods, **options).as_dict()
