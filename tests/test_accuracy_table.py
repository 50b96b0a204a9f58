"""examples/accuracy_table.py: grid rows, ideal chip vs float, resume, outputs, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest

from mappings.builders import build_scrramble_network
from mappings.h5format import save_network
from sim.chip.config import chip_config_from_dict, default_chip_config

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "accuracy_table.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("accuracy_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["accuracy_table"] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


at = _load_script()

N_TEST = 200
PRESETS = ("ideal", "rram_wan2022")
BITS = (4, 8)
SEEDS = (0, 1)


def _network():
    # 28x28 -> 32x32 = 4 input cores of 256 -> 2 hidden cores -> 3 capsule cores: 5 crossbars
    return build_scrramble_network(hidden_cores=(2,), n_classes=3, rng=np.random.default_rng(0))


def _data(net, n, seed=1):
    """Images built from 6 sparse prototypes (the untrained network then predicts all three
    classes); labels = the float predictions with every third one redrawn at random."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((6, 28, 28)) < 0.3).astype(np.float32)
    x = protos[rng.integers(0, 6, n)] + 0.3 * rng.random((n, 28, 28), dtype=np.float32)
    x = np.clip(x, 0, 1).astype(np.float32)
    y = net.predict(x).astype(np.int64)
    y[::3] = rng.integers(0, 3, size=y[::3].shape)
    return x, y


@pytest.fixture(scope="module")
def setup():
    net = _network()
    x, y = _data(net, N_TEST + 64)
    test_x, test_y, cal_x = x[:N_TEST], y[:N_TEST], x[N_TEST:]
    computed: dict[str, dict] = {}
    records = at.run_grid(
        net, PRESETS, BITS, SEEDS, test_x=test_x, test_y=test_y, calibration_x=cal_x,
        calibration_samples=64, on_result=lambda r: computed.__setitem__(r["key"], r),
    )
    return net, test_x, test_y, cal_x, records, computed


def _grid(net, test_x, test_y, cal_x, seeds=SEEDS, **kw):
    return at.run_grid(
        net, PRESETS, BITS, seeds, test_x=test_x, test_y=test_y, calibration_x=cal_x,
        calibration_samples=64, **kw,
    )


def test_grid_rows(setup):
    net, _, test_y, _, records, computed = setup
    got = [(r["label"], r["adc_bits"], r["dac_bits"], r["activation_bits"], r["seed"])
           for r in records]
    want = [("ideal chip", 16, 16, 0, s) for s in SEEDS] + [
        (p, b, 8, 8, s) for p in PRESETS for b in BITS for s in SEEDS
    ]
    assert got == want
    assert len(computed) == len(records) and {r["key"] for r in records} == set(computed)
    float_acc = float(np.mean(net.predict(setup[1]) == test_y))
    assert float_acc < 1.0  # the labels are not just the float predictions
    for r in records:
        assert r["n_samples"] == N_TEST and r["calibration_samples"] == 64
        k = r["accuracy"] * N_TEST  # a count of correct images out of N_TEST
        assert k == pytest.approx(round(k), abs=1e-9)
        # above chance (3 classes) by a margin, never above the float network by more
        # than one image; ideal devices with 8-bit converters within 2 % of it
        assert 1 / 3 + 0.08 < r["accuracy"] <= float_acc + 1 / N_TEST
        if r["preset"] == "ideal" and r["adc_bits"] >= 8:
            assert r["accuracy"] >= float_acc - 0.02
        assert r["ideal_accuracy"] == pytest.approx(float_acc)
        assert len(r["snr_db"]) == len(r["snr_db_end_to_end"]) == len(net.layers)
        cfg = chip_config_from_dict(r["config"])
        assert cfg.device_preset == r["preset"] and cfg.adc.bits == r["adc_bits"]
        assert cfg.dac.bits == r["dac_bits"]
        assert cfg.mapping.activation_bits == r["activation_bits"]
        assert cfg.simulation.calibration_samples == 64
        # everything else is the packaged default chip
        assert cfg.chip == default_chip_config().chip and cfg.adc.calibration == "minmax"
    assert at.float_accuracy(records) == pytest.approx(float_acc)


