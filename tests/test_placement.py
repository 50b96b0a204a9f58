"""Placement of logical cores on a grid: validity, determinism, annealing quality, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.placement import (
    METHODS,
    Placement,
    PlacementError,
    bit_hops,
    compare_placements,
    default_steps,
    hop_matrix,
    move_delta,
    place,
    placement_report,
    snake_cells,
)


def chain_traffic(n: int, w: float = 100.0, seed: int = 0) -> np.ndarray:
    """Heavy traffic along a chain of n cores with random labels (one direction per link)."""
    lab = np.random.default_rng(seed).permutation(n)
    t = np.zeros((n, n))
    t[lab[:-1], lab[1:]] = w
    return t


def ring_traffic(n: int, w: float = 50.0, seed: int = 0) -> np.ndarray:
    lab = np.random.default_rng(seed).permutation(n)
    t = np.zeros((n, n))
    t[lab, np.roll(lab, -1)] = w
    return t


def random_traffic(n: int, seed: int, density: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 1000, size=(n, n)).astype(float)
    t *= rng.random((n, n)) < density
    return t


def brute_bit_hops(t: np.ndarray, pos: np.ndarray) -> float:
    total = 0.0
    for i in range(len(t)):
        for j in range(len(t)):
            total += t[i, j] * (abs(pos[i][0] - pos[j][0]) + abs(pos[i][1] - pos[j][1]))
    return total


def assert_valid(p: Placement, n: int, grid: tuple[int, int]) -> None:
    pos = p.positions
    assert pos.shape == (n, 2)
    assert np.issubdtype(pos.dtype, np.integer)
    assert np.all(pos >= 0)
    assert np.all(pos[:, 0] < grid[0]) and np.all(pos[:, 1] < grid[1])
    assert len({(int(r), int(c)) for r, c in pos}) == n


# ---------------------------------------------------------------------------- validity


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("n", "grid"), [(1, (1, 1)), (5, (1, 8)), (16, (4, 4)), (11, (4, 4)), (20, (3, 9))]
)
def test_positions_distinct_and_inside_grid(method, n, grid):
    t = random_traffic(n, seed=n)
    p = place(
        t,
        grid,
        method,
        np.random.default_rng(3),
        **({"steps": 3000} if method == "annealing" else {}),
    )
    assert_valid(p, n, grid)
    assert p.grid == grid and p.method == method
    np.testing.assert_array_equal(p.cells, p.positions[:, 0] * grid[1] + p.positions[:, 1])


def test_sequential_is_row_major():
    p = place(random_traffic(10, 0), (3, 4), "sequential")
    expected = [(i // 4, i % 4) for i in range(10)]
    assert [tuple(map(int, x)) for x in p.positions] == expected


def test_snake_cells_is_a_hamiltonian_path():
    cells = snake_cells((4, 5))
    assert sorted(cells.tolist()) == list(range(20))
    r, c = np.divmod(cells, 5)
    steps = np.abs(np.diff(r)) + np.abs(np.diff(c))
    assert np.all(steps == 1)


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("method", ["random", "annealing"])
def test_same_seed_same_placement(method):
    t = random_traffic(20, seed=1)
    a = place(
        t,
        (5, 5),
        method,
        np.random.default_rng(42),
        **({"steps": 5000} if method == "annealing" else {}),
    )
    b = place(
        t,
        (5, 5),
        method,
        np.random.default_rng(42),
        **({"steps": 5000} if method == "annealing" else {}),
    )
    np.testing.assert_array_equal(a.positions, b.positions)


def test_random_differs_between_seeds():
    t = random_traffic(20, seed=1)
    a = place(t, (8, 8), "random", np.random.default_rng(0))
    b = place(t, (8, 8), "random", np.random.default_rng(1))
    assert not np.array_equal(a.positions, b.positions)


def test_spectral_is_deterministic_and_ignores_rng():
    t = random_traffic(12, seed=5)
    a = place(t, (4, 4), "spectral", np.random.default_rng(0))
    b = place(t, (4, 4), "spectral")
    np.testing.assert_array_equal(a.positions, b.positions)


# ---------------------------------------------------------------------------- annealing


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealing_never_worse_than_its_start(seed):
    t = random_traffic(14, seed=seed)
    grid = (4, 5)
    seq = bit_hops(t, place(t, grid, "sequential").positions)
    # annealing draws its random start first, so the same seed reproduces that start
    rnd = bit_hops(t, place(t, grid, "random", np.random.default_rng(seed)).positions)
    start = min(seq, rnd)
    zero = place(t, grid, "annealing", np.random.default_rng(seed), steps=0)
    assert bit_hops(t, zero.positions) == pytest.approx(start)
    for opts in ({"steps": 2000}, {"steps": 300, "initial_temperature": 1e12, "cooling": 1.0}):
        p = place(t, grid, "annealing", np.random.default_rng(seed), **opts)
        assert bit_hops(t, p.positions) <= start + 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealing_solves_a_chain_on_6x6(seed):
    n, w = 36, 100.0
    t = chain_traffic(n, w, seed)
    optimum = (n - 1) * w  # a snake path puts every link at distance 1
    seq = bit_hops(t, place(t, (6, 6), "sequential").positions)
    got = bit_hops(t, place(t, (6, 6), "annealing", np.random.default_rng(seed)).positions)
    assert got >= optimum  # no placement beats one hop per link
    assert got < seq
    assert got <= 1.25 * optimum, (got / optimum, seq / optimum)


def test_annealing_solves_a_ring_on_4x4():
    n, w = 16, 50.0
    t = ring_traffic(n, w, seed=3)
    got = bit_hops(t, place(t, (4, 4), "annealing", np.random.default_rng(7)).positions)
    assert n * w <= got <= 1.25 * n * w  # a Hamiltonian cycle of the 4x4 grid has n links


def test_annealing_uses_spare_cells():
    # 4 cores in a chain on a 1x8 line: the sequential placement is already optimal only when
    # labels follow the chain; random labels need moves into the empty cells.
    t = chain_traffic(4, 10.0, seed=4)
    got = bit_hops(t, place(t, (1, 8), "annealing", np.random.default_rng(0)).positions)
    assert got == pytest.approx(30.0)


def test_spectral_recovers_chain_optimum():
    t = chain_traffic(30, 10.0, seed=9)
    assert bit_hops(t, place(t, (5, 6), "spectral").positions) == pytest.approx(29 * 10.0)


def test_temperature_and_cooling_options_take_effect():
    t = chain_traffic(36, 100.0, seed=1)
    rng = np.random.default_rng
    steps = 20_000
    greedy = place(
        t, (6, 6), "annealing", rng(0), steps=steps, initial_temperature=1e-6, cooling=1.0
    )
    hot = place(t, (6, 6), "annealing", rng(0), steps=steps, initial_temperature=1e9, cooling=1.0)
    quenched = place(
        t, (6, 6), "annealing", rng(0), steps=steps, initial_temperature=1e9, cooling=0.995
    )
    g, h, q = (bit_hops(t, p.positions) for p in (greedy, hot, quenched))
    assert g < 0.8 * h  # a walk that accepts everything only keeps the best random state
    assert q < 0.8 * h  # cooling turns the same hot start into a descent


def test_zero_traffic_returns_sequential_start():
    p = place(np.zeros((6, 6)), (3, 3), "annealing", np.random.default_rng(0))
    np.testing.assert_array_equal(
        p.positions, place(np.zeros((6, 6)), (3, 3), "sequential").positions
    )


def test_diagonal_traffic_is_ignored():
    t = random_traffic(10, seed=2)
    t2 = t + np.diag(np.full(10, 1e6))
    a = place(t, (4, 4), "annealing", np.random.default_rng(1), steps=4000)
    b = place(t2, (4, 4), "annealing", np.random.default_rng(1), steps=4000)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert bit_hops(t2, a.positions) == pytest.approx(bit_hops(t, a.positions))


def test_default_steps_scale_with_cores():
    assert default_steps(1) == 20_000
    assert default_steps(100) > default_steps(10)
    assert default_steps(10**6) == 2_000_000


# ---------------------------------------------------------------------------- cost functions


@pytest.mark.parametrize("seed", range(4))
def test_incremental_delta_equals_full_recomputation(seed):
    rng = np.random.default_rng(seed)
    n, grid = 9, (3, 4)  # three empty cells, so both swaps and moves to empty cells occur
    t = random_traffic(n, seed=seed + 10)
    t[np.diag_indices(n)] = 77.0  # diagonal must not matter
    cells = rng.permutation(12)[:n]
    cols = grid[1]
    for _ in range(40):
        core = int(rng.integers(n))
        cell = int(rng.integers(12))
        if cell == cells[core]:
            continue
        before = bit_hops(t, np.stack(np.divmod(cells, cols), axis=1))
        after_cells = cells.copy()
        other = np.flatnonzero(cells == cell)
        if len(other):
            after_cells[other[0]] = cells[core]
        after_cells[core] = cell
        after = bit_hops(t, np.stack(np.divmod(after_cells, cols), axis=1))
        assert move_delta(t, cells, grid, core, cell) == pytest.approx(after - before, abs=1e-6)
        cells = after_cells


@pytest.mark.parametrize("seed", range(3))
def test_bit_hops_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 7
    t = rng.random((n, n)) * 100
    pos = np.stack(np.divmod(rng.permutation(20)[:n], 5), axis=1)
    assert bit_hops(t, pos) == pytest.approx(brute_bit_hops(t, pos))
    h = hop_matrix(pos)
    for i in range(n):
        for j in range(n):
            assert h[i, j] == abs(pos[i, 0] - pos[j, 0]) + abs(pos[i, 1] - pos[j, 1])


# ---------------------------------------------------------------------------- reports


def test_compare_placements_reports_every_method():
    t = chain_traffic(16, 10.0, seed=2)
    rep = placement_report(t, (4, 4), np.random.default_rng(0), steps=5000)
    d = compare_placements(t, (4, 4), np.random.default_rng(0), steps=5000)
    assert set(d["bit_hops"]) == {"sequential", "random", "annealing"}
    for m, p in rep.placements.items():
        assert d["bit_hops"][m] == pytest.approx(bit_hops(t, p.positions))
        assert d["mean_hops_per_bit"][m] == pytest.approx(d["bit_hops"][m] / t.sum())
    assert d["bit_hops"]["annealing"] <= d["bit_hops"]["sequential"]
    assert d["total_bits"] == pytest.approx(150.0)
    assert d["n_cores"] == 16 and d["grid"] == [4, 4]
    assert d["best_method"] == min(d["bit_hops"], key=d["bit_hops"].get)
    assert d["annealing_reduction"] == pytest.approx(
        1 - d["bit_hops"]["annealing"] / d["bit_hops"]["sequential"]
    )
    d2 = compare_placements(t, (4, 4), np.random.default_rng(0), ("spectral",))
    assert d2["bit_hops"] == {"spectral": pytest.approx(150.0)}
    assert "annealing_reduction" not in d2


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("traffic", "match"),
    [
        (np.zeros((3, 4)), "square"),
        (np.zeros((2, 2, 2)), "square"),
        (np.zeros((0, 0)), "at least one"),
        (np.array([[0, -1.0], [0, 0]]), r"non-negative.*\[0, 1\]"),
        (np.array([[0, np.nan], [0, 0]]), "finite"),
        (np.array([[0, np.inf], [0, 0]]), "finite"),
        ([["a", "b"], ["c", "d"]], "numeric"),
    ],
)
def test_bad_traffic_raises(traffic, match):
    with pytest.raises(PlacementError, match=match):
        place(traffic, (4, 4), "sequential")


def test_too_many_cores_says_needed_and_available():
    with pytest.raises(PlacementError, match=r"17 logical cores .* 4x4 grid has only 16 cells"):
        place(np.zeros((17, 17)), (4, 4), "annealing", np.random.default_rng(0))


@pytest.mark.parametrize("grid", [(0, 4), (4, -1), (2,), 5, (2.5, 2), (True, 3), (2, 2, 2)])
def test_bad_grid_raises(grid):
    with pytest.raises(PlacementError, match="grid"):
        place(np.zeros((2, 2)), grid, "sequential")


def test_unknown_method_lists_valid_ones():
    with pytest.raises(PlacementError, match="'greedy'.*sequential.*random.*annealing"):
        place(np.zeros((2, 2)), (2, 2), "greedy")
    with pytest.raises(PlacementError, match="greedy"):
        compare_placements(np.zeros((2, 2)), (2, 2), np.random.default_rng(0), ("greedy",))


@pytest.mark.parametrize("method", ["random", "annealing"])
@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_random_methods_need_a_generator(method, rng):
    with pytest.raises(PlacementError, match="numpy.random.Generator"):
        place(np.ones((3, 3)), (2, 2), method, rng)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"step": 10}, r"unknown annealing option.*step.*valid"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"initial_temperature": 0.0}, "initial_temperature"),
        ({"initial_temperature": float("nan")}, "initial_temperature"),
        ({"cooling": 0.0}, "cooling"),
        ({"cooling": 1.5}, "cooling"),
        ({"initial_temperature": True}, "initial_temperature"),
        ({"cooling": True}, "cooling"),
        ({"cooling": "0.9"}, "cooling"),
    ],
)
def test_bad_annealing_options_raise(opts, match):
    with pytest.raises(PlacementError, match=match):
        place(np.ones((3, 3)), (2, 2), "annealing", np.random.default_rng(0), **opts)


def test_numpy_scalar_annealing_options_are_accepted():
    """numpy scalars work as annealing options exactly like the Python numbers they hold, the
    options really steer the annealing, and bad numpy values are refused like bad floats."""
    t = random_traffic(8, seed=4)
    run = lambda **kw: place(t, (3, 3), "annealing", np.random.default_rng(2), **kw)
    a = run(steps=np.int64(500), initial_temperature=np.float32(5.0), cooling=np.float32(0.99))
    b = run(steps=500, initial_temperature=float(np.float32(5.0)),
            cooling=float(np.float32(0.99)))
    np.testing.assert_array_equal(a.positions, b.positions)
    # the options take effect: a frozen (greedy) run beats a hot random walk that never cools
    cold = run(steps=np.int64(2000), initial_temperature=np.float64(1e-9), cooling=np.float32(1))
    hot = run(steps=np.int64(2000), initial_temperature=np.float64(1e12), cooling=np.float32(1))
    assert bit_hops(t, cold.positions) < bit_hops(t, hot.positions)
    assert not np.array_equal(a.positions, cold.positions) or not np.array_equal(
        a.positions, hot.positions)
    for bad in ({"steps": np.float64(10.0)}, {"initial_temperature": np.float32(-1)},
                {"initial_temperature": np.float64("nan")}, {"cooling": np.float32(1.5)},
                {"cooling": np.float64(0)}):
        with pytest.raises(PlacementError, match="annealing"):
            run(**bad)


def test_report_needs_a_method():
    with pytest.raises(PlacementError, match="at least one method"):
        compare_placements(np.ones((2, 2)), (2, 2), np.random.default_rng(0), ())


def test_options_for_methods_without_options_raise():
    with pytest.raises(PlacementError, match="takes no options"):
        place(np.ones((3, 3)), (2, 2), "sequential", steps=10)


def test_bit_hops_shape_mismatch_and_bad_placement():
    with pytest.raises(PlacementError, match=r"n_cores=3"):
        bit_hops(np.ones((3, 3)), np.zeros((2, 2), dtype=int))
    with pytest.raises(PlacementError, match="distinct"):
        Placement(np.array([[0, 0], [0, 0]]), (2, 2), "manual")
    with pytest.raises(PlacementError, match="inside"):
        Placement(np.array([[0, 0], [2, 0]]), (2, 2), "manual")
    assert issubclass(PlacementError, ValueError)
