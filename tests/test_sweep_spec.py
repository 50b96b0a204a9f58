"""Sweep specifications: expansion into points, sampling, keys, and validation errors."""

from __future__ import annotations

import numpy as np
import pytest
from sweep_fixtures import make_workdir, spec_text

from sim.sweep import SweepSpecError, load_sweep
from sim.sweep.spec import point_config


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("sweep_spec"))


def _load(work, tmp_path, parameters, sweep_extra="", fixed="", name="spec.toml"):
    p = tmp_path / name
    p.write_text(spec_text(work, parameters, sweep_extra, fixed))
    return load_sweep(p)


def test_grid_expansion_dims_and_tasks(work, tmp_path):
    sw = _load(work, tmp_path,
               '"adc.bits" = {start = 4, stop = 8, step = 2}\n'
               '"device.programming.coeffs" = {start = 0.0, stop = 0.1, num = 3}\n',
               "seeds = [3, 5]\n", '"device.programming.kind" = "proportional"\n')
    assert sw.dims == ("adc.bits", "device.programming.coeffs", "seed")
    assert [p.values for p in sw.parameters] == [(4, 6, 8), ([0.0], [0.05], [0.1])]
    tasks = sw.tasks()
    assert len(tasks) == 3 * 3 * 2
    assert len({t.key for t in tasks}) == len(tasks)
    t = tasks[-1]
    assert t.index == (2, 2, 1) and t.seed == 5
    cfg = point_config(sw, t.values)
    assert cfg.adc.bits == 8
    assert cfg.device.programming.kind == "proportional"
    assert cfg.device.programming.coeffs == (0.1,)
    assert cfg.chip.core_rows == 64  # the base chip file's


def test_keys_depend_on_point_not_on_order(work, tmp_path):
    a = _load(work, tmp_path, '"adc.bits" = [4, 8]\n"dac.bits" = [6, 8]\n', name="a.toml")
    b = _load(work, tmp_path, '"dac.bits" = [8, 6]\n"adc.bits" = [8, 4]\n', name="b.toml")
    assert {t.key for t in a.tasks()} == {t.key for t in b.tasks()}
    c = _load(work, tmp_path, '"adc.bits" = [4, 8]\n"dac.bits" = [6, 8]\n',
              "samples = 10\n", name="c.toml")
    assert not {t.key for t in a.tasks()} & {t.key for t in c.tasks()}


def test_random_and_lhs_sampling(work, tmp_path):
    params = ('"retention.time_s" = {low = 1.0, high = 1000.0, log = true}\n'
              '"adc.bits" = {low = 4, high = 8}\n"mapping.encoding" = ["single", "offset"]\n')
    lhs = _load(work, tmp_path, params, 'sampling = "lhs"\npoints = 10\nsampling_seed = 4\n')
    assert lhs.dims == ("point", "seed") and len(lhs.points) == 10
    t = np.array([p["retention.time_s"] for p in lhs.points])
    strata = np.floor(np.log(t) / np.log(1000.0) * 10).astype(int)
    assert sorted(strata) == list(range(10))  # one draw per stratum
    bits = [p["adc.bits"] for p in lhs.points]
    assert all(isinstance(b, int) and 4 <= b <= 8 for b in bits) and len(set(bits)) == 5
    assert {p["mapping.encoding"] for p in lhs.points} == {"single", "offset"}
    again = _load(work, tmp_path, params, 'sampling = "lhs"\npoints = 10\nsampling_seed = 4\n')
    assert again.points == lhs.points
    rnd = _load(work, tmp_path, params, 'sampling = "random"\npoints = 10\nsampling_seed = 5\n')
    assert rnd.points != lhs.points


def test_preset_parameter_starts_device_from_the_preset(work, tmp_path):
    sw = _load(work, tmp_path, '"device.preset" = ["ideal", "pcm_joshi2020"]\n')
    cfgs = [point_config(sw, p) for p in sw.points]
    assert [c.device.name for c in cfgs] == ["ideal", "pcm_joshi2020"]


