"""The first-order MVM latency: which chip-file keys move it, and how the map report shows it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim.commands.cli
from mappings.builders import build_scrramble_network
from mappings.h5format import save_network
from mappings.network import InputSpec
from sim.chip.config import default_chip_config
from sim.chip.timing import READ_PULSE_NS, mvm_timing, sar_conversion_ns


def test_default_chip_timing_follows_its_converters():
    cfg = default_chip_config()  # 8-bit multilevel DAC, 8-bit ADC, 8 columns per ADC, 1 GHz
    t = mvm_timing(cfg, n_layers=2)
    assert t.passes == 1
    assert t.mvm_ns == pytest.approx(READ_PULSE_NS + 8 * sar_conversion_ns(8))
    assert sar_conversion_ns(8) == 9.0
    assert t.mvm_cycles == 82 and t.inference_cycles == 164
    assert t.inference_ns == pytest.approx(2 * t.mvm_ns)


def test_each_key_moves_the_latency():
    base = default_chip_config()
    t0 = mvm_timing(base, 1)
    more_columns = mvm_timing(base.replace(adc={"columns_per_adc": 16}), 1)
    assert more_columns.mvm_ns - READ_PULSE_NS == pytest.approx(2 * (t0.mvm_ns - READ_PULSE_NS))
    fewer_bits = mvm_timing(base.replace(adc={"bits": 4}), 1)
    assert fewer_bits.mvm_ns == pytest.approx(READ_PULSE_NS + 8 * 5.0)
    serial = mvm_timing(base.replace(dac={"mode": "bit_serial", "bits": 8}), 1)
    assert serial.passes == 7 and serial.mvm_ns == pytest.approx(7 * t0.mvm_ns)
    slow_clock = mvm_timing(base.replace(chip={"clock_mhz": 250.0}), 1)
    assert slow_clock.mvm_ns == t0.mvm_ns and slow_clock.mvm_cycles == 21  # 82 ns at 4 ns/cycle
    ideal_adc = mvm_timing(base.replace(adc={"bits": 0}), 1)
    assert ideal_adc.mvm_ns == READ_PULSE_NS


def test_columns_per_adc_is_capped_by_the_core_width():
    cfg = default_chip_config().replace(adc={"columns_per_adc": 1024})
    assert mvm_timing(cfg, 1).columns_per_adc == cfg.chip.core_cols


def test_map_reports_timing_from_the_chip_file(tmp_path, capsys):
    net = build_scrramble_network(
        hidden_cores=(2,), n_classes=2, input_spec=InputSpec((16, 16), (16, 16)),
        rng=np.random.default_rng(0),
    )
    save_network(net, tmp_path / "net.h5")
    chip = tmp_path / "chip.toml"
    chip.write_text("[chip]\nclock_mhz = 500.0\n[adc]\ncolumns_per_adc = 4\nbits = 6\n")
    assert sim.commands.cli.main(["map", str(tmp_path / "net.h5"), "--chip", str(chip), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["timing"]
    assert t["mvm_ns"] == pytest.approx(READ_PULSE_NS + 4 * 7.0)  # 38 ns
    assert t["mvm_cycles"] == 19 and t["inference_cycles"] == 2 * 19
    assert sim.commands.cli.main(["map", str(tmp_path / "net.h5"), "--chip", str(chip)]) == 0
    assert "38 ns = 19 cycles at 500 MHz" in capsys.readouterr().out