def test_ideal_chip_matches_float(setup):
    records = setup[4]
    ideal = [r for r in records if r["ideal_chip"]]
    assert len(ideal) == len(SEEDS)
    for r in ideal:
        assert abs(r["accuracy"] - r["ideal_accuracy"]) <= 1.0 / N_TEST + 1e-12
        assert r["preset"] == "ideal" and r["adc_bits"] == r["dac_bits"] == 16


def test_snr_follows_converters_and_devices(setup):
    s = {(x["label"], x["adc_bits"]): x for x in at.summarize(setup[4])}
    l0 = {k: v["snr_db"][0] for k, v in s.items()}
    assert l0["ideal", 8] > l0["ideal", 4] + 10  # 4 more ADC bits: ~24 dB less quantisation
    assert l0["ideal chip", 16] > l0["ideal", 8]
    assert l0["rram_wan2022", 8] < l0["ideal", 8]  # programming error and read noise
    # seeds draw different chips on a noisy device, the same one on the ideal device
    recs = setup[4]
    wan = [r["snr_db"][0] for r in recs if r["preset"] == "rram_wan2022" and r["adc_bits"] == 8]
    ide = [r["snr_db"][0] for r in recs if r["label"] == "ideal" and r["adc_bits"] == 8]
    assert wan[0] != wan[1] and ide[0] == ide[1]


