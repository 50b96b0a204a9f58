"""Inference traces, their zero-contention timing and the cycle-level co-simulation."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.activations import Activation
from mappings.network import InputSpec, Network, Readout, ScrrambleLayer
from mappings.tiling import plan_dense_baseline
from sim.chip.config import chip_config_from_dict, plan_for_chip
from sim.chipnet import (
    TraceError,
    analytic_schedule,
    build_inference_trace,
    core_cycles,
    link_flits,
    throughput_bound,
)
from sim.chipnet.cosim import cosimulate, noc_config_for, zero_load_of
from sim.chipnet.trace import MSG_INPUT, MSG_LOCAL, MSG_OUTPUT
from tests.test_tiling import random_network


def chip(rows, cols, core=16, slot=4, **sections):
    d = {"chip": {"grid_rows": rows, "grid_cols": cols, "core_rows": core, "core_cols": core,
                  "slot_size": slot}}
    for k, v in sections.items():
        d.setdefault(k, {}).update(v)
    return chip_config_from_dict(d, source="<test chip>")


def chain_network():
    """Input slot 0 -> core A; A's slot 0 -> core B, A's slot 1 -> core C (one packet each)."""
    rng = np.random.default_rng(0)
    C0 = np.zeros((1, 4, 1, 4), np.int8)
    C0[0, 0, 0, 0], C0[0, 0, 0, 1] = 1, -1
    C1 = np.zeros((1, 4, 2, 4), np.int8)
    C1[0, 0, 0, 0], C1[0, 0, 0, 1] = 1, -1
    C1[0, 1, 1, 2], C1[0, 1, 1, 3] = 1, -1
    w = [rng.standard_normal((n, 4, 4, 4, 4)).astype(np.float32) for n in (1, 2)]
    layers = (ScrrambleLayer(C0, w[0], Activation("relu")),
              ScrrambleLayer(C1, w[1], Activation("none")))
    return Network(layers, InputSpec((16,), (16,)), Readout("capsule", 2))


def test_zero_contention_latency_is_the_analytic_critical_path():
    cfg = chip(3, 3)
    plan = plan_for_chip(chain_network(), cfg)
    pos = np.array([[1, 1], [0, 1], [2, 0]])  # A, B, C; the I/O port at (0, 0)
    trace = build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=0,
                                  io_cell=(0, 0))
    noc = noc_config_for(cfg.grid)
    zl = zero_load_of(noc)
    mvm = core_cycles(plan, cfg)[0][0]
    assert mvm == 82 + 1  # 10 ns read + 8 columns x 9 ns ADC at 1 GHz, + decode

    def lat(hops, bits):
        return int(zl.latency(hops, zl.flits(bits)))

    f = plan.flows
    bits = f.payload_bits + f.header_bits()
    assert list(f.kind) == [2, 0, 0]  # the input slot, then A's slot 0 (-> B), slot 1 (-> C)
    t_a = lat(2, bits[0]) + mvm  # input: (0,0) -> (1,1), 2 hops; then A's MVM
    flits = int(zl.flits(bits[1]))
    t_b = t_a + lat(1, bits[1]) + mvm  # A -> B first (slot 0)
    t_c = t_a + flits + lat(2, bits[2]) + mvm  # A -> C waits for A -> B's flits
    out = trace.msg_bits[trace.msg_kind == MSG_OUTPUT]
    o = int(zl.flits(out[0]))
    n_out = len(out) // 2  # output packets per core, serialized at its source
    end_b = t_b + (n_out - 1) * o + lat(1, out[0])
    end_c = t_c + (n_out - 1) * o + lat(2, out[0])
    expected = max(end_b, end_c)
    ana = analytic_schedule(trace, zl)
    assert int(ana.msg_deliver.max()) == expected
    res = cosimulate(trace, noc, clock_mhz=cfg.chip.clock_mhz)
    assert int(res.latency_cycles[0]) == expected
    np.testing.assert_array_equal(res.timing.task_start, ana.task_start)
    np.testing.assert_array_equal(res.timing.msg_deliver, ana.msg_deliver)
    assert res.compute_cycles[0] == 2 * mvm
    assert res.network_share == pytest.approx(1 - 2 * mvm / expected)


@pytest.fixture(scope="module")
def scr_case():
    net = random_network(np.random.default_rng(2), widths=(2, 4, 3), core=16, slot=4, p=0.4)
    cfg = chip(4, 4)
    plan = plan_for_chip(net, cfg)
    pos = np.stack(np.divmod(np.arange(plan.n_physical_cores), 4), axis=1)
    return net, cfg, plan, pos


def _check_conservation(trace, res):
    t = res.timing
    assert np.all(t.dst_deliver >= 0) and np.all(t.task_finish >= 0)
    # every flit of every (message, destination) packet injected and ejected once
    fl = zero_load_of(noc_config_for(trace.grid)).flits(trace.msg_bits)
    total = int((fl * np.diff(trace.msg_dst_ptr)).sum())
    assert res.noc.injected_flits == res.noc.ejected_flits == total
    fan = np.diff(trace.msg_dst_ptr)
    # every consumed delivery belongs to a task of the same inference, before that task starts
    d_task = trace.msg_dst_task
    cons = d_task >= 0
    tag = np.repeat(trace.msg_tag, fan)
    assert np.all(trace.task_inference[d_task[cons]] == tag[cons])
    assert np.all(t.dst_deliver[cons] <= t.task_start[d_task[cons]])
    assert np.all(np.bincount(d_task[cons], minlength=trace.n_tasks) == trace.task_inputs)
    # every message leaves after its producer finished (or its release cycle)
    prod = trace.msg_producer
    has = prod >= 0
    assert np.all(t.msg_create[has] == t.task_finish[prod[has]])
    assert np.all(t.msg_create[~has] == trace.msg_cycle[~has])
    assert np.all(np.isin(t.msg_tag, np.arange(trace.n_inferences)))


def test_contention_conservation_and_determinism(scr_case):
    _net, cfg, plan, pos = scr_case
    noc = noc_config_for(cfg.grid)
    one = build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=0)
    ana = analytic_schedule(one, zero_load_of(noc))
    r1 = cosimulate(one, noc, clock_mhz=1000.0)
    assert r1.latency_cycles[0] >= ana.msg_deliver.max()  # links shared: a lower bound
    # the analytic per-link flits are what the network carried, link by link
    links = link_flits(one, zero_load_of(noc))
    sim_links = np.asarray(r1.noc.link_flits).reshape(4, 4, 5)
    for port, name in enumerate(("eject", "east", "west", "north", "south")):
        np.testing.assert_array_equal(links[name], sim_links[..., port])
    trace = build_inference_trace(plan, cfg, pos, n_inferences=6, input_interval=0)
    res = cosimulate(trace, noc, clock_mhz=1000.0, seed=3)
    _check_conservation(trace, res)
    assert res.latency_cycles.mean() > r1.latency_cycles[0]  # the stream queues
    # the network moved exactly the flows' flits along their XY routes (router traversals =
    # hops + 1 per flit, as the energy model counts them)
    fl = zero_load_of(noc).flits(trace.msg_bits)
    fan = np.diff(trace.msg_dst_ptr)
    src = np.repeat(trace.msg_src, fan)
    hops = np.abs(src // 4 - trace.msg_dst // 4) + np.abs(src % 4 - trace.msg_dst % 4)
    assert res.noc.flit_hops == int((np.repeat(fl, fan) * (hops + 1)).sum())
    inter = plan.flows.inter_core
    per_inf = trace.msg_kind[:trace.messages_per_inference]
    assert int(np.isin(per_inf, (0, 1)).sum()) == inter.n_packets()
    assert int(fl[:trace.messages_per_inference][np.isin(per_inf, (0, 1))].sum()) == \
        inter.flits(noc.link_width_bits)
    again = cosimulate(trace, noc, clock_mhz=1000.0, seed=3)
    np.testing.assert_array_equal(again.timing.dst_deliver, res.timing.dst_deliver)
    np.testing.assert_array_equal(again.timing.task_start, res.timing.task_start)
    assert again.as_dict() == res.as_dict() | {"sim_seconds": again.as_dict()["sim_seconds"],
                                               "flit_hops_per_s": again.as_dict()["flit_hops_per_s"]}


def test_dense_baseline_trace_with_partial_sums(scr_case):
    net, cfg, _, _ = scr_case
    dense = plan_dense_baseline(net, 16, 16, "single", activation_bits=8, psum_bits=16,
                                slot_elements=4)
    assert any(t.row_tiles > 1 for t in dense.layers)
    grid = (5, 5)
    pos = np.stack(np.divmod(np.arange(dense.n_physical_cores), 5), axis=1)
    trace = build_inference_trace(dense, cfg, pos, n_inferences=3, input_interval=50,
                                  grid=grid)
    _mvm, add = core_cycles(dense, cfg)
    assert (add > 0).sum() == sum(t.n_blocks * t.col_tiles for t in dense.layers
                                  if t.row_tiles > 1)
    assert (trace.msg_kind == MSG_LOCAL).sum() == 3 * (add > 0).sum()
    res = cosimulate(trace, noc_config_for(grid), clock_mhz=1000.0)
    _check_conservation(trace, res)
    again = cosimulate(trace, noc_config_for(grid), clock_mhz=1000.0)
    np.testing.assert_array_equal(again.timing.dst_deliver, res.timing.dst_deliver)
    np.testing.assert_array_equal(again.latency_cycles, res.latency_cycles)
    # an accumulator's ADD starts after its own MVM and after every partial sum
    tt = res.timing
    add_tasks = np.flatnonzero(trace.task_kind == 1)
    mvm_of = trace.task_tile[add_tasks] + (add_tasks // trace.tasks_per_inference) * \
        trace.tasks_per_inference
    assert np.all(tt.task_start[add_tasks] >= tt.task_finish[mvm_of])


def test_pipelined_throughput_is_bounded_by_the_slowest_core():
    # a slow ADC (one per core) makes the MVM, not the network, the bottleneck
    cfg = chip(4, 4, adc={"columns_per_adc": 16})
    net = random_network(np.random.default_rng(4), widths=(1, 3, 2), core=16, slot=4, p=0.3)
    plan = plan_for_chip(net, cfg)
    pos = np.stack(np.divmod(np.arange(plan.n_physical_cores), 4), axis=1)
    mvm = int(core_cycles(plan, cfg)[0].max())
    assert mvm == 10 + 16 * 9 + 1
    trace = build_inference_trace(plan, cfg, pos, n_inferences=40, input_interval=0)
    bound, what = throughput_bound(trace, zero_load_of(noc_config_for(cfg.grid)))
    assert bound == mvm and what.startswith("core")
    res = cosimulate(trace, noc_config_for(cfg.grid), clock_mhz=1000.0)
    per_cycle = res.throughput_inferences_per_cycle
    assert per_cycle <= 1.0 / mvm + 1e-12
    assert per_cycle >= 0.9 / mvm  # the pipeline keeps the slowest core busy
    assert res.bottleneck()["binding"] == "core"
    assert res.core_busy.max() > 0.8
    assert res.throughput_inferences_per_s == pytest.approx(per_cycle * 1e9)


def test_multicast_trace_has_one_message_per_flow(scr_case):
    _, cfg, plan, pos = scr_case
    uni = build_inference_trace(plan, cfg, pos, n_inferences=2, input_interval=10)
    multi = build_inference_trace(plan, cfg, pos, n_inferences=2, input_interval=10,
                                  multicast=True)
    flows = plan.flows
    # through the network: every destination served by the tree, fewer flit-hops than unicast
    noc = noc_config_for(cfg.grid)
    r_uni = cosimulate(uni, noc, clock_mhz=1000.0)
    r_multi = cosimulate(multi, noc, clock_mhz=1000.0)
    assert np.all(r_multi.timing.dst_deliver >= 0) and np.all(r_multi.timing.task_finish >= 0)
    assert r_multi.noc.flit_hops < r_uni.noc.flit_hops
    # the analytic XY trees are the links the replicated flits took (2 inferences)
    links = link_flits(multi, zero_load_of(noc))
    sim_links = np.asarray(r_multi.noc.link_flits).reshape(4, 4, 5)
    for port, name in enumerate(("eject", "east", "west", "north", "south")):
        np.testing.assert_array_equal(2 * links[name], sim_links[..., port])
    for tr, n in ((uni, flows.n_packets()), (multi, flows.n_flows)):
        per = tr.messages_per_inference
        kinds = tr.msg_kind[:per]
        assert int(np.isin(kinds, (0, 1, 2)).sum()) == n
        assert tr.msg_dst_ptr[-1] == 2 * (flows.n_packets() + (kinds >= MSG_LOCAL).sum())
    assert np.all(multi.msg_cycle[multi.msg_kind == MSG_INPUT] % 10 == 0)


def test_bad_trace_requests(scr_case):
    _, cfg, plan, pos = scr_case
    with pytest.raises(TraceError, match="inference count"):
        build_inference_trace(plan, cfg, pos, n_inferences=0, input_interval=0)
    with pytest.raises(TraceError, match="input_interval"):
        build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=-1)
    with pytest.raises(TraceError, match=r"has 4 routers"):
        build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=0, grid=(2, 2))
    with pytest.raises(TraceError, match="outside the 4x4 mesh"):
        build_inference_trace(plan, cfg, pos + 3, n_inferences=1, input_interval=0)
    with pytest.raises(TraceError, match="io_cell"):
        build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=0, io_cell=(9, 0))
    trace = build_inference_trace(plan, cfg, pos, n_inferences=1, input_interval=0)
    with pytest.raises(TraceError, match="packet network is 5x5"):
        cosimulate(trace, noc_config_for((5, 5)), clock_mhz=1000.0)
