"""Packet network behaviour: conservation, liveness, determinism, traces and task graphs."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from sim.noc import (
    NocConfig,
    NocConfigError,
    NocDeadlockError,
    SyntheticTraffic,
    Trace,
    message_trace,
    min_hops,
    simulate_noc,
)
from sim.noc import kernel as K
from sim.noc import run as R


def _in_flight(res_state) -> int:
    buffered = res_state.vs[K.F_BN::K.NF].sum()
    on_links = (res_state.lnk[::3] >= 0).sum() + (res_state.ejw[::3] >= 0).sum()
    return int(buffered + on_links)


def test_flit_conservation_after_fixed_run():
    cfg = NocConfig(rows=4, cols=6, vcs=2)
    s = R._build_state(cfg, pool=4096, rng=np.random.default_rng(3),
                       traffic=SyntheticTraffic(rate=0.3), trace=None)
    s, _ = R._advance(cfg, s, 3000, [0.0])
    assert int(s.cnt[K.C_INJ]) - int(s.cnt[K.C_EJ]) == _in_flight(s)
    assert int(s.cnt[K.C_INJ]) > 10000


def test_determinism_and_seed_dependence():
    cfg, tr = NocConfig(rows=4, cols=4), SyntheticTraffic(rate=0.25)
    a = simulate_noc(cfg, tr, seed=5, warmup=300, measure=1000)
    b = simulate_noc(cfg, tr, seed=5, warmup=300, measure=1000)
    c = simulate_noc(cfg, tr, seed=6, warmup=300, measure=1000)
    strip = {"sim_seconds", "cycles_per_s", "flit_hops_per_s"}
    sa = {k: v for k, v in a.summary().items() if k not in strip}
    assert sa == {k: v for k, v in b.summary().items() if k not in strip}
    assert np.array_equal(a.packet_latency_hist, b.packet_latency_hist)
    assert np.array_equal(a.link_flits, b.link_flits)
    assert a.packet_latency != c.packet_latency


def test_identical_from_two_threads():
    cfg, tr = NocConfig(rows=6, cols=6, vcs=4), SyntheticTraffic(rate=0.3)
    ref = simulate_noc(cfg, tr, seed=11, warmup=300, measure=1500)
    out: list = [None, None]

    def work(i):
        out[i] = simulate_noc(cfg, tr, seed=11, warmup=300, measure=1500)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for res in out:
        assert np.array_equal(res.packet_latency_hist, ref.packet_latency_hist)
        assert np.array_equal(res.accepted_per_node, ref.accepted_per_node)
        assert res.flit_hops == ref.flit_hops


@pytest.mark.parametrize(
    ("topology", "routing", "pattern"),
    [("mesh", "yx", "bitcomp"), ("torus", "xy", "tornado"), ("torus", "yx", "uniform"),
     ("mesh", "xy", "hotspot")],
)
def test_heavy_load_stays_live(topology, routing, pattern):
    # far beyond saturation, then sources stop: everything injected must come out (the
    # dateline classes keep the torus deadlock-free; no VC may stay blocked forever)
    cfg = NocConfig(rows=4, cols=5, vcs=2, topology=topology, routing=routing,
                    watchdog_cycles=500)
    res = simulate_noc(cfg, SyntheticTraffic(pattern=pattern, rate=1.0, packet_flits=5),
                       warmup=200, measure=2000)
    assert res.accepted_rate > 0.05
    s = R._build_state(cfg, pool=4096, rng=np.random.default_rng(0),
                       traffic=SyntheticTraffic(pattern=pattern, rate=1.0, packet_flits=5),
                       trace=None)
    s, _ = R._advance(cfg, s, 3000, [0.0])
    assert int(s.cnt[K.C_QUEUED]) > 100  # saturated: a backlog at the sources
    s.gen_prob[0] = 0.0
    s, _ = R._advance(cfg, s, 60000, [0.0])
    assert int(s.cnt[K.C_QUEUED]) == 0 and _in_flight(s) == 0
    assert int(s.cnt[K.C_INJ]) == int(s.cnt[K.C_EJ]) == 5 * int(s.cnt[K.C_GEN_PKT])


def test_torus_takes_the_short_way():
    cfg = NocConfig(rows=1, cols=8, topology="torus")
    res = simulate_noc(cfg, message_trace([0], [7], [0], [0]))
    assert res.trace.msg_deliver[0] == 4 * 2 + 2  # two routers, one flit


def test_watchdog_names_blocked_routers():
    cfg = NocConfig(rows=3, cols=3, vcs=2, watchdog_cycles=200)
    s = R._build_state(cfg, pool=4096, rng=np.random.default_rng(0),
                       traffic=SyntheticTraffic(rate=0.2), trace=None)
    s.ovs[K.O_CRED::K.NO] = 0  # every credit lost: nothing can leave a router
    with pytest.raises(NocDeadlockError, match=r"(?s)no flit moved for 200 cycles.*router \d+ \(x="):
        R._advance(cfg, s, 5000, [0.0])


def test_unicast_trace_timing_matches_pipeline():
    cfg = NocConfig(rows=4, cols=4, link_width_bits=128, header_bits=32)
    tr = message_trace(src=[0, 5, 15], dst=[15, 5, 0], cycle=[0, 3, 10], bits=[96, 0, 1000])
    res = simulate_noc(cfg, tr)
    hops = min_hops(cfg, np.array([0, 5, 15]), np.array([15, 5, 0]))
    flits = np.array([cfg.packet_flits(b) for b in (96, 0, 1000)])
    assert list(flits) == [1, 1, 9]
    lat = res.trace.msg_deliver - res.trace.msg_create
    assert list(lat) == list(4 * hops + (flits - 1) + 2)
    assert res.injected_flits == res.ejected_flits == flits.sum()


def test_multi_destination_message_delivers_each_copy_once():
    cfg = NocConfig(rows=4, cols=4)
    dsts = [3, 12, 15, 0, 6]
    tr = Trace(
        msg_src=np.array([5]), msg_dst_ptr=np.array([0, len(dsts)]), msg_dst=np.array(dsts),
        msg_bits=np.array([300]), msg_producer=np.array([-1]), msg_cycle=np.array([2]),
        msg_dst_task=np.full(len(dsts), -1), msg_tag=np.array([42]),
    )
    res = simulate_noc(cfg, tr)
    assert np.all(res.trace.dst_deliver > 2)
    assert res.trace.msg_deliver[0] == res.trace.dst_deliver.max()
    assert res.ejected_flits == res.injected_flits == len(dsts) * cfg.packet_flits(300)
    assert res.packets == len(dsts)
    assert res.accepted_per_node[dsts].sum() * res.window[1] == pytest.approx(res.ejected_flits)
    assert res.trace.msg_tag[0] == 42


def _chain_trace() -> Trace:
    # t0 (core 0, start >= 5, 10 cycles) -> m0 to core 3 -> t1 (5 cycles) -> m1, m2 to 12, 15
    return Trace(
        msg_src=np.array([0, 3, 3]), msg_dst_ptr=np.array([0, 1, 2, 3]),
        msg_dst=np.array([3, 12, 15]), msg_bits=np.array([256, 128, 128]),
        msg_producer=np.array([0, 1, 1]), msg_cycle=np.array([0, 0, 0]),
        msg_dst_task=np.array([1, 2, 3]), msg_tag=np.array([7, 7, 7]),
        task_core=np.array([0, 3, 12, 15]), task_start=np.array([5, 0, 0, 0]),
        task_duration=np.array([10, 5, 1, 0]), task_inputs=np.array([0, 1, 1, 1]),
    )


def test_task_graph_cycles():
    cfg = NocConfig(rows=4, cols=4, link_width_bits=128, header_bits=32)
    tt = simulate_noc(cfg, _chain_trace()).trace
    assert list(tt.task_start[:2]) == [5, 35]  # m0: 3 flits over 4 routers = 16 + 2 + 2
    assert list(tt.task_finish[:2]) == [15, 40]
    assert list(tt.msg_create) == [15, 40, 40]
    assert list(tt.msg_inject) == [15, 40, 42]  # one source sends one packet at a time
    assert tt.task_start[2] == tt.msg_deliver[1] and tt.task_start[3] == tt.msg_deliver[2]
    assert tt.task_finish[3] == tt.task_start[3]  # zero-duration task


def test_one_core_runs_tasks_in_ready_order():
    cfg = NocConfig(rows=2, cols=2)
    # three independent tasks on core 1 ready at 10, 0, 0: run 1, 2 (tie by index), then 0
    tr = Trace(
        msg_src=np.array([1]), msg_dst_ptr=np.array([0, 1]), msg_dst=np.array([2]),
        msg_bits=np.array([8]), msg_producer=np.array([0]), msg_cycle=np.array([0]),
        msg_dst_task=np.array([-1]), msg_tag=np.array([0]),
        task_core=np.array([1, 1, 1]), task_start=np.array([10, 0, 0]),
        task_duration=np.array([4, 6, 6]), task_inputs=np.array([0, 0, 0]),
    )
    tt = simulate_noc(cfg, tr).trace
    assert list(tt.task_start) == [12, 0, 6]
    assert list(tt.task_finish) == [16, 6, 12]
    assert tt.msg_create[0] == 16


def test_task_graph_cycle_is_reported():
    cfg = NocConfig(rows=2, cols=2)
    tr = Trace(
        msg_src=np.array([0, 1]), msg_dst_ptr=np.array([0, 1, 2]), msg_dst=np.array([1, 0]),
        msg_bits=np.array([8, 8]), msg_producer=np.array([0, 1]), msg_cycle=np.array([0, 0]),
        msg_dst_task=np.array([1, 0]), msg_tag=np.array([0, 0]),
        task_core=np.array([0, 1]), task_start=np.array([0, 0]),
        task_duration=np.array([1, 1]), task_inputs=np.array([1, 1]),
    )
    with pytest.raises(NocDeadlockError, match=r"tasks \[0, 1\].*never produced"):
        simulate_noc(cfg, tr)


def test_bursty_and_packet_rate_units():
    cfg = NocConfig(rows=4, cols=4)
    b = simulate_noc(cfg, SyntheticTraffic(rate=0.2, burst=True, burst_on=0.05, burst_off=0.05),
                     warmup=500, measure=6000)
    assert b.offered_rate == pytest.approx(0.2, rel=0.1)
    p = simulate_noc(cfg, SyntheticTraffic(rate=0.05, rate_unit="packets", packet_flits=2),
                     warmup=500, measure=4000)
    assert p.offered_rate == pytest.approx(0.1, rel=0.08)


def test_hotspot_concentrates_traffic():
    cfg = NocConfig(rows=4, cols=4)
    res = simulate_noc(cfg, SyntheticTraffic(pattern="hotspot", rate=0.1, hotspots=(5,),
                                             hotspot_fraction=0.5), warmup=300, measure=3000)
    others = np.delete(res.accepted_per_node, 5)
    assert res.accepted_per_node[5] > 4 * others.mean()


def test_result_statistics_and_hdf5(tmp_path):
    cfg = NocConfig(rows=4, cols=4)
    res = simulate_noc(cfg, SyntheticTraffic(rate=0.2), warmup=300, measure=2000)
    assert res.packet_latency_hist.sum() == res.packets
    assert res.network_latency <= res.packet_latency
    assert res.accepted_min <= res.accepted_rate
    assert res.link_utilisation.shape == (16, 5)
    assert 0 < res.link_utilisation.max() <= 1
    assert res.link_flits[0, 2] == 0 and res.link_flits[0, 4] == 0  # corner: no west / south
    assert res.buffer_occupancy.shape == (16,) and res.buffer_occupancy.mean() > 0
    path = res.save(tmp_path / "noc.h5")
    with h5py.File(path) as f:
        assert f.attrs["format"] == "scrramble-noc-result"
        assert np.array_equal(f["link_flits"][...], res.link_flits)


def _random_graph(rng: np.random.Generator, n_routers: int, n_inf: int, stages: int) -> Trace:
    """n_inf inferences through a pipeline of `stages` tasks on random cores; stage s sends
    one message (random bits, sometimes to two routers) to stage s + 1."""
    core = rng.integers(0, n_routers, size=(n_inf, stages))
    t_idx = np.arange(n_inf * stages).reshape(n_inf, stages)
    src, ptr, dst, dtask, prod, bits, tag = [], [0], [], [], [], [], []
    inputs = np.zeros(n_inf * stages, np.int64)
    for i in range(n_inf):
        for s in range(stages - 1):
            src.append(core[i, s])
            prod.append(t_idx[i, s])
            bits.append(int(rng.integers(0, 600)))
            tag.append(i)
            dst.append(core[i, s + 1])
            dtask.append(t_idx[i, s + 1])
            inputs[t_idx[i, s + 1]] += 1
            if rng.random() < 0.3:  # an extra copy to a router nobody waits on
                dst.append(int(rng.integers(0, n_routers)))
                dtask.append(-1)
            ptr.append(len(dst))
    return Trace(
        msg_src=np.array(src), msg_dst_ptr=np.array(ptr), msg_dst=np.array(dst),
        msg_bits=np.array(bits), msg_producer=np.array(prod),
        msg_cycle=np.zeros(len(src), np.int64), msg_dst_task=np.array(dtask),
        msg_tag=np.array(tag), task_core=core.ravel(),
        task_start=np.repeat(np.arange(n_inf) * 7, stages),
        task_duration=rng.integers(0, 20, size=n_inf * stages), task_inputs=inputs,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_task_graph_invariants(seed):
    cfg = NocConfig(rows=4, cols=4, vcs=2, link_width_bits=64)
    tr = _random_graph(np.random.default_rng(seed), 16, n_inf=40, stages=4)
    res = simulate_noc(cfg, tr)
    tt = res.trace
    assert np.all(tt.task_finish >= 0) and np.all(tt.msg_deliver >= 0)
    assert np.array_equal(tt.task_finish - tt.task_start, tr.task_duration)
    assert np.all(tt.task_start >= np.maximum(tt.task_ready, tr.task_start))
    # messages leave when their producer finishes, arrive no sooner than the zero-load time
    assert np.array_equal(tt.msg_create, tt.task_finish[tr.msg_producer])
    assert np.all(tt.msg_inject >= tt.msg_create)
    k_msg = np.repeat(np.arange(tr.n_messages), np.diff(tr.msg_dst_ptr))
    flits = np.array([cfg.packet_flits(b) for b in tr.msg_bits])[k_msg]
    zero = 4 * min_hops(cfg, tr.msg_src[k_msg], tr.msg_dst) + flits - 1 + 2
    assert np.all(tt.dst_deliver - tt.msg_create[k_msg] >= zero)
    # a task is ready exactly when its last input arrived (or its earliest start)
    cons = tr.msg_dst_task >= 0
    last = np.zeros(tr.n_tasks, np.int64)
    np.maximum.at(last, tr.msg_dst_task[cons], tt.dst_deliver[cons])
    assert np.array_equal(tt.task_ready, np.maximum(last, tr.task_start))
    # one task at a time per core
    for core in np.unique(tr.task_core):
        ts = np.flatnonzero(tr.task_core == core)
        order = np.argsort(tt.task_start[ts], kind="stable")
        assert np.all(tt.task_start[ts][order][1:] >= tt.task_finish[ts][order][:-1])
    assert res.injected_flits == res.ejected_flits == flits.sum()


@pytest.mark.parametrize(
    "timing",
    [{}, {"rc_delay": 1}, {"va_delay": 0}, {"st_delay": 0, "link_latency": 3},
     {"sa_delay": 2, "credit_delay": 4}],
)
def test_zero_load_latency_for_any_stage_delays(timing):
    cfg = NocConfig(rows=3, cols=5, link_width_bits=32, header_bits=0, **timing)
    tr = message_trace(src=[0, 14], dst=[14, 14], cycle=[0, 100], bits=[160, 32])
    res = simulate_noc(cfg, tr)
    per_router = cfg.rc_delay + cfg.va_delay + cfg.sa_delay + cfg.st_delay + cfg.link_latency
    hops = np.array([7, 1])
    flits = np.array([5, 1])
    expect = cfg.link_latency + hops * per_router + (flits - 1) + 1
    assert list(res.trace.msg_deliver - res.trace.msg_create) == list(expect)


@pytest.mark.parametrize(
    "knobs",
    [{"vc_allocator": "rr", "sw_allocator": "rr"}, {"alloc_iters": 2}, {"input_speedup": 1},
     {"vcs": 3, "input_speedup": 2}, {"buffer_depth": 2}],
)
def test_allocator_and_router_variants(knobs):
    cfg = NocConfig(rows=4, cols=4, **knobs)
    res = simulate_noc(cfg, SyntheticTraffic(rate=0.2), warmup=300, measure=2000)
    assert not res.saturated and res.drained
    assert res.accepted_rate == pytest.approx(0.2, rel=0.1)
    assert 4 * 3.5 + 5 - 2 < res.packet_latency < 60  # mean 3.5 routers on 4x4


def test_more_allocator_iterations_never_lose_throughput():
    # saturated throughput over three seeds (one short run varies by +-2 %)
    def mean_accepted(iters: int) -> float:
        cfg = NocConfig(rows=6, cols=6, vcs=2, alloc_iters=iters)
        return float(np.mean([
            simulate_noc(cfg, SyntheticTraffic(rate=1.0), warmup=300, measure=4000,
                         seed=seed).accepted_rate
            for seed in range(3)
        ]))

    assert mean_accepted(3) >= 0.98 * mean_accepted(1)


def test_geometric_gap_sources_match_bernoulli_rates():
    # certain and impossible sources are exact
    cfg = NocConfig(rows=2, cols=2)
    every = simulate_noc(cfg, SyntheticTraffic(rate=1.0, rate_unit="packets", packet_flits=1),
                         warmup=0, cycles=50)
    assert every.offered_rate == 1.0
    never = simulate_noc(cfg, SyntheticTraffic(rate=0.0), warmup=0, cycles=50)
    assert never.offered_rate == 0.0 and never.injected_flits == 0
    # gaps between successes of Bernoulli(p) trials: geometric, mean 1/p, variance (1-p)/p^2
    p = 0.1
    state = np.array([12345], np.uint64)
    gaps = np.array([K._gap(state, 0, p, np.log1p(-p)) for _ in range(40000)])
    assert gaps.min() == 1
    assert gaps.mean() == pytest.approx(1 / p, rel=0.02)
    assert gaps.var() == pytest.approx((1 - p) / p**2, rel=0.05)
    assert np.mean(gaps == 1) == pytest.approx(p, rel=0.05)


def test_run_length_limited_to_int32_cycles():
    with pytest.raises(NocConfigError, match=r"int32.*2,146,435,072"):
        simulate_noc(NocConfig(rows=2, cols=2), SyntheticTraffic(rate=0.1), cycles=2**31)