def test_summary_mean_and_std(setup):
    records = setup[4]
    summary = at.summarize(records)
    assert [(x["label"], x["adc_bits"]) for x in summary] == [("ideal chip", 16)] + [
        (p, b) for p in PRESETS for b in BITS
    ]
    for x in summary:
        accs = [r["accuracy"] for r in records
                if (r["label"], r["adc_bits"]) == (x["label"], x["adc_bits"])]
        assert x["n_seeds"] == len(SEEDS) and x["seeds"] == list(SEEDS)
        assert x["accuracy_mean"] == pytest.approx(np.mean(accs))
        assert x["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    one = at.summarize([r for r in records if r["seed"] == 0])
    assert all(x["accuracy_std"] == 0.0 and x["n_seeds"] == 1 for x in one)


def test_resume_skips_finished(setup, monkeypatch):
    net, test_x, test_y, cal_x, records, computed = setup
    calls = []
    real = at.simulate

    def counting(*args, **kw):
        calls.append(kw["seed"])
        return real(*args, **kw)

    monkeypatch.setattr(at, "simulate", counting)
    again = _grid(net, test_x, test_y, cal_x, done=dict(computed))
    assert calls == [] and again == records
    # one more seed: only its 1 + 4 points run; the others come from the stored results
    new = []
    more = _grid(net, test_x, test_y, cal_x, seeds=(0, 1, 2), done=dict(computed),
                 on_result=new.append)
    assert calls == [2] * 5 and len(new) == 5 and all(r["seed"] == 2 for r in new)
    assert [r for r in more if r["seed"] != 2] == records
    # other test samples -> other keys: nothing is reused
    calls.clear()
    other = _grid(net, test_x[:100], test_y[:100], cal_x, seeds=(0,), done=dict(computed))
    assert len(calls) == len(other) == 5
    assert not {r["key"] for r in other} & set(computed)


def test_same_seed_same_result(setup):
    net, test_x, test_y, cal_x, records, _ = setup
    again = at.run_grid(net, ["rram_wan2022"], [4], [1], test_x=test_x, test_y=test_y,
                        calibration_x=cal_x, calibration_samples=64, ideal_chip=False)
    (want,) = [r for r in records if r["preset"] == "rram_wan2022" and r["adc_bits"] == 4
               and r["seed"] == 1]
    assert again[0]["key"] == want["key"]
    assert again[0]["accuracy"] == want["accuracy"] and again[0]["snr_db"] == want["snr_db"]


def test_base_chip_retention_time_ages_instances(setup):
    net, test_x, test_y, cal_x, _, _ = setup
    runs = {}
    for t in (0.0, 86400.0):
        base = default_chip_config().replace(retention={"time_s": t})
        (runs[t],) = at.run_grid(net, ["pcm_joshi2020"], [8], [0], test_x=test_x[:50],
                                 test_y=test_y[:50], calibration_x=cal_x,
                                 calibration_samples=64, ideal_chip=False, base_config=base)
    assert runs[0.0]["age_s"] == 0.0 and runs[86400.0]["age_s"] == 86400.0
    assert runs[0.0]["key"] != runs[86400.0]["key"]
    assert runs[0.0]["snr_db"] != runs[86400.0]["snr_db"]


def test_markdown_table(setup):
    records = setup[4]
    md = at.markdown_table(records, title="T")
    f_acc = at.float_accuracy(records)
    assert md.startswith("### T")
    assert f"Float (software) accuracy: {100 * f_acc:.2f} %" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| device preset | ADC 4 bit | ADC 8 bit |"
    table = {ln.split(" | ")[0][2:]: ln.strip("| ").split(" | ")[1:] for ln in rows[1:3]}
    s = {(x["label"], x["adc_bits"]): x for x in at.summarize(records)}
    for p in PRESETS:
        for cell, b in zip(table[p], BITS):
            mean, std = (float(v) for v in cell.split(" ± "))
            assert mean == pytest.approx(100 * s[p, b]["accuracy_mean"], abs=0.006)
            assert std == pytest.approx(100 * s[p, b]["accuracy_std"], abs=0.006)
    ideal = s["ideal chip", 16]
    diff = 100 * (ideal["accuracy_mean"] - f_acc)
    assert f"{diff:+.2f} points from the float accuracy" in md
    assert "Per-layer SNR in dB" in md and "ideal chip |" not in md


# ------------------------------------------------------------------------------ command line


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(header + a.astype(np.uint8).tobytes())


@pytest.fixture
def cli_files(tmp_path):
    net = _network()
    x, y = _data(net, 300, seed=2)
    img = np.rint(x * 255).astype(np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    _write_idx(data / "train-images-idx3-ubyte", img[200:])
    _write_idx(data / "train-labels-idx1-ubyte", y[200:])
    _write_idx(data / "t10k-images-idx3-ubyte", img[:200])
    _write_idx(data / "t10k-labels-idx1-ubyte", y[:200])
    net_path = tmp_path / "net.h5"
    save_network(net, net_path)
    return net_path, data, tmp_path / "out"


def _argv(net_path, data, out, *extra):
    return [str(net_path), "--data", str(data), "--dataset", "fashion-mnist", "--out", str(out),
            "--presets", *PRESETS, "--adc-bits", *map(str, BITS), "--seeds", "0", "1",
            "--limit", "150", "--calibration-samples", "64", "--no-progress", *extra]


def test_main_outputs_and_resume(cli_files, capsys, monkeypatch):
    net_path, data, out = cli_files
    assert at.main(_argv(net_path, data, out)) == 0
    stdout = capsys.readouterr().out
    md = (out / at.MARKDOWN_NAME).read_text()
    assert md.strip() in stdout and "| rram_wan2022 |" in md
    assert "150 test images" in md and "calibrated on 64 training images" in md

    with open(out / at.CSV_NAME, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["label"], int(r["adc_bits"])) for r in rows] == [("ideal chip", 16)] + [
        (p, b) for p in PRESETS for b in BITS
    ]
    assert all(r["n_seeds"] == "2" and r["seeds"] == "0 1" for r in rows)
    assert {"snr_db_layer0", "snr_db_layer1", "snr_db_end_to_end_layer1"} <= set(rows[0])

    with h5py.File(out / at.H5_NAME, "r") as f:
        g = f["results"]
        assert g["accuracy"].shape == (10,) and g["snr_db"].shape == (10, 2)
        labels = [v.decode() for v in g["label"][()]]
        assert labels.count("ideal chip") == 2 and list(g["seed"][()]) == [0, 1] * 5
        cfg = chip_config_from_dict(json.loads(g["config_json"][4]))
        assert cfg.device_preset == "ideal" and cfg.adc.bits == 8
        meta = json.loads(f.attrs["meta_json"])
        assert meta["n_test"] == 150 and meta["seeds"] == [0, 1]
        float_acc = f.attrs["float_accuracy"]
        assert np.all(g["ideal_accuracy"][()] == float_acc)

    png = matplotlib.image.imread(out / at.FIGURE_NAME)
    assert png.ndim == 3 and png.shape[0] > 300 and png.shape[1] > 400
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    umask = os.umask(0)
    os.umask(umask)
    assert (out / at.CSV_NAME).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    stored = json.loads((out / at.RESULTS_NAME).read_text())
    assert len(stored["results"]) == 10

    # second run: nothing is simulated again, the outputs are the same
    monkeypatch.setattr(at, "simulate", lambda *a, **k: pytest.fail("simulated again"))
    before = (out / at.CSV_NAME).read_text()
    assert at.main(_argv(net_path, data, out)) == 0
    assert (out / at.CSV_NAME).read_text() == before
    assert "10 configurations (10 reused" in capsys.readouterr().err


def test_main_chip_file_and_one_seed(cli_files, capsys):
    net_path, data, out = cli_files
    chip = out.parent / "chip.toml"
    chip.write_text("[chip]\ngrid_rows = 1\ngrid_cols = 5\n[adc]\ncalibration = \"percentile\"\n")
    argv = _argv(net_path, data, out, "--chip", str(chip), "--no-ideal-chip")
    argv[argv.index("--seeds") + 1 : argv.index("--seeds") + 3] = ["3"]
    assert at.main(argv) == 0
    md = (out / at.MARKDOWN_NAME).read_text()
    assert "one chip instance, seed 3" in md and f"chip file {chip}" in md
    assert "Ideal chip" not in md and " ± " not in md
    with h5py.File(out / at.H5_NAME, "r") as f:
        cfgs = [chip_config_from_dict(json.loads(c)) for c in f["results/config_json"][()]]
    assert len(cfgs) == 4
    assert all(c.chip.grid == (1, 5) and c.adc.calibration == "percentile" for c in cfgs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--presets", "rram_nope"], "unknown device preset 'rram_nope'"),
        (["--adc-bits", "0"], "adc_bits: 0 is out of range; expected 1..16"),
        (["--seeds", "1", "1"], "seeds: repeated values"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--dac-bits", "1"], "dac_bits: 1 is out of range; expected 2..16"),
    ],
)
def test_main_bad_arguments(cli_files, capsys, extra, message):
    net_path, data, out = cli_files
    assert at.main(_argv(net_path, data, out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("accuracy_table: error:") and message in err


def test_main_chip_too_small_and_bad_network(cli_files, capsys, tmp_path):
    net_path, data, out = cli_files
    chip = tmp_path / "small.toml"
    chip.write_text("[chip]\ngrid_rows = 1\ngrid_cols = 2\n")
    assert at.main(_argv(net_path, data, out, "--chip", str(chip))) == 2
    err = capsys.readouterr().err
    assert str(chip) in err and "physical cores" in err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    assert at.main(_argv(bad, data, out)) == 2
    assert str(bad) in capsys.readouterr().err


def test_results_file_errors(tmp_path):
    p = tmp_path / "results.json"
    assert at.load_results(p) == {}
    p.write_text("{not json")
    with pytest.raises(at.AccuracyTableError, match="results.json: cannot read"):
        at.load_results(p)
    p.write_text(json.dumps({"format": "other"}))
    with pytest.raises(at.AccuracyTableError, match="not a scrramble-accuracy-table"):
        at.load_results(p)
    at.save_results(p, {"k": {"key": "k", "accuracy": 0.5}})
    assert at.load_results(p) == {"k": {"key": "k", "accuracy": 0.5}}


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        at.atomic_write(p, fail)
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]


def test_progress_bars_per_configuration_and_per_image(setup, capsys):
    net, test_x, test_y, cal_x, _, _ = setup
    at.run_grid(net, ("ideal",), (4,), (0,), test_x=test_x, test_y=test_y, calibration_x=cal_x,
                calibration_samples=64, ideal_chip=False, progress=True)
    err = capsys.readouterr().err
    assert "configurations" in err and "1/1" in err
    assert "test images: 100%|" in err or f"{N_TEST}/{N_TEST}" in err
    at.run_grid(net, ("ideal",), (4,), (0,), test_x=test_x, test_y=test_y, calibration_x=cal_x,
                calibration_samples=64, ideal_chip=False, progress=False)
    assert capsys.readouterr().err == ""
