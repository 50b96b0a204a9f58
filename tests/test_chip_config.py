"""Chip description files: defaults, validation errors, round trips, fit checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from devices.converters import ADCConfig, DACConfig
from devices.presets import PRESETS, get_preset
from mappings.builders import build_scrramble_network
from mappings.network import InputSpec
from mappings.tiling import plan_network
from sim.chip.config import (
    SECTIONS,
    ChipConfig,
    ChipConfigError,
    RetentionConfig,
    check_fits,
    chip_config_from_dict,
    default_chip_config,
    load_chip_config,
    plan_for_chip,
    save_chip_config,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chips"


def write(tmp_path, text, name="chip.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults():
    cfg = default_chip_config()
    assert cfg == ChipConfig()  # the packaged file states the dataclass defaults
    assert cfg.source.endswith("default_chip.toml")
    c = cfg.chip
    assert (c.grid_rows, c.grid_cols, c.core_rows, c.core_cols, c.slot_size) == (8, 8, 256, 256, 64)
    assert c.clock_mhz == 1000.0 and cfg.n_cores == 64 and cfg.grid == (8, 8)
    assert cfg.device == get_preset("rram_wan2022") and cfg.device_preset == "rram_wan2022"
    assert cfg.dac == DACConfig(8, "multilevel")
    assert cfg.adc == ADCConfig(bits=8, calibration="minmax", granularity="core")
    m = cfg.mapping
    assert (m.encoding, m.scaling, m.placement, m.activation_bits, m.psum_bits) == (
        "single", "core", "sequential", 8, 16)
    assert cfg.retention.time_s == 0.0 and cfg.retention.drift_compensation == "read"
    assert cfg.simulation.batch_chunk == 1000 and cfg.simulation.calibration_samples == 512
    assert chip_config_from_dict({}) == cfg


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_example_chips_load_and_round_trip(path, tmp_path):
    cfg = load_chip_config(path)
    assert chip_config_from_dict(cfg.to_dict()) == cfg
    out = save_chip_config(cfg, tmp_path / "copy.toml")
    assert load_chip_config(out) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["copy.toml"]  # no temp file left


def test_required_examples_present():
    names = {p.stem for p in EXAMPLES.glob("*.toml")}
    assert {"ideal", "neurram_like", "ibm_hfox", "milo2021", "pcm", "dense_baseline"} <= names
    n = load_chip_config(EXAMPLES / "neurram_like.toml")
    assert n.device_preset == "rram_wan2022" and n.mapping.encoding == "single"
    assert n.dac.bits == 8 and n.adc.bits == 8
    assert load_chip_config(EXAMPLES / "dense_baseline.toml").mapping.encoding == "differential"
    ideal = load_chip_config(EXAMPLES / "ideal.toml")
    assert ideal.device.is_noise_free() and ideal.dac.bits == 0 and ideal.adc.bits == 0


def test_device_overrides_and_round_trip(tmp_path):
    p = write(tmp_path, """
[device]
preset = "rram_ibm_hfox"
g_min = 5
n_levels = 8
variation = 0.02

[device.programming]
kind = "constant"
coeffs = [0.5]

