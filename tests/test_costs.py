"""Energy by category and area: sums, device counts per encoding, brute-force array energy."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.builders import build_scrramble_network
from sim.chip.config import ChipConfigError, chip_config_from_dict, plan_for_chip
from sim.chip.mapping_report import count_devices
from sim.chip.programming import program_chip
from sim.costs.area import area_report
from sim.costs.constants import CostConfig, CostConfigError
from sim.costs.energy import CATEGORIES, EnergyError, energy_report, row_activity


def config(encoding="single", **sections):
    d = {"chip": {"grid_rows": 4, "grid_cols": 4, "core_rows": 64, "core_cols": 64,
                  "slot_size": 16},
         "device": {"preset": "rram_wan2022"}, "mapping": {"encoding": encoding}}
    for k, v in sections.items():
        d.setdefault(k, {}).update(v)
    return chip_config_from_dict(d, source="<costs chip>")


@pytest.fixture(scope="module")
def net():
    return build_scrramble_network(hidden_cores=(4,), n_classes=3, core_size=64, slot_size=16,
                                   p=0.3, rng=np.random.default_rng(0))


def _pos(plan, cols=4):
    return np.stack(np.divmod(np.arange(plan.n_physical_cores), cols), axis=1)


@pytest.mark.parametrize("encoding", ["single", "differential", "offset"])
def test_categories_add_up_and_ops(net, encoding):
    cfg = config(encoding)
    plan = plan_for_chip(net, cfg)
    r = energy_report(plan, cfg, positions=_pos(plan), seconds_per_inference=1e-7, network=net)
    assert list(r.pj) == list(CATEGORIES)
    assert r.total_pj == pytest.approx(sum(r.pj.values()))
    assert all(v > 0 for v in r.pj.values())
    macs = sum(t.n_weights for t in plan.layers)
    assert r.ops == 2 * macs
    assert r.tops_per_w == pytest.approx(r.ops / r.total_pj)
    assert r.inferences_per_j == pytest.approx(1e12 / r.total_pj)
    d = r.as_dict()
    assert d["total_pj_per_inference"] == pytest.approx(r.total_pj)


def test_constants_scale_their_categories(net):
    base = config()
    plan = plan_for_chip(net, base)
    kw = {"positions": _pos(plan), "seconds_per_inference": 2e-7, "network": net}
    r0 = energy_report(plan, base, **kw)
    r1 = energy_report(plan, base.replace(costs={"adc_pj_8bit": 2 * 1.67, "adc_pj_per_bit": 0.44}),
                       **kw)
    assert r1.pj["adc"] == pytest.approx(2 * r0.pj["adc"])
    assert {k: v for k, v in r1.pj.items() if k != "adc"} == {
        k: v for k, v in r0.pj.items() if k != "adc"}
    r2 = energy_report(plan, base, **{**kw, "seconds_per_inference": 4e-7})
    assert r2.pj["leakage"] == pytest.approx(2 * r0.pj["leakage"])
    # leakage = ADC leakage x ADCs x used cores x time (mW x s = 1e9 pJ)
    assert r0.pj["leakage"] == pytest.approx(0.2 * 8 * plan.n_physical_cores * 2e-7 * 1e9)
    # routers: bits x (hops + 1) per packet
    f = plan.flows
    bits = f.payload_bits + f.header_bits()
    routers = f.hops(_pos(plan)) + f.fanout
    assert r0.pj["router"] == pytest.approx(0.081 * float((bits * routers).sum()))
    with pytest.raises(EnergyError, match="seconds_per_inference"):
        energy_report(plan, base, **{**kw, "seconds_per_inference": -1.0})


def test_array_energy_from_instance_matches_brute_force(net):
    cfg = config("differential", dac={"bits": 4, "mode": "bit_serial"})
    plan = plan_for_chip(net, cfg)
    inst = program_chip(net, cfg, seed=1)
    samples = np.random.default_rng(2).random((3, 28, 28), dtype=np.float32)
    r = energy_report(plan, cfg, positions=_pos(plan), seconds_per_inference=0.0, network=net,
                      instance=inst, samples=samples)
    assert r.array_source == "instance"
    # brute force: every sample, layer, tile, input row, plane: t * (V bit)^2 * sum_j G
    x = net.input_spec.prepare(samples)
    total = 0.0
    for layer, t, dev in zip(net.layers, plan.layers, inst.layers):
        blocks = layer.route(x)
        full = np.abs(blocks).max()
        codes = np.rint(np.abs(blocks) / full * 7).astype(int)  # 4-bit signed: 7 levels
        for b in range(t.n_blocks):
            for rt in range(t.row_tiles):
                tile = t.tile_id(b, rt, 0)
                lo, hi = t.row_range(rt)
                g = dev.current.g_pos[tile].sum(0) + dev.current.g_neg[tile].sum(0)
                for i in range(lo, hi):
                    for s in range(len(samples)):
                        for p in range(3):
                            bit = (codes[b, i, s] >> p) & 1
                            total += 10.0 * 0.2 ** 2 * bit * g[i - lo]
        x = layer.activation.apply(layer.preactivation(x))
    assert r.pj["array"] == pytest.approx(total / len(samples) * 1e-3, rel=1e-6)
    act = row_activity(net, samples, plan, cfg)
    assert all(a.shape == (t.n_tiles, t.inputs_per_tile) for a, t in zip(act, plan.layers))


def test_area_follows_the_encodings(net):
    cfg = config()
    devices, _ = count_devices(net, cfg)
    a = area_report(cfg, devices)
    cell = 48 * 0.032 ** 2
    assert a.device_um2["single"] == pytest.approx(devices["single"] * cell)
    assert a.device_um2["differential"] == pytest.approx(2 * a.device_um2["single"])
    assert a.device_um2["offset"] > a.device_um2["single"]
    assert a.array_um2 == pytest.approx(64 * 64 * cell)
    assert a.adc_um2 == pytest.approx(8 * 1200.0)  # 64 columns / 8 per ADC, 8 bits
    assert a.dac_um2 == pytest.approx(64 * 8 * 0.166)
    assert sum(a.breakdown_mm2().values()) == pytest.approx(a.chip_mm2)
    assert a.chip_mm2 == pytest.approx(16 * a.core_um2 * 1e-6)
    serial = area_report(config(dac={"bits": 8, "mode": "bit_serial"}, adc={"bits": 6}))
    assert serial.dac_um2 == pytest.approx(64 * 0.166)
    assert serial.adc_um2 == pytest.approx(8 * 600.0)


def test_costs_section_validation():
    with pytest.raises(ChipConfigError, match=r"<costs chip>: \[costs\] adc_pj_8bit = -1"):
        config(costs={"adc_pj_8bit": -1})
    with pytest.raises(ChipConfigError, match=r"\[costs\] feature_nm = 0 is invalid"):
        config(costs={"feature_nm": 0})
    with pytest.raises(ChipConfigError, match="unknown key 'adc_pj' in section \\[costs\\]"):
        config(costs={"adc_pj": 1.0})
    cfg = config(costs={"router_pj_per_bit": 0.5})
    assert cfg.costs.router_pj_per_bit == 0.5
    assert chip_config_from_dict(cfg.to_dict()).costs == cfg.costs
    with pytest.raises(CostConfigError, match="router_pj_per_bit"):
        CostConfig(router_pj_per_bit=float("nan"))
    assert CostConfig().adc_pj(0) == 0.0
    assert CostConfig().adc_pj(4) == pytest.approx(0.79)
