"""Properties of generated ScRRAMBLe routing: balance, fan-out, determinism, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.routing import (
    ROUTING_DTYPE,
    RoutingError,
    check_balanced,
    draw_routing,
    generate_routing,
    imbalance,
    is_balanced,
    routing_matrix,
    routing_stats,
)

FAST = settings(max_examples=40, deadline=None)


@st.composite
def geometries(draw, max_slots: int = 16):
    """(n_src, n_dst, core_size, slot_size, p) with slot_size dividing core_size."""
    n_src = draw(st.integers(1, 8))
    n_dst = draw(st.integers(1, 8))
    core = draw(st.sampled_from([32, 48, 60, 64, 96, 128, 192, 256]))
    divisors = [d for d in range(1, core + 1) if core % d == 0 and 2 <= core // d <= max_slots]
    slot = draw(st.sampled_from(divisors))
    p = draw(st.floats(0.0, 1.0))
    return n_src, n_dst, core, slot, p


@FAST
@given(geometries(), st.integers(0, 2**32 - 1))
def test_generated_routing_is_balanced(geom, seed):
    n_src, n_dst, core, slot, p = geom
    d = draw_routing(
        n_src, n_dst, core_size=core, slot_size=slot, p=p, rng=np.random.default_rng(seed)
    )
    s = core // slot
    assert d.C.shape == (n_src, s, n_dst, s)
    assert d.C.dtype == ROUTING_DTYPE
    assert d.fanout.shape == (n_src, s)
    assert np.all(d.C.sum(axis=3, dtype=np.int64) == 0)
    assert is_balanced(d.C)
    check_balanced(d.C)  # does not raise
    # net +1 entries left in C never exceed the drawn fan-out (cancellation only removes)
    net_plus = np.clip(d.C, 0, None).sum(axis=(2, 3), dtype=np.int64)
    assert np.all(net_plus <= d.fanout)
    assert np.all((d.fanout >= 0) & (d.fanout <= n_dst * s))
    np.testing.assert_array_equal(routing_stats(d.C).fanout, net_plus)


@FAST
@given(
    st.integers(1, 8), st.sampled_from([4, 8, 16]), st.floats(0.02, 0.98), st.integers(0, 2**32 - 1)
)
def test_mean_fanout_matches_binomial_mean(n_dst, slots, p, seed):
    n_src = 16  # 16 * slots source slots: at least 64 independent draws
    d = draw_routing(
        n_src, n_dst, core_size=slots * 8, slot_size=8, p=p, rng=np.random.default_rng(seed)
    )
    n = n_dst * slots
    samples = n_src * slots
    stderr = np.sqrt(n * p * (1 - p) / samples)
    assert abs(d.fanout.mean() - n * p) <= 5 * stderr + 1e-12


def test_p_zero_gives_zeros_and_p_one_gives_full_fanout():
    d0 = draw_routing(3, 4, core_size=64, slot_size=16, p=0.0, rng=np.random.default_rng(0))
    assert not d0.C.any() and not d0.fanout.any()
    d1 = draw_routing(3, 4, core_size=64, slot_size=16, p=1.0, rng=np.random.default_rng(0))
    assert np.all(d1.fanout == 4 * 4)
    assert is_balanced(d1.C)


def test_single_slot_cores_are_refused():
    # with one slot per core the -1 always lands on the +1's slot: nothing would be routed
    with pytest.raises(RoutingError, match="at least 2 slots"):
        draw_routing(2, 3, core_size=64, slot_size=64, p=1.0, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_src_cores": float("nan")},
        {"core_size": float("inf")},
        {"p": None},
        {"p": "a"},
        {"p": True},
    ],
)
def test_malformed_arguments_raise_routing_error(kwargs):
    args = {"n_src_cores": 2, "n_dst_cores": 2, "core_size": 64, "slot_size": 16, "p": 0.5}
    args.update(kwargs)
    with pytest.raises(RoutingError):
        generate_routing(
            args.pop("n_src_cores"), args.pop("n_dst_cores"), rng=np.random.default_rng(0), **args
        )


def test_same_seed_same_routing_and_different_seeds_differ():
    kw = {"core_size": 256, "slot_size": 64, "p": 0.5}
    a = generate_routing(4, 4, rng=np.random.default_rng(123), **kw)
    b = generate_routing(4, 4, rng=np.random.default_rng(123), **kw)
    c = generate_routing(4, 4, rng=np.random.default_rng(124), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(a, draw_routing(4, 4, rng=np.random.default_rng(123), **kw).C)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"core_size": 256, "slot_size": 48}, "slot_size 48 must divide core_size 256"),
        ({"core_size": 0}, "core_size"),
        ({"slot_size": -4}, "slot_size"),
        ({"core_size": 64.5}, "core_size"),
        ({"p": -0.1}, r"p must lie in \[0, 1\]"),
        ({"p": 1.5}, r"p must lie in \[0, 1\]"),
        ({"p": float("nan")}, r"p must lie in \[0, 1\]"),
        ({"p": float("inf")}, r"p must lie in \[0, 1\]"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(RoutingError, match=match):
        draw_routing(2, 2, rng=np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize(
    ("n_src", "n_dst", "name"),
    [
        (0, 2, "n_src_cores"),
        (-1, 2, "n_src_cores"),
        (2, 0, "n_dst_cores"),
        (2, -3, "n_dst_cores"),
        (1.5, 2, "n_src_cores"),
    ],
)
def test_bad_core_counts_raise(n_src, n_dst, name):
    with pytest.raises(RoutingError, match=f"{name} must be an integer >= 1"):
        generate_routing(n_src, n_dst, rng=np.random.default_rng(0))


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_non_generator_rng_raises(rng):
    with pytest.raises(RoutingError, match="numpy.random.Generator"):
        generate_routing(2, 2, rng=rng)
    assert issubclass(RoutingError, ValueError)


def test_check_balanced_names_the_offending_entry():
    C = np.zeros((2, 3, 2, 3), dtype=np.int8)
    C[0, 0, 1, 0], C[0, 0, 1, 2] = 1, -1  # balanced pair
    C[1, 2, 0, 1] = 1  # unbalanced: source core 1 slot 2 into destination core 0
    assert not is_balanced(C)
    assert imbalance(C)[1, 2, 0] == 1
    with pytest.raises(
        RoutingError,
        match=r"layer 3 .*source core 1 slot 2 sums to 1 "
        r"into destination core 0 \(1 unbalanced",
    ):
        check_balanced(C, where="layer 3")
    C[1, 2, 0, 0] = -2
    with pytest.raises(RoutingError, match="sums to -1"):
        check_balanced(C)


@pytest.mark.parametrize("seed", range(3))
def test_stats_and_links_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    C = generate_routing(3, 2, core_size=32, slot_size=8, p=0.3, rng=rng)
    ns, s, nd, _ = C.shape
    fan = np.zeros((ns, s), int)
    links = np.zeros((ns, s, nd), bool)
    routes_in = np.zeros((nd, s), int)
    for i in range(ns):
        for j in range(s):
            for k in range(nd):
                for m in range(s):
                    v = int(C[i, j, k, m])
                    fan[i, j] += max(v, 0)
                    links[i, j, k] |= v != 0
                    routes_in[k, m] += abs(v)
    st_ = routing_stats(C)
    np.testing.assert_array_equal(st_.fanout, fan)
    np.testing.assert_array_equal(st_.links, links)
    np.testing.assert_array_equal(st_.routes_per_dst_slot, routes_in)
    assert st_.n_links == links.sum()
    d = st_.as_dict()
    assert d["mean_fanout"] == pytest.approx(fan.mean())
    assert d["max_fanout"] == fan.max()
    assert d["max_routes_per_dst_slot"] == routes_in.max()
    assert d["mean_routes_per_dst_slot"] == pytest.approx(routes_in.mean())


def test_routing_matrix_flattens_source_and_destination_slots():
    C = generate_routing(2, 3, core_size=32, slot_size=8, p=0.4, rng=np.random.default_rng(5))
    r = routing_matrix(C)
    assert r.shape == (2 * 4, 3 * 4) and r.dtype == np.float32 and r.flags.c_contiguous
    for i in range(2):
        for j in range(4):
            for k in range(3):
                for m in range(4):
                    assert r[i * 4 + j, k * 4 + m] == C[i, j, k, m]