[device.retention]
sigma_base = 0.2
""")
    cfg = load_chip_config(p)
    base = PRESETS["rram_ibm_hfox"]
    d = cfg.device
    assert (d.g_min, d.g_max, d.n_levels, d.variation) == (5.0, base.g_max, 8, 0.02)
    assert d.programming.kind == "constant" and d.programming.coeffs == (0.5,)
    assert d.programming.relative_to_gmax is False  # a new kind starts from defaults
    assert d.retention.kind == base.retention.kind  # no kind: merged onto the preset
    assert d.retention.sigma_base == 0.2
    assert d.retention.sigma_per_ln_t == base.retention.sigma_per_ln_t
    dd = cfg.to_dict()["device"]
    assert dd["preset"] == "rram_ibm_hfox" and dd["g_min"] == 5.0
    assert dd["retention"] == {"sigma_base": 0.2}
    assert "g_max" not in dd
    assert chip_config_from_dict(cfg.to_dict()) == cfg
    assert load_chip_config(save_chip_config(cfg, tmp_path / "rt.toml")) == cfg


def test_replace_merges_and_validates():
    cfg = default_chip_config()
    new = cfg.replace(mapping={"encoding": "offset"}, chip={"grid_rows": 4})
    assert new.mapping.encoding == "offset" and new.chip.grid_rows == 4
    assert new.mapping.scaling == cfg.mapping.scaling and new.device == cfg.device
    with pytest.raises(ChipConfigError, match="encoding"):
        cfg.replace(mapping={"encoding": "pairs"})


@pytest.mark.parametrize("text,needles", [
    ("[chip]\ngrid_row = 4\n", ["chip.toml", "[chip]", "'grid_row'", "grid_rows", "slot_size"]),
    ("[chips]\ngrid_rows = 4\n", ["chip.toml", "[chips]", "valid sections", "[mapping]"]),
    ("grid_rows = 4\n", ["chip.toml", "'grid_rows'", "outside any section"]),
    ("[device]\ng_mx = 4.0\n", ["[device]", "'g_mx'", "g_max", "preset"]),
    ("[device.programming]\ncoef = [1.0]\n", ["[device.programming]", "'coef'", "coeffs"]),
    ("[mapping]\nencoding = \"pairs\"\n", ["[mapping] encoding", "\"pairs\"", "'differential'"]),
    ("[chip]\ngrid_rows = 0\n", ["[chip] grid_rows = 0", "1..1024"]),
    ("[chip]\ngrid_rows = 4.0\n", ["[chip] grid_rows = 4.0", "an integer"]),
    ("[chip]\ngrid_rows = true\n", ["[chip] grid_rows = true", "an integer"]),
    ("[chip]\nclock_mhz = -5\n", ["clock_mhz = -5", "> 0"]),
    ("[dac]\nbits = 1\n", ["[dac] bits = 1", "0 or 2..16"]),
    ("[adc]\nbits = 17\n", ["[adc] bits = 17", "0 or 1..16"]),
    ("[adc]\npercentile = 40\n", ["[adc] percentile = 40", "> 50 and <= 100"]),
    ("[mapping]\nactivation_bits = 33\n", ["activation_bits = 33", "0..32"]),
    ("[mapping]\npsum_bits = 0\n", ["psum_bits = 0", "1..64"]),
    ("[retention]\ntime_s = -1.0\n", ["[retention] time_s = -1.0", ">= 0"]),
    ("[retention]\ndrift_compensation = 1\n", ["drift_compensation = 1", "'read', 'oracle'"]),
    ("[retention]\ndrift_compensation = \"exact\"\n",
     ["drift_compensation = \"exact\"", "one of 'read', 'oracle', 'none' (or true = 'read'"]),
    ("[simulation]\nbatch_chunk = 0\n", ["batch_chunk = 0", "1..10000000"]),
    ("[simulation]\nskip_zero_inputs = 1\n", ["[simulation] skip_zero_inputs = 1", "true or false"]),
    ("[device]\npreset = \"unobtainium\"\n", ["[device] preset", "'rram_wan2022'"]),
    ("[device]\ng_min = 50.0\n", ["[device] g_min", "g_max must be > g_min"]),
    ("[device]\nstuck_at_gmin = 1.5\n", ["stuck_at_gmin = 1.5", "0..1"]),
    ("[device.programming]\ncoeffs = \"x\"\n", ["[device.programming] coeffs", "list of numbers"]),
    ("[device]\nprogramming = 3\n", ["[device.programming]", "table"]),
    ("[dac]\nmode = \"bit_serial\"\nbits = 0\n", ["[dac]", "bit_serial"]),
    ("[chip]\nslot_size = 48\n", ["slot_size = 48", "divide core_cols = 256"]),
    ("[chip]\ngrid_rows = [\n", ["chip.toml", "invalid TOML"]),
    ("mapping = 3\n", ["[mapping]", "must be a table"]),
])
def test_errors_name_file_section_key(tmp_path, text, needles):
    p = write(tmp_path, text)
    with pytest.raises(ChipConfigError) as exc:
        load_chip_config(p)
    msg = str(exc.value)
    assert msg.startswith(str(p))
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ChipConfigError, match="no such chip file"):
        load_chip_config(tmp_path / "absent.toml")
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe[chip]")
    with pytest.raises(ChipConfigError, match="not UTF-8"):
        load_chip_config(p)


def test_sections_are_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "chip_file.md").read_text()
    cfg = default_chip_config().to_dict()
    for section in SECTIONS:
        assert f"[{section}]" in doc
    for section, keys in cfg.items():
        for key in keys:
            assert f"`{key}`" in doc, (section, key)
    from dataclasses import fields

    from devices.models import DeviceModel, RetentionModel, SigmaModel

    for cls in (DeviceModel, SigmaModel, RetentionModel):
        for f in fields(cls):
            assert f"`{f.name}`" in doc, (cls.__name__, f.name)


def _mnist_like(hidden=(6,), core=256, slot=64):
    return build_scrramble_network(
        hidden_cores=hidden, n_classes=2, core_size=core, slot_size=slot,
        input_spec=InputSpec((16, 16), (16, 16)), rng=np.random.default_rng(0),
    )


def test_check_fits():
    net = _mnist_like(hidden=(6,))  # 1 -> 6 -> 2 cores
    cfg = chip_config_from_dict({"chip": {"grid_rows": 2, "grid_cols": 4}}, source="small.toml")
    plan = plan_for_chip(net, cfg)  # 8 cores on a 2 x 4 grid: fits exactly
    assert plan.n_physical_cores == 8
    diff = cfg.replace(mapping={"encoding": "differential"})
    with pytest.raises(ChipConfigError) as exc:
        plan_for_chip(net, diff)
    assert str(exc.value) == (
        "small.toml: network needs 16 physical cores for encoding differential, "
        "chip has 2 x 4 = 8"
    )
    # the slot size and core width must match the network's ScRRAMBLe cores
    with pytest.raises(ChipConfigError, match="16-wide slots but \\[chip\\] slot_size = 64"):
        plan_for_chip(_mnist_like(slot=16), cfg)
    narrow = cfg.replace(chip={"core_cols": 128, "grid_rows": 8})
    with pytest.raises(ChipConfigError, match="256-wide ScRRAMBLe cores but \\[chip\\] core_cols"):
        plan_for_chip(net, narrow)
    other = plan_network(net, 128, 128, "single", activation_bits=8, psum_bits=16)
    with pytest.raises(ChipConfigError, match="plan was made for 128 x 128"):
        check_fits(other, cfg)


@pytest.mark.parametrize(
    "value, mode", [('"read"', "read"), ('"oracle"', "oracle"), ('"none"', "none"),
                    ("true", "read"), ("false", "none")],
)
def test_drift_compensation_modes_and_old_booleans(value, mode):
    """[retention] drift_compensation names how the drift factor is estimated; the boolean of
    older chip files maps true -> 'read' (measured on the chip), false -> 'none'."""
    cfg = chip_config_from_dict(tomllib.loads(f"[retention]\ndrift_compensation = {value}\n"))
    assert cfg.retention.drift_compensation == mode
    again = chip_config_from_dict(tomllib.loads(cfg.to_toml()))
    assert again.retention.drift_compensation == mode
    assert RetentionConfig(drift_compensation=value == "true").drift_compensation in (
        "read", "none")


# ------------------------------------------------------------------------------ [noc] section


def test_noc_section_round_trips_and_follows_the_grid():
    from sim.chip.config import chip_config_from_dict, default_chip_config

    base = default_chip_config()
    cfg = base.replace(chip={"grid_rows": 4, "grid_cols": 16}, noc={"vcs": 2, "buffer_depth": 4})
    assert (cfg.noc.rows, cfg.noc.cols) == (4, 16)
    assert (cfg.noc.vcs, cfg.noc.buffer_depth) == (2, 4)
    assert chip_config_from_dict(cfg.to_dict()) == cfg
    assert "rows" not in cfg.to_dict()["noc"]


@pytest.mark.parametrize(
    "table, words",
    [
        ({"vcs": 0}, ["[noc] vcs", "1..64"]),
        ({"rows": 3}, ["[noc] rows", "grid_rows"]),
        ({"routing": "zz"}, ["[noc] routing", "'xy'"]),
        ({"bogus": 1}, ["[noc]", "bogus"]),
        ({"multicast": True, "topology": "torus"}, ["[noc]", "multicast"]),
    ],
)
def test_bad_noc_section_names_file_and_key(table, words):
    from sim.chip.config import ChipConfigError, chip_config_from_dict

    with pytest.raises(ChipConfigError) as err:
        chip_config_from_dict({"noc": table}, source="my_chip.toml")
    msg = str(err.value)
    assert msg.startswith("my_chip.toml: ")
    for w in words:
        assert w in msg
