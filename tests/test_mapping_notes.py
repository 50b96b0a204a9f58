"""Mapping report notes on encoding consequences, and the I/O bits of the unquantised output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mappings.builders import build_dense_network, build_scrramble_network
from mappings.tiling import FLOAT_ACTIVATION_BITS
from sim.chip.config import chip_config_from_dict
from sim.chip.mapping_report import map_network


@pytest.fixture(scope="module")
def net():
    return build_scrramble_network(
        hidden_cores=(6,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(0)
    )


def cfg(encoding, activation_bits=8):
    return chip_config_from_dict({
        "chip": {"grid_rows": 8, "grid_cols": 8, "core_rows": 64, "core_cols": 64,
                 "slot_size": 16},
        "mapping": {"encoding": encoding, "activation_bits": activation_bits},
    }, source="<test chip>")


def test_offset_on_core_wide_blocks_is_explained(net):
    """Issue 6: 'offset' keeps one column per core for the reference, so every core-wide
    ScRRAMBLe block becomes two column tiles (twice the cores and traffic): map says so."""
    off = map_network(net, cfg("offset"), seed=0, placement="sequential")
    single = map_network(net, cfg("single"), seed=0, placement="sequential")
    assert off.cores_used == 2 * single.cores_used
    assert len(off.notes) == 1
    note = off.notes[0]
    assert "reference" in note and "63 for weights" in note
    assert f"{off.cores_used} cores instead of {single.cores_used}" in note
    assert f"instead of {single.plan.inter_core_bits:,}" in note
    assert "note: encoding 'offset'" in off.table()
    assert json.loads(json.dumps(off.as_dict()))["notes"] == [note]
    assert single.notes == () and single.as_dict()["notes"] == []
    # dense blocks whose column tiles the reference column does not add to: no note
    dense = build_dense_network(hidden=(100, 50), rng=np.random.default_rng(1))
    assert map_network(dense, cfg("offset"), seed=0, placement="sequential").notes == ()


@pytest.mark.parametrize("bits", [0, 4, 8])
def test_io_bits_out_counts_the_unquantised_last_layer(net, bits):
    """The last layer's outputs are not quantised, so they leave as 32-bit words."""
    r = map_network(net, cfg("single", activation_bits=bits), seed=0, placement="sequential")
    assert r.plan.io_bits_out == net.layers[-1].n_out * FLOAT_ACTIVATION_BITS
