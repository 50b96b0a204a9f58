"""The placement is part of a programmed chip instance: seeded, saved, reloaded."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mappings.placement import place_seeded
from sim.chip.programming import ChipInstanceError, age, load_instance, program_chip, save_instance
from tests.test_programming import small_config


@pytest.fixture(scope="module")
def scr_net():
    from mappings.builders import build_scrramble_network

    return build_scrramble_network(
        hidden_cores=(4,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(0)
    )


@pytest.mark.parametrize("method", ["sequential", "random", "annealing"])
def test_instance_placement_saved_and_loaded(tmp_path, scr_net, method):
    cfg = small_config(mapping={"placement": method})
    inst = program_chip(scr_net, cfg, seed=3)
    p = inst.placement
    assert p.method == method and p.positions.shape == (inst.plan.n_physical_cores, 2)
    expected = place_seeded(inst.plan.flows.core_matrix(), cfg.grid, method, 3)
    np.testing.assert_array_equal(p.positions, expected.positions)
    assert age(inst, 10.0, 1).placement is p
    back = load_instance(save_instance(inst, tmp_path / "chip.h5"), scr_net)
    np.testing.assert_array_equal(back.placement.positions, p.positions)
    assert back.placement.method == method and back.placement.grid == cfg.grid


def test_old_files_without_placement_load(tmp_path, scr_net):
    path = save_instance(program_chip(scr_net, small_config(), seed=1), tmp_path / "old.h5")
    with h5py.File(path, "a") as f:
        del f["placement"]
    assert load_instance(path, scr_net).placement is None


def test_damaged_placement_is_reported(tmp_path, scr_net):
    path = save_instance(program_chip(scr_net, small_config(), seed=1), tmp_path / "bad.h5")
    with h5py.File(path, "a") as f:
        pos = f["placement"][()]
        pos[1] = pos[0]
        f["placement"][...] = pos
    with pytest.raises(ChipInstanceError, match=r"bad\.h5.*placement.*distinct"):
        load_instance(path, scr_net)