@pytest.mark.parametrize(
    ("parameters", "sweep_extra", "fixed", "expected"),
    [
        ('"adc.bitz" = [4]\n', "", "", ["unknown key 'bitz' in section [adc]", "bits"]),
        ('"adc.bits" = []\n', "", "", ["'adc.bits'", "empty list"]),
        ('"adc.bits" = {start = 8, stop = 4, step = 1}\n', "", "", ["empty range"]),
        ('"adc.bits" = ["eight"]\n', "", "", ["adc.bits", "expected an integer 0 or 1..16"]),
        ('"adc.bits" = [4, 99]\n', "", "", ["'adc.bits' = 99", "expected an integer 0 or 1..16"]),
        ('"device.programming.coeffs" = [0.1, -0.1]\n', "",
         '"device.programming.kind" = "proportional"\n', ["[device.programming]", ">= 0"]),
        ('"adc" = [4]\n', "", "", ["dotted chip-file path"]),
        ('"adc.bits.x" = [4]\n', "", "", ["adc.bits is a value, not a table"]),
        ('"chip.slot_size" = [16, 48]\n', "", "", ["slot_size = 48 must divide core_cols"]),
        ('"adc.bits" = {low = 4, high = 8}\n', "", "", ["a grid needs a list"]),
        ('"adc.bits" = {low = 4, high = 8}\n', 'sampling = "lhs"\n', "", ["needs points"]),
        ('"adc.bits" = [4]\n', "seeds = 0\n", "", ["seeds = 0"]),
        ('"adc.bits" = [4]\n', "", '"dac.bits" = 1\n', ["[fixed]", "dac", "bits = 1"]),
        ('"adc.bits" = [4]\n', 'sampling = "sobol"\n', "", ["sampling", "grid, random, lhs"]),
        ('"adc.bits" = [4]\n', "colour = 1\n", "", ["[sweep] unknown key 'colour'"]),
    ],
)
def test_bad_specs_name_file_key_and_expectation(work, tmp_path, parameters, sweep_extra,
                                                 fixed, expected):
    with pytest.raises(SweepSpecError) as info:
        _load(work, tmp_path, parameters, sweep_extra, fixed, name="bad.toml")
    msg = str(info.value)
    assert str(tmp_path / "bad.toml") in msg
    for part in expected:
        assert part in msg


def test_missing_network_and_bad_toml(work, tmp_path):
    p = tmp_path / "nonet.toml"
    p.write_text('[sweep]\nnetwork = "/nonexistent/net.h5"\n[parameters]\n"adc.bits" = [4]\n')
    with pytest.raises(SweepSpecError, match="nonet.toml: network: .*no such"):
        load_sweep(p)
    p.write_text("[sweep\n")
    with pytest.raises(SweepSpecError, match="invalid TOML"):
        load_sweep(p)
    with pytest.raises(SweepSpecError, match="no such sweep specification"):
        load_sweep(tmp_path / "absent.toml")


def test_network_that_does_not_fit_is_refused(work, tmp_path):
    with pytest.raises(SweepSpecError, match="bad.toml"):
        _load(work, tmp_path, '"chip.grid_rows" = [1, 8]\n', name="bad.toml")


@pytest.mark.parametrize("name", ["accuracy_table", "ideal_chip", "programming_error_adc",
                                  "retention_lhs"])
def test_example_specs_are_valid(work, name):
    import tomllib
    from pathlib import Path

    from sim.sweep import sweep_from_dict

    path = Path(__file__).resolve().parents[1] / "examples" / "sweeps" / f"{name}.toml"
    d = tomllib.loads(path.read_text())
    d["sweep"].update(network=str(work / "net.h5"), data=str(work / "data"),
                      chip=str(work / "chip.toml"))
    sweep = sweep_from_dict(d, str(path))
    n = {"accuracy_table": 15, "ideal_chip": 1, "programming_error_adc": 18,
         "retention_lhs": 24}[name]
    assert len(sweep.points) == n and len(sweep.tasks()) == n * len(sweep.seeds)
