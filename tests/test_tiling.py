"""Tiling onto physical cores and traffic accounting (hand-computed and brute-force checks)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from devices.models import DeviceModel
from mappings.activations import Activation
from mappings.encodings import ENCODINGS, encode_matrix
from mappings.network import DenseLayer, InputSpec, Network, Readout, ScrrambleLayer
from mappings.routing import generate_routing, routing_stats
from mappings.tiling import (
    LayerTiling,
    TilingError,
    layer_tilings,
    plan_dense_baseline,
    plan_layers,
    plan_network,
)

CORE, SLOT = 16, 4


def _layer(C, rng):
    nd, s = C.shape[2], C.shape[3]
    W = rng.standard_normal((nd, s, s, SLOT, SLOT)).astype(np.float32)
    return ScrrambleLayer(C.astype(np.int8), W, Activation("relu"))


def tiny_network():
    """2 -> 3 -> 2 cores of 16 with 4 slots of 4, hand-made balanced routing."""
    rng = np.random.default_rng(0)
    C0 = np.zeros((2, 4, 3, 4), dtype=np.int8)
    C0[0, 0, 0, 1], C0[0, 0, 0, 2] = 1, -1
    C0[0, 0, 2, 0], C0[0, 0, 2, 3] = 1, -1
    C0[1, 3, 1, 2], C0[1, 3, 1, 0] = 1, -1
    C0[1, 2, 1, 1], C0[1, 2, 1, 0], C0[1, 2, 1, 3] = 2, -1, -1
    C1 = np.zeros((3, 4, 2, 4), dtype=np.int8)
    C1[0, 1, 0, 0], C1[0, 1, 0, 1] = 1, -1
    C1[2, 0, 1, 2], C1[2, 0, 1, 1] = 1, -1
    C1[1, 3, 0, 3], C1[1, 3, 0, 2] = 1, -1
    C1[2, 0, 0, 1], C1[2, 0, 0, 3] = 1, -1
    layers = (_layer(C0, rng), _layer(C1, rng))
    return Network(layers, InputSpec((32,), (32,)), Readout("capsule", 2))


def dense_network():
    rng = np.random.default_rng(1)
    l0 = DenseLayer(rng.standard_normal((40, 20)).astype(np.float32), np.zeros(20, np.float32))
    l1 = DenseLayer(rng.standard_normal((20, 4)).astype(np.float32), np.zeros(4, np.float32),
                    Activation("none"))
    return Network((l0, l1), InputSpec((40,), (40,)), Readout("logits", 4))


def random_network(rng, widths=(2, 3, 2), core=CORE, slot=SLOT, p=0.3):
    layers = []
    for a, b in itertools.pairwise(widths):
        C = generate_routing(a, b, core_size=core, slot_size=slot, p=p, rng=rng)
        W = rng.standard_normal((b, core // slot, core // slot, slot, slot)).astype(np.float32)
        layers.append(ScrrambleLayer(C, W))
    n_in = widths[0] * core
    return Network(tuple(layers), InputSpec((n_in,), (n_in,)), Readout("capsule", widths[-1]))


def test_hand_computed_scrramble_single_tile():
    plan = plan_network(tiny_network(), 16, 16, "single", activation_bits=8, psum_bits=16)
    assert [t.n_tiles for t in plan.layers] == [3, 2]
    assert plan.n_physical_cores == 5
    expected = np.zeros((5, 5), dtype=np.int64)
    expected[0, 3] = expected[1, 3] = expected[2, 3] = expected[2, 4] = 32  # 4 values x 8 bits
    np.testing.assert_array_equal(plan.traffic_bits, expected)
    assert plan.io_bits_in == 4 * 32  # four (input slot, core) links from the I/O port
    assert plan.io_bits_out == 32 * 32  # the last layer is not quantised: 32-bit words
    assert plan.layer_psum_bits == (0, 0)
    assert plan.layer_input_bits == (128, 128)


def test_hand_computed_scrramble_differential_row_tiles():
    plan = plan_network(tiny_network(), 16, 16, "differential", activation_bits=8, psum_bits=16)
    t0, t1 = plan.layers
    assert (t0.inputs_per_tile, t0.row_tiles, t0.col_tiles, t0.n_tiles) == (8, 2, 1, 6)
    assert t1.n_tiles == 4 and plan.first_core == (0, 6)
    e = np.zeros((10, 10), dtype=np.int64)
    e[0, 6] = 32  # slot (0,1) -> core 0 slots 0, 1: row tile 0 only
    e[4, 8] = e[4, 9] = 32  # slot (2,0) -> core 1 slots 2 and 1: both row tiles
    e[2, 7] = 32  # slot (1,3) -> core 0 slots 3, 2: row tile 1 only
    e[4, 6] += 32  # slot (2,0) -> core 0 slots 1, 3: both row tiles
    e[4, 7] += 32
    for rt1, rt0 in ((1, 0), (3, 2), (5, 4), (7, 6), (9, 8)):  # partial sums: 16 x 16 bits
        e[rt1, rt0] = 256
    np.testing.assert_array_equal(plan.traffic_bits, e)
    assert plan.io_bits_in == 8 * 32
    assert plan.layer_psum_bits == (3 * 256, 2 * 256)
    assert plan.psum_traffic_bits == 5 * 256
    assert plan.inter_core_bits == plan.activation_traffic_bits + plan.psum_traffic_bits


def test_hand_computed_dense_with_partial_sums():
    plan = plan_network(dense_network(), 32, 16, "differential", activation_bits=8, psum_bits=16)
    t0, t1 = plan.layers
    assert (t0.kind, t0.n_blocks, t0.block_out, t0.block_in) == ("dense", 1, 20, 40)
    assert (t0.inputs_per_tile, t0.outputs_per_tile, t0.row_tiles, t0.col_tiles) == (16, 16, 3, 2)
    assert (t1.row_tiles, t1.col_tiles) == (2, 1)
    e = np.zeros((8, 8), dtype=np.int64)
    e[2, 0] = e[4, 0] = 16 * 16  # row tiles 1, 2 of column 0 (16 outputs)
    e[3, 1] = e[5, 1] = 4 * 16  # of column 1 (4 outputs)
    e[0, 6] = 16 * 8  # outputs 0..15 -> layer 1 row tile 0
    e[1, 7] = 4 * 8  # outputs 16..19 -> layer 1 row tile 1
    e[7, 6] = 4 * 16  # layer 1 partial sums
    np.testing.assert_array_equal(plan.traffic_bits, e)
    assert plan.io_bits_in == 40 * 2 * 8  # every input to both column tiles
    assert plan.io_bits_out == 4 * 32  # the last layer is not quantised: 32-bit words


@pytest.mark.parametrize("bits", [8, 4, 0])
def test_scrramble_total_is_links_times_slot_bits(bits):
    rng = np.random.default_rng(7)
    net = random_network(rng, widths=(3, 5, 4, 2), core=64, slot=16, p=0.2)
    plan = plan_network(net, 64, 64, "single", activation_bits=bits, psum_bits=16)
    word = bits or 32
    links = [routing_stats(layer.routing).n_links for layer in net.layers]
    assert plan.n_physical_cores == 5 + 4 + 2
    assert plan.inter_core_bits == sum(links[1:]) * 16 * word
    assert plan.io_bits_in == links[0] * 16 * word
    assert plan.psum_traffic_bits == 0
    # the per-core-pair matrix counts the (source slot, destination core) links of each pair
    first = plan.first_core
    for k in (1, 2):
        block = plan.traffic_bits[
            first[k - 1] : first[k - 1] + net.layers[k - 1].n_dst_cores,
            first[k] : first[k] + net.layers[k].n_dst_cores,
        ]
        links_kk = np.any(net.layers[k].routing != 0, axis=3).sum(axis=1)
        np.testing.assert_array_equal(block, links_kk * 16 * word)


def test_differential_doubles_tiles_when_rows_equal_core_size():
    rng = np.random.default_rng(3)
    net = random_network(rng, widths=(2, 3, 2), core=64, slot=16)
    single = plan_network(net, 64, 64, "single", activation_bits=8, psum_bits=16)
    diff = plan_network(net, 64, 64, "differential", activation_bits=8, psum_bits=16)
    assert [t.n_tiles for t in single.layers] == [3, 2]
    assert [t.n_tiles for t in diff.layers] == [6, 4]
    assert all(t.row_tiles == 2 and t.col_tiles == 1 for t in diff.layers)
    assert diff.psum_traffic_bits == (3 + 2) * 64 * 16
    wide = plan_network(net, 128, 64, "differential", activation_bits=8, psum_bits=16)
    assert [t.n_tiles for t in wide.layers] == [3, 2]  # 128 rows hold 64 input pairs


def test_offset_reserves_a_reference_column():
    t = layer_tilings(tiny_network(), 16, 16, "offset")[0]
    assert (t.outputs_per_tile, t.col_tiles) == (15, 2)
    t = layer_tilings(tiny_network(), 16, 17, "offset")[0]
    assert (t.outputs_per_tile, t.col_tiles) == (16, 1)


def _reference_traffic(net, rows, cols, enc, act, psum):
    """Brute force: loop over tiles and elements."""
    tilings = layer_tilings(net, rows, cols, enc)
    n = sum(t.n_tiles for t in tilings)
    T = np.zeros((n, n), dtype=np.int64)
    io = 0
    first = 0
    prev = None
    for layer, t in zip(net.layers, tilings):
        for b in range(t.n_blocks):
            for r in range(t.row_tiles):
                lo, hi = t.row_range(r)
                needed = set()
                if t.kind == "dense":
                    needed = set(range(lo, hi))
                else:
                    C = layer.routing
                    ss = layer.slot_size
                    for i, j, l in zip(*np.nonzero(C[:, :, b, :])):
                        for p in range(ss):
                            if lo <= l * ss + p < hi:
                                needed.add((i * C.shape[1] + j) * ss + p)
                for c in range(t.col_tiles):
                    dst = first + t.tile_id(b, r, c)
                    for f in needed:
                        if prev is None:
                            io += act
                        else:
                            pt, pfirst = prev
                            pb, pos = divmod(f, pt.block_out)
                            T[pfirst + pt.tile_id(pb, 0, pos // pt.outputs_per_tile), dst] += act
                    if r > 0:  # the column's outputs and its reference column (offset)
                        a, z = t.col_range(c)
                        ref = 1 if enc == "offset" else 0
                        T[dst, first + t.tile_id(b, 0, c)] += (z - a + ref) * psum
        prev = (t, first)
        first += t.n_tiles
    return T, io


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rows,cols,enc", [
    (16, 16, "single"), (12, 16, "single"), (16, 16, "offset"), (16, 10, "differential"),
    (20, 7, "offset"), (6, 16, "differential"),
])
def test_matches_brute_force(seed, rows, cols, enc):
    rng = np.random.default_rng(seed)
    net = random_network(rng, widths=(2, 3, 2), p=0.4)
    plan = plan_network(net, rows, cols, enc, activation_bits=6, psum_bits=12)
    T, io = _reference_traffic(net, rows, cols, enc, 6, 12)
    np.testing.assert_array_equal(plan.traffic_bits, T)
    assert plan.io_bits_in == io
    assert plan.inter_core_bits == sum(plan.layer_input_bits[1:]) + plan.psum_traffic_bits


def test_dense_brute_force_and_baseline():
    net = dense_network()
    plan = plan_network(net, 12, 7, "offset", activation_bits=8, psum_bits=16)
    T, io = _reference_traffic(net, 12, 7, "offset", 8, 16)
    np.testing.assert_array_equal(plan.traffic_bits, T)
    assert plan.io_bits_in == io
    # the shape-only dense baseline of a ScRRAMBLe network equals real dense layers
    rng = np.random.default_rng(5)
    snet = random_network(rng, widths=(2, 3, 2))
    base = plan_dense_baseline(snet, 16, 16, "single", activation_bits=8, psum_bits=16)
    dl = tuple(
        DenseLayer(np.ascontiguousarray(layer.expanded_matrix().T), np.zeros(layer.n_out,
                                                                             np.float32))
        for layer in snet.layers
    )
    real = plan_network(dl, 16, 16, "single", activation_bits=8, psum_bits=16)
    np.testing.assert_array_equal(base.traffic_bits, real.traffic_bits)
    assert base.n_physical_cores == real.n_physical_cores == 2 * 3 + 3 * 2
    assert base.inter_core_bits > plan_network(
        snet, 16, 16, "single", activation_bits=8, psum_bits=16
    ).inter_core_bits


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_layer_devices_match_encoded_tiles(encoding):
    net = tiny_network()
    dev = DeviceModel(name="d")
    for layer, t in zip(net.layers, layer_tilings(net, 12, 10, encoding)):
        mats = layer.core_matrices()
        total = 0
        for b in range(t.n_blocks):
            for r in range(t.row_tiles):
                for c in range(t.col_tiles):
                    (i0, i1), (o0, o1) = t.row_range(r), t.col_range(c)
                    enc = encode_matrix(mats[b, o0:o1, i0:i1], encoding, "core", dev,
                                        balanced=True)
                    total += enc.devices()
        assert t.devices(encoding) == total


@pytest.mark.parametrize("plan_enc", ENCODINGS)
@pytest.mark.parametrize("count_enc", ENCODINGS)
def test_plan_devices_under_another_encoding_retiles(plan_enc, count_enc):
    # 16 columns: offset tiles hold 15 outputs, so a 16-output block needs 2 column tiles
    # (2 reference columns) while single / differential tiles need one
    net = tiny_network()
    plan = plan_network(net, 16, 16, plan_enc, activation_bits=8, psum_bits=16)
    own = plan_network(net, 16, 16, count_enc, activation_bits=8, psum_bits=16)
    assert plan.devices(count_enc) == own.devices()
    n_weights = sum(layer.n_dst_cores * 16 * 16 for layer in net.layers)
    if count_enc == "offset":
        assert own.devices() == n_weights + (3 + 2) * 2 * 16  # blocks x col tiles x rows
    else:
        assert own.devices() == n_weights * (2 if count_enc == "differential" else 1)


def test_shape_only_dense_layers_are_validated():
    for bad in (("dense", 0, 5), ("dense", 4, -1), ("dense", 4.5, 5), ("dense", True, 5)):
        with pytest.raises(TilingError, match="shape-only dense layer"):
            plan_layers([bad], 16, 16, "single", activation_bits=8, psum_bits=8)
    plan = plan_layers([("dense", np.int64(40), 20)], 16, 16, "single", activation_bits=8,
                       psum_bits=8)
    assert (plan.layers[0].row_tiles, plan.layers[0].col_tiles) == (3, 2)


def test_layer_tiling_contract_fields():
    t = LayerTiling(0, "dense", 1, 20, 40, 16, 16, 3, 2)
    assert t.n_tiles == 6 and t.n_in == 40 and t.n_out == 20
    assert t.row_range(2) == (32, 40) and t.col_range(1) == (16, 20)


def test_invalid_arguments():
    net = tiny_network()
    with pytest.raises(TilingError, match="valid encodings"):
        plan_network(net, 16, 16, "pairs", activation_bits=8, psum_bits=16)
    with pytest.raises(TilingError, match="core_rows=1 is too small"):
        plan_network(net, 1, 16, "differential", activation_bits=8, psum_bits=16)
    with pytest.raises(TilingError, match="core_cols=1 leaves no output"):
        plan_network(net, 16, 1, "offset", activation_bits=8, psum_bits=16)
    with pytest.raises(TilingError, match="psum_bits"):
        plan_network(net, 16, 16, "single", activation_bits=8, psum_bits=0)
    with pytest.raises(TilingError, match="activation_bits"):
        plan_network(net, 16, 16, "single", activation_bits=-1, psum_bits=16)
    with pytest.raises(TilingError, match="core_rows"):
        plan_network(net, 0, 16, "single", activation_bits=8, psum_bits=16)
