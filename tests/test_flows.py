"""Flows: the mapping's list of (source slot, destination cores, bits), packets and hops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mappings.flows import IO_PORT, FlowError, Flows, address_bits_for
from mappings.network import InputSpec
from mappings.placement import place, placement_report
from mappings.reference_import import import_reference_npz
from mappings.routing import generate_routing, routing_stats
from mappings.tiling import plan_dense_baseline, plan_network
from tests.test_tiling import dense_network, random_network, tiny_network


def _scrramble_packets_check(net, act_bits, address_cores=None):
    core = net.layers[0].core_size
    plan = plan_network(net, core, core, "single", activation_bits=act_bits, psum_bits=16,
                        address_cores=address_cores)
    fl = plan.flows
    word = act_bits or 32
    assert fl.address_bits == address_bits_for(address_cores or plan.n_physical_cores)
    for k, layer in enumerate(net.layers):
        lf = fl.select(fl.layer == k)
        # unicast packets = distinct (source slot, destination core) pairs with a route
        assert lf.n_packets() == routing_stats(layer.routing).n_links
        ss = layer.slot_size
        header = fl.address_bits + address_bits_for(layer.n_in // ss)
        assert np.all(lf.payload_bits == ss * word)
        assert lf.bits() == lf.n_packets() * (ss * word + header)
        assert lf.payload_total() == lf.n_packets() * ss * word
        # multicast: one packet per source slot that routes anywhere
        assert lf.n_packets(multicast=True) == int(np.any(layer.routing != 0, axis=(2, 3)).sum())
        # the destinations of a slot are exactly the cores it routes to
        links = np.any(layer.routing != 0, axis=3)  # (src cores, slots, dst cores)
        first = plan.first_core[k]
        for f in range(lf.n_flows):
            s, j = (lf.src[f] - (plan.first_core[k - 1] if k else 0)), lf.src_slot[f]
            if k == 0:
                s, j = divmod(int(lf.src_slot[f]), layer.slots_per_core)
            dst = lf.dst[lf.dst_ptr[f]:lf.dst_ptr[f + 1]] - first
            np.testing.assert_array_equal(dst, np.flatnonzero(links[s, j]))
    assert fl.of_kind("input").n_packets() == routing_stats(net.layers[0].routing).n_links
    return plan


@pytest.mark.parametrize("bits", [8, 4, 0])
@pytest.mark.parametrize("seed", [0, 1])
def test_scrramble_packets_are_routed_slot_core_pairs(bits, seed):
    net = random_network(np.random.default_rng(seed), widths=(3, 5, 4, 2), core=64, slot=16,
                         p=0.2)
    _scrramble_packets_check(net, bits)
    _scrramble_packets_check(net, bits, address_cores=64)


def test_reference_imported_network_packets(tmp_path):
    rng = np.random.default_rng(4)
    arrays = {}
    for i, (ns, nd) in enumerate(itertools.pairwise((4, 6, 2))):
        arrays[f"C{i}"] = generate_routing(ns, nd, core_size=64, slot_size=16, p=0.3, rng=rng)
        arrays[f"W{i}"] = rng.standard_normal((nd, 4, 4, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "ref.npz", **arrays)
    net = import_reference_npz(tmp_path / "ref.npz", input_spec=InputSpec((16, 16), (16, 16)))
    plan = _scrramble_packets_check(net, 8)
    assert plan.flows.inter_core.n_packets() == routing_stats(arrays["C1"]).n_links


def test_core_matrix_is_traffic_and_headers_add():
    plan = plan_network(tiny_network(), 16, 16, "differential", activation_bits=8, psum_bits=16)
    fl = plan.flows
    np.testing.assert_array_equal(fl.core_matrix(header=False), plan.traffic_bits)
    extra = fl.core_matrix(header=True) - fl.core_matrix(header=False)
    inter = fl.inter_core
    assert extra.sum() == inter.header_total()
    assert inter.bits() == plan.inter_core_bits + inter.header_total()
    # partial sums: row tile 1 -> row tile 0 of the same block, 16 values of 16 bits in 4 slots
    ps = fl.of_kind("psum")
    assert ps.payload_total() == plan.psum_traffic_bits
    assert np.all(ps.fanout == 1) and np.all(ps.src - ps.dst == 1)
    assert np.all(ps.payload_bits == 4 * 16)


def test_dense_baseline_flows():
    net = dense_network()
    plan = plan_network(net, 32, 16, "differential", activation_bits=8, psum_bits=16,
                        slot_elements=8)
    fl = plan.flows
    # layer 1 input: outputs 0..15 of core 0 in slots of 8 -> layer-1 row tile 0 (core 6),
    # outputs 16..19 of core 1 -> row tile 1 (core 7)
    act = fl.of_kind("activation")
    got = sorted(zip(act.src.tolist(), act.src_slot.tolist(), act.dst.tolist(),
                     act.payload_bits.tolist()))
    assert got == [(0, 0, 6, 64), (0, 1, 6, 64), (1, 0, 7, 32)]
    # input from the I/O port: every input to both column tiles of its row tile
    inp = fl.of_kind("input")
    assert np.all(inp.src == IO_PORT)
    assert inp.payload_total() == plan.io_bits_in
    assert set(inp.fanout.tolist()) == {2}
    # the shape-only baseline of a ScRRAMBLe network uses the network's slots as packets
    snet = random_network(np.random.default_rng(5), widths=(2, 3, 2))
    base = plan_dense_baseline(snet, 16, 16, "single", activation_bits=8, psum_bits=16)
    acts = base.flows.of_kind("activation", "input")
    assert acts.payload_bits.max() == 4 * 8  # 4-element slots of 8 bits
    assert base.flows.of_kind("psum").payload_bits.max() == 4 * 16


def _xy_links(src, dst):
    (r, c), (dr, dc) = src, dst
    links = set()
    while c != dc:
        n = c + (1 if dc > c else -1)
        links.add(((r, c), (r, n)))
        c = n
    while r != dr:
        n = r + (1 if dr > r else -1)
        links.add(((r, c), (n, c)))
        r = n
    return links


@pytest.mark.parametrize("seed", range(3))
def test_hops_unicast_and_multicast_tree(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng, widths=(2, 3, 2), p=0.5)
    plan = plan_network(net, 16, 16, "single", activation_bits=8, psum_bits=16)
    fl = plan.flows
    grid = (4, 5)
    pos = place(plan.traffic_bits, grid, "random", rng).positions
    io = (3, 4)
    allpos = np.concatenate([pos, [io]])
    uni = fl.hops(pos, io)
    multi = fl.hops(pos, io, multicast=True)
    for f in range(fl.n_flows):
        s = tuple(allpos[fl.src[f]] if fl.src[f] >= 0 else io)
        dsts = [tuple(pos[d]) for d in fl.dst[fl.dst_ptr[f]:fl.dst_ptr[f + 1]]]
        assert uni[f] == sum(len(_xy_links(s, d)) for d in dsts)
        assert multi[f] == len(set().union(*(_xy_links(s, d) for d in dsts)))
    inter = fl.inter_core
    hdr = inter.payload_bits + inter.header_bits()
    assert fl.bit_hops(pos) == pytest.approx(float((hdr * inter.hops(pos)).sum()))
    from mappings.placement import bit_hops
    assert fl.bit_hops(pos) == pytest.approx(bit_hops(fl.core_matrix(header=True), pos))


def test_flits_per_packet():
    plan = plan_network(tiny_network(), 16, 16, "single", activation_bits=8, psum_bits=16)
    fl = plan.flows
    per = fl.payload_bits + fl.header_bits()
    assert fl.flits(16) == int((np.ceil(per / 16) * fl.fanout).sum())
    assert fl.flits(10_000) == fl.n_packets()
    with pytest.raises(FlowError, match="link_width_bits"):
        fl.flits(0)


def _flows(**over):
    d = {"layer": np.zeros(1, np.int32), "kind": np.zeros(1, np.int8), "src": np.zeros(1, np.int32),
             "src_slot": np.zeros(1, np.int32), "dst_ptr": np.array([0, 1]), "dst": np.array([1], np.int32),
             "payload_bits": np.array([8]), "slot_address_bits": np.array([0]),
             "elements": np.array([1]), "n_cores": 2, "address_bits": 1}
    d.update(over)
    return Flows(**d)


def test_bad_flows_raise():
    _flows()
    with pytest.raises(FlowError, match="destination core 5 is outside the 2 cores"):
        _flows(dst=np.array([5], np.int32))
    with pytest.raises(FlowError, match="source core 3 is outside"):
        _flows(src=np.array([3], np.int32))
    with pytest.raises(FlowError, match="no destination"):
        _flows(dst_ptr=np.array([0, 0]), dst=np.zeros(0, np.int32))
    with pytest.raises(FlowError, match="positions must be"):
        _flows().hops(np.zeros((3, 2)))
    with pytest.raises(FlowError, match="unknown flow kind"):
        _flows().of_kind("bogus")


def test_placement_streams_do_not_depend_on_other_methods():
    t = np.random.default_rng(0).random((9, 9))
    alone = placement_report(t, (3, 4), 5, ("annealing",))
    after = placement_report(t, (3, 4), 5, ("random", "sequential", "annealing"))
    np.testing.assert_array_equal(alone.placements["annealing"].positions,
                                  after.placements["annealing"].positions)
    other = placement_report(t, (3, 4), 6, ("random",))
    assert not np.array_equal(other.placements["random"].positions,
                              after.placements["random"].positions)
