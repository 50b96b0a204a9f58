"""The packet network against BookSim2 on its reference configuration (short runs).

Reference figures: BookSim2 (Jiang et al., ISPASS 2013) on an 8x8 / 16x16 mesh, XY routing,
8-flit VC buffers, wait-for-tail-credit, lookahead routing, 1-cycle VA/SA/ST/link, credit delay
2, iSLIP-1, input speedup 2, uniform traffic of 4-flit packets; our defaults are that
configuration. Longer runs and the full table: benchmarks/validate_noc.py.
"""

from __future__ import annotations

import pytest

from sim.noc import NocConfig, SyntheticTraffic, simulate_noc


def _run(rate: float, *, warmup=1000, measure=3000, **cfg):
    return simulate_noc(NocConfig(**cfg), SyntheticTraffic(rate=rate), seed=1, warmup=warmup,
                        measure=measure)


def _analytic_hops(k: int) -> float:
    # mean routers traversed, uniform traffic with self-traffic: 2(k^2-1)/(3k) + 1
    return 2 * (k * k - 1) / (3 * k) + 1


@pytest.mark.parametrize("k", [8, 16])
def test_average_hops_within_one_percent(k):
    res = _run(0.2 if k == 8 else 0.1, measure=4000 if k == 8 else 2000, rows=k, cols=k)
    assert res.avg_hops == pytest.approx(_analytic_hops(k), rel=0.01)
    assert not res.saturated and res.drained


def test_zero_load_latency():
    # ~4 cycles per router + 3 of serialisation + 2; BookSim2: 29.9 cycles at 0.01 (8x8)
    res = _run(0.01, measure=8000, vcs=2)
    assert abs(res.packet_latency - (4 * res.avg_hops + 5)) <= 1.0
    assert abs(res.packet_latency - 29.9) <= 1.0


@pytest.mark.parametrize(
    ("vcs", "rate", "booksim"),
    [(8, 0.05, 30.3), (8, 0.1, 31.1), (8, 0.2, 33.6), (8, 0.3, 38.4), (2, 0.05, 30.4),
     (2, 0.1, 32.3)],
)
def test_latency_within_five_percent_of_booksim(vcs, rate, booksim):
    res = _run(rate, vcs=vcs)
    assert res.packet_latency == pytest.approx(booksim, rel=0.05)
    assert res.accepted_rate == pytest.approx(rate, rel=0.05)


@pytest.mark.parametrize(
    ("vcs", "wait", "booksim"), [(8, True, 0.43), (2, True, 0.20), (2, False, 0.40)]
)
def test_saturation_throughput_within_five_percent(vcs, wait, booksim):
    res = _run(1.0, measure=2000, vcs=vcs, wait_for_tail_credit=wait)
    assert res.saturated
    assert res.accepted_rate == pytest.approx(booksim, rel=0.05)
