"""Running sweeps: the labelled Dataset, instance reuse, resume, Dask equality, reports."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from sweep_fixtures import make_workdir, spec_text

from sim.chip.functional import simulate
from sim.chip.programming import age, program_chip
from sim.datasets import load_dataset as load_idx
from sim.sweep import PointEvaluator, group_tasks, load_sweep, run_sweep
from sim.sweep.report import markdown_summary, summary_rows, write_report
from sim.sweep.spec import point_config
from sim.sweep.store import finished_keys, load_dataset, point_path

PARAMS = ('"device.programming.coeffs" = {start = 0.0, stop = 0.1, num = 3}\n'
          '"adc.bits" = [4, 8]\n')
FIXED = '"device.programming.kind" = "proportional"\n'


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("sweep_run"))


@pytest.fixture(scope="module")
def grid(work):
    spec = work / "grid.toml"
    spec.write_text(spec_text(work, PARAMS, "seeds = 2\n", FIXED))
    sweep = load_sweep(spec)
    run = run_sweep(sweep, work / "out", workers=0, progress=False)
    return sweep, run, load_dataset(run.results)


def test_dataset_is_labelled_and_complete(grid):
    _, run, ds = grid
    assert run.computed == run.n_points == 12 and run.skipped == 0
    assert ds["accuracy"].dims == ("device.programming.coeffs", "adc.bits", "seed")
    assert list(ds["adc.bits"].values) == [4, 8]
    assert np.allclose(ds["device.programming.coeffs"].values, [0.0, 0.05, 0.1])
    assert list(ds["seed"].values) == [0, 1]
    assert bool(ds["done"].all())
    assert ds["snr_db"].dims[-1] == "layer" and ds.sizes["layer"] == 2
    acc = ds["accuracy"].mean("seed")
    # programming error costs accuracy; the SNR falls with it
    assert float(acc.sel({"device.programming.coeffs": 0.0}).mean()) > float(
        acc.sel({"device.programming.coeffs": 0.1}).mean())
    snr = ds["snr_db"].isel(layer=0).mean(("seed", "adc.bits")).values
    assert snr[0] > snr[1] > snr[2]
    # latency grows with the ADC bits, traffic does not depend on them
    lat = ds["latency_ns"].isel({"device.programming.coeffs": 0, "seed": 0}).values
    assert lat[1] > lat[0]
    energy = ds["energy_pj"].isel({"device.programming.coeffs": 0, "seed": 0}).values
    assert energy[1] > energy[0] > 0  # 8-bit conversions cost more than 4-bit ones


def test_point_equals_a_plain_simulation(work, grid):
    sweep, _, ds = grid
    values = {"device.programming.coeffs": [0.05], "adc.bits": 8}
    cfg = point_config(sweep, values)
    from mappings.h5format import load_network

    net = load_network(work / "net.h5")
    test_x, test_y = load_idx("fashion-mnist", work / "data", "test")
    train_x, _ = load_idx("fashion-mnist", work / "data", "train")
    res = simulate(net, program_chip(net, cfg, 1), test_x, labels=test_y, seed=1, config=cfg,
                   calibration=train_x[: cfg.simulation.calibration_samples])
    got = ds["accuracy"].sel({"device.programming.coeffs": 0.05, "adc.bits": 8, "seed": 1})
    assert float(got) == res.accuracy
    snr = ds["snr_db"].sel({"device.programming.coeffs": 0.05, "adc.bits": 8, "seed": 1})
    assert np.allclose(snr.values, res.snr_db)


def test_instances_are_reused_across_read_time_settings(work, tmp_path):
    spec = tmp_path / "reuse.toml"
    spec.write_text(spec_text(
        work, '"adc.bits" = [4, 8]\n"device.read.coeffs" = [0.0, 2.0]\n'
              '"retention.time_s" = [0.0, 1000.0]\n', "seeds = 1\n"))
    sweep = load_sweep(spec)
    tasks = sweep.tasks()
    assert len(group_tasks(tasks)) == 1  # all read-time: one programmed instance
    ev = PointEvaluator()
    shared = [ev.evaluate(t) for t in tasks]
    assert ev.programmed_count == 1
    fresh = [PointEvaluator().evaluate(t) for t in tasks]  # programs every point anew
    for a, b in zip(shared, fresh):
        assert a["accuracy"] == b["accuracy"] and a["snr_db"] == b["snr_db"]
    # and an aged point equals a hand-aged instance
    t = next(t for t in tasks if t.values["retention.time_s"] > 0)
    cfg = point_config(sweep, t.values)
    from mappings.h5format import load_network

    net = load_network(work / "net.h5")
    inst = age(program_chip(net, cfg, 0), 1000.0, 0)
    test_x, test_y = load_idx("fashion-mnist", work / "data", "test")
    train_x, _ = load_idx("fashion-mnist", work / "data", "train")
    res = simulate(net, inst, test_x, labels=test_y, seed=0, config=cfg,
                   calibration=train_x[:32])
    assert shared[tasks.index(t)]["accuracy"] == res.accuracy
    # different read noise really changes the result (the variance cache is not stale)
    by = {(x.values["device.read.coeffs"][0], x.values["adc.bits"],
           x.values["retention.time_s"]): r["snr_db"] for x, r in zip(tasks, shared)}
    assert by[(0.0, 8, 0.0)] != by[(2.0, 8, 0.0)]


def test_group_splitting_keeps_every_task():
    @dataclasses.dataclass
    class T:
        network: str
        config: dict
        seed: int

    cfg = {"chip": {}, "device": {"read": 1}, "mapping": {"encoding": "single", "scaling": "core"}}
    tasks = [T("n", cfg, s % 2) for s in range(10)]
    assert [len(g) for g in group_tasks(tasks)] == [5, 5]
    groups = group_tasks(tasks, 4)
    assert len(groups) == 4 and sorted(len(g) for g in groups) == [2, 2, 3, 3]
    assert sorted(id(t) for g in groups for t in g) == sorted(id(t) for t in tasks)
    assert len(group_tasks(tasks[:2], 8)) == 2


def test_rerun_skips_finished_points_and_recomputes_missing(work, grid):
    sweep, _, ds = grid
    out = work / "out"
    stats = {k: os.stat(point_path(out, k)).st_mtime_ns for k in finished_keys(out)}
    run = run_sweep(sweep, out, workers=0, progress=False)
    assert run.computed == 0 and run.skipped == 12
    assert {k: os.stat(point_path(out, k)).st_mtime_ns for k in finished_keys(out)} == stats
    gone = sorted(stats)[:3]
    for k in gone:
        point_path(out, k).unlink()
    run = run_sweep(sweep, out, workers=0, progress=False)
    assert run.computed == 3 and sorted(run.computed_keys) == gone
    again = load_dataset(run.results)
    assert np.array_equal(again["accuracy"].values, ds["accuracy"].values)


def test_local_dask_cluster_gives_the_same_results(work, grid):
    sweep, _, ds = grid
    run = run_sweep(sweep, work / "out_dask", workers=2, progress=False, start_timeout=120)
    assert run.computed == 12 and run.workers == 2 and run.tasks >= 4
    got = load_dataset(run.results)
    for name in ("accuracy", "snr_db", "snr_db_end_to_end", "inter_core_bits"):
        assert np.array_equal(got[name].values, ds[name].values, equal_nan=True), name
    a = json.loads(point_path(work / "out", run.computed_keys[0]).read_text())
    b = json.loads(point_path(work / "out_dask", run.computed_keys[0]).read_text())
    assert a["accuracy"] == b["accuracy"] and a["snr_db"] == b["snr_db"]


def test_lhs_sweep_and_report(work, tmp_path):
    spec = tmp_path / "lhs.toml"
    spec.write_text(spec_text(
        work, '"device.programming.coeffs" = {low = 0.0, high = 0.1}\n"adc.bits" = [4, 8]\n',
        'sampling = "lhs"\npoints = 4\nseeds = 2\n', FIXED))
    sweep = load_sweep(spec)
    run = run_sweep(sweep, tmp_path / "out", workers=0, progress=False)
    ds = load_dataset(run.results)
    assert ds["accuracy"].dims == ("point", "seed") and ds.sizes["point"] == 4
    assert ds["adc.bits"].dims == ("point",)
    paths = write_report(ds, tmp_path / "report")
    assert [p.name for p in paths["figures"]] == [
        "accuracy_vs_device_programming_coeffs.png", "accuracy_vs_adc_bits.png"]
    assert paths["heatmaps"] == []
    assert len(summary_rows(ds)) == 4


def test_report_tables_and_figures(grid, tmp_path):
    _, _, ds = grid
    paths = write_report(ds, tmp_path)
    rows = summary_rows(ds)
    assert len(rows) == 6 and all(r["n_seeds"] == 2 for r in rows)
    r = rows[0]
    acc = ds["accuracy"].isel({"device.programming.coeffs": 0, "adc.bits": 0}).values
    assert r["accuracy_mean"] == pytest.approx(acc.mean())
    assert r["accuracy_std"] == pytest.approx(acc.std(ddof=1))
    md = markdown_summary(ds)
    assert "| device.programming.coeffs | adc.bits | accuracy (%)" in md
    assert f"{100 * acc.mean():.2f} ± {100 * acc.std(ddof=1):.2f}" in md
    csv_lines = paths["summary_csv"].read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].startswith("device.programming.coeffs,adc.bits")
    names = sorted(p.name for p in paths["figures"] + paths["heatmaps"])
    assert names == ["accuracy_vs_adc_bits.png", "accuracy_vs_device_programming_coeffs.png",
                     "heatmap_device_programming_coeffs__adc_bits.png"]
    for p in paths["figures"] + paths["heatmaps"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_network_as_a_dimension(work, tmp_path):
    from mappings.builders import build_scrramble_network
    from mappings.h5format import save_network

    other = tmp_path / "other.h5"
    save_network(build_scrramble_network(hidden_cores=(4,), core_size=64, slot_size=16, p=0.3,
                                         rng=np.random.default_rng(7)), other)
    spec = tmp_path / "nets.toml"
    text = spec_text(work, f'network = ["{work / "net.h5"}", "{other}"]\n"adc.bits" = [4, 8]\n')
    spec.write_text(text.replace(f'network = "{work / "net.h5"}"\n', "", 1))
    sweep = load_sweep(spec)
    assert sweep.network is None and [p.name for p in sweep.parameters] == ["network", "adc.bits"]
    run = run_sweep(sweep, tmp_path / "out", workers=0, progress=False)
    ds = load_dataset(run.results)
    assert list(ds["network"].values) == [str(work / "net.h5"), str(other)]
    assert ds["accuracy"].sel(network=str(other)).values.tolist() != (
        ds["accuracy"].sel(network=str(work / "net.h5")).values.tolist())
    paths = write_report(ds, tmp_path / "report")
    assert [p.name for p in paths["heatmaps"]] == ["heatmap_network__adc_bits.png"]


def test_unreachable_scheduler_is_a_clear_error(work, grid, tmp_path):
    from sim.sweep import SweepRunError

    sweep, _, _ = grid
    with pytest.raises(SweepRunError, match=r"tcp://127.0.0.1:9: cannot connect"):
        run_sweep(sweep, tmp_path / "o", scheduler="tcp://127.0.0.1:9", progress=False,
                  start_timeout=2)


def test_existing_dask_cluster_gives_the_same_results(work, grid, tmp_path):
    """``scheduler``: a Dask cluster started elsewhere (here its own worker process on
    loopback) runs the points; results equal the in-process run's."""
    from distributed import LocalCluster

    sweep, _, ds = grid
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        run = run_sweep(sweep, tmp_path / "out", scheduler=cluster.scheduler_address,
                        progress=False, start_timeout=120)
    assert run.computed == 12 and run.scheduler == cluster.scheduler_address
    assert run.workers == 0 and run.tasks >= 2  # no local workers; 2 task groups per worker
    got = load_dataset(run.results)
    for name in ("accuracy", "snr_db", "snr_db_end_to_end", "inter_core_bits"):
        assert np.array_equal(got[name].values, ds[name].values, equal_nan=True), name
