"""Tree-replicated multicast against the unicast-equivalent traffic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.noc import NocConfig, NocConfigError, Trace, min_hops, simulate_noc


def _mc_trace(rng: np.random.Generator, n_routers: int, n_msg: int, spread: int,
              max_dst: int = 6, bits: int = 200) -> Trace:
    src, ptr, dst = [], [0], []
    for _ in range(n_msg):
        src.append(int(rng.integers(0, n_routers)))
        k = int(rng.integers(1, max_dst + 1))
        dst.extend(rng.choice(n_routers, size=k, replace=False).tolist())
        ptr.append(len(dst))
    m = len(src)
    return Trace(
        msg_src=np.array(src), msg_dst_ptr=np.array(ptr), msg_dst=np.array(dst),
        msg_bits=np.full(m, bits), msg_producer=np.full(m, -1),
        msg_cycle=np.sort(rng.integers(0, spread, size=m)), msg_dst_task=np.full(len(dst), -1),
        msg_tag=np.arange(m),
    )


def test_isolated_multicast_reaches_each_destination_at_zero_load_time():
    cfg = NocConfig(rows=4, cols=4, multicast=True, link_width_bits=128, header_bits=32)
    dsts = np.array([3, 12, 15, 0, 6, 5])
    tr = Trace(
        msg_src=np.array([5]), msg_dst_ptr=np.array([0, 6]), msg_dst=dsts,
        msg_bits=np.array([300]), msg_producer=np.array([-1]), msg_cycle=np.array([2]),
        msg_dst_task=np.full(6, -1), msg_tag=np.array([0]),
    )
    res = simulate_noc(cfg, tr)
    hops = min_hops(cfg, np.full(6, 5), dsts)
    assert list(res.trace.dst_deliver - 2) == list(4 * hops + 2 + 2)
    # the tree: 3 flits on 15 links of the XY tree (and 6 ejections), not 3 x 19 routers
    assert res.flit_hops == 3 * 15 and res.injected_flits == 3
    assert res.ejected_flits == 18 and res.replicated_flits == 15


@pytest.mark.parametrize(("routing", "seed"), [("xy", 0), ("yx", 1)])
def test_multicast_equals_unicast_equivalent_deliveries(routing, seed):
    rng = np.random.default_rng(seed)
    tr = _mc_trace(rng, 36, n_msg=150, spread=3000)
    uni = simulate_noc(NocConfig(rows=6, cols=6, routing=routing), tr)
    mc = simulate_noc(NocConfig(rows=6, cols=6, routing=routing, multicast=True), tr)
    flits = NocConfig().packet_flits(200)
    ndst = int(tr.msg_dst_ptr[-1])
    for res in (uni, mc):
        assert np.all(res.trace.dst_deliver > 0) and res.packets == ndst
        assert res.ejected_flits == ndst * flits  # every copy once, nothing extra
        assert res.injected_flits + res.replicated_flits == res.ejected_flits
        assert res.accepted_per_node.sum() * res.window[1] == pytest.approx(ndst * flits)
    assert mc.injected_flits == tr.n_messages * flits
    assert mc.flit_hops < uni.flit_hops
    assert mc.avg_hops == pytest.approx(uni.avg_hops)  # per-copy path lengths are the same


def test_heavy_multicast_burst_completes():
    # everything released within 50 cycles: the network is flooded, yet every copy arrives
    rng = np.random.default_rng(7)
    tr = _mc_trace(rng, 16, n_msg=400, spread=50, max_dst=8, bits=400)
    cfg = NocConfig(rows=4, cols=4, vcs=2, buffer_depth=4, multicast=True,
                    watchdog_cycles=2000)
    res = simulate_noc(cfg, tr)
    assert np.all(res.trace.msg_deliver > 0)
    assert res.injected_flits + res.replicated_flits == res.ejected_flits


def test_multicast_feeds_a_task_on_every_destination():
    cfg = NocConfig(rows=3, cols=3, multicast=True)
    tr = Trace(
        msg_src=np.array([4]), msg_dst_ptr=np.array([0, 3]), msg_dst=np.array([0, 2, 8]),
        msg_bits=np.array([64]), msg_producer=np.array([0]), msg_cycle=np.array([0]),
        msg_dst_task=np.array([1, 2, 3]), msg_tag=np.array([0]),
        task_core=np.array([4, 0, 2, 8]), task_start=np.zeros(4, np.int64),
        task_duration=np.array([5, 1, 1, 1]), task_inputs=np.array([0, 1, 1, 1]),
    )
    tt = simulate_noc(cfg, tr).trace
    assert list(tt.task_start[1:]) == list(tt.dst_deliver)
    assert np.all(tt.dst_deliver == 5 + 4 * 3 + 2)  # corners of a 3x3 from the centre


def test_multicast_settings_are_checked():
    with pytest.raises(NocConfigError, match="multicast"):
        NocConfig(topology="torus", multicast=True)
    with pytest.raises(NocConfigError, match="multicast"):
        NocConfig(wait_for_tail_credit=False, multicast=True)
    cfg = NocConfig(rows=2, cols=2, multicast=True, buffer_depth=2, link_width_bits=32)
    dup = Trace(
        msg_src=np.array([0]), msg_dst_ptr=np.array([0, 2]), msg_dst=np.array([3, 3]),
        msg_bits=np.array([8]), msg_producer=np.array([-1]), msg_cycle=np.array([0]),
        msg_dst_task=np.array([-1, -1]), msg_tag=np.array([0]),
    )
    with pytest.raises(NocConfigError, match="twice"):
        dup.validate(cfg)
    long = Trace(
        msg_src=np.array([0]), msg_dst_ptr=np.array([0, 2]), msg_dst=np.array([1, 3]),
        msg_bits=np.array([200]), msg_producer=np.array([-1]), msg_cycle=np.array([0]),
        msg_dst_task=np.array([-1, -1]), msg_tag=np.array([0]),
    )
    with pytest.raises(NocConfigError, match="fit one VC buffer"):
        long.validate(cfg)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 5),
    cols=st.integers(1, 5),
    vcs=st.integers(1, 4),
    depth=st.integers(2, 6),
    routing=st.sampled_from(["xy", "yx"]),
    multicast=st.booleans(),
)
def test_any_trace_delivers_every_copy_exactly_once(seed, rows, cols, vcs, depth, routing,
                                                   multicast):
    rng = np.random.default_rng(seed)
    n = rows * cols
    cfg = NocConfig(rows=rows, cols=cols, vcs=vcs, buffer_depth=depth, routing=routing,
                    multicast=multicast, link_width_bits=64, header_bits=16,
                    watchdog_cycles=1000)
    tr = _mc_trace(rng, n, n_msg=int(rng.integers(1, 60)), spread=int(rng.integers(1, 200)),
                   max_dst=min(n, 5), bits=int(rng.integers(0, 64 * depth - 16 + 1)))
    res = simulate_noc(cfg, tr)
    flits = cfg.packet_flits(int(tr.msg_bits[0]))
    k = int(tr.msg_dst_ptr[-1])
    assert np.all(res.trace.dst_deliver >= res.trace.msg_create.repeat(np.diff(tr.msg_dst_ptr)))
    assert res.ejected_flits == k * flits
    assert res.injected_flits + res.replicated_flits == res.ejected_flits
    assert res.packets == k


def test_pipeline_example_runs_and_multicast_helps():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "noc_pipeline.py"
    spec = importlib.util.spec_from_file_location("noc_pipeline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = ["--mesh", "3x3", "--inferences", "20", "--stages", "4", "--fanout", "4", "--json"]
    uni = mod.run(base)
    mc = mod.run([*base, "--multicast"])
    assert mc["flit_hops"] < uni["flit_hops"]
    assert mc["inference_latency_mean"] <= uni["inference_latency_mean"]
    assert len(uni["core_busy_fraction"]) == 4
