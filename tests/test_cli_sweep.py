"""``scrramble-sim sweep`` / ``report`` / ``demo``: outputs, errors, and a SIGKILLed sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sweep_fixtures import make_workdir, spec_text

from mappings.builders import build_scrramble_network
from mappings.h5format import save_network
from sim.commands.cli import main
from sim.sweep.store import finished_keys, load_dataset, point_path

ROOT = Path(__file__).resolve().parents[1]
# the acceptance sweep: programming error 0-10 % x ADC bits 4-8 x 3 seeds
ACCEPTANCE = ('"device.programming.coeffs" = {start = 0.0, stop = 0.1, num = 3}\n'
              '"adc.bits" = {start = 4, stop = 8, step = 2}\n')
FIXED = '"device.programming.kind" = "proportional"\n'


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("cli_sweep"))


def _json(capsys, argv) -> dict:
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) <= _documented_keys(argv[0]), set(d) - _documented_keys(argv[0])
    return d


def _documented_keys(name: str) -> set[str]:
    """JSON keys in the tables of the command's section of docs/cli.md."""
    import re

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    start = text.index(f"## `scrramble-sim {name}")
    end = text.find("\n## ", start + 1)
    rows = [r for r in text[start: end if end > 0 else None].splitlines() if r.startswith("| `")]
    return {k for r in rows for k in re.findall(r"`([a-z_]+)`", r.split("|")[1])}


def test_sweep_then_report(work, tmp_path, capsys):
    spec = tmp_path / "acc.toml"
    spec.write_text(spec_text(work, ACCEPTANCE, "seeds = 3\n", FIXED))
    out = tmp_path / "out"
    d = _json(capsys, ["sweep", str(spec), "--out", str(out), "--workers", "0", "--json",
                       "--no-progress"])
    assert d["command"] == "sweep" and d["spec"] == str(spec)
    assert d["n_points"] == 27 and d["computed"] == 27 and d["skipped"] == 0
    assert d["dims"] == ["device.programming.coeffs", "adc.bits", "seed"]
    assert (out / "spec.toml").read_text() == spec.read_text()
    r = _json(capsys, ["report", str(out), "--json"])
    assert r["command"] == "report" and r["dir"] == str(out)
    assert Path(r["summary_md"]).read_text().count("\n| ") == 10  # header + 9 points
    assert len(r["figures"]) == 2 and len(r["heatmaps"]) == 1
    for p in r["figures"] + r["heatmaps"]:
        assert Path(p).stat().st_size > 10_000
    # the text report is the summary table
    assert main(["report", str(out), "--out", str(tmp_path / "figs")]) == 0
    text = capsys.readouterr().out
    assert "| device.programming.coeffs | adc.bits | accuracy (%)" in text
    assert (tmp_path / "figs" / "summary.csv").is_file()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ('"adc.bitz" = [4]\n', "unknown key 'bitz' in section [adc]"),
        ('"adc.bits" = {start = 4, stop = 8, num = 0}\n', "num = 0; expected an integer >= 1"),
        ('"mapping.encoding" = [3]\n', "expected one of 'single'"),
        ('"adc.bits" = [4, 17]\n', "'adc.bits' = 17"),
    ],
)
def test_bad_spec_fails_before_any_work(work, tmp_path, capsys, params, expected):
    spec = tmp_path / "bad.toml"
    spec.write_text(spec_text(work, params))
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scrramble-sim sweep: error: ") and str(spec) in err and expected in err
    assert not out.exists()  # nothing done


def test_argument_errors(work, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(work, '"adc.bits" = [4]\n'))
    for argv, expected in (
        (["--workers", "-1"], "--workers must be >= 0"),
        (["--workers", str(len(os.sched_getaffinity(0)) + 1)], "exceeds the"),
        (["--task-timeout", "0"], "--task-timeout must be > 0"),
    ):
        assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), *argv]) == 2
        assert expected in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no sweep results" in capsys.readouterr().err


def test_sigkill_midway_then_rerun_completes_without_recomputing(work, tmp_path):
    spec = tmp_path / "long.toml"
    spec.write_text(spec_text(
        work, '"adc.bits" = [3, 4, 5, 6, 7, 8]\n"dac.bits" = [4, 6, 8]\n', "seeds = 2\n"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sim.commands.cli", "sweep", str(spec), "--out", str(out),
           "--workers", "0", "--no-progress", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(finished_keys(out)) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = {k: os.stat(point_path(out, k)) for k in finished_keys(out)}
    assert 3 <= len(before) < 36
    for k in before:  # every point file on disk is complete JSON
        assert json.loads(point_path(out, k).read_text())["key"] == k
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["skipped"] == len(before) and d["computed"] == 36 - len(before)
    for k, st in before.items():
        now = os.stat(point_path(out, k))
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    ds = load_dataset(out)
    assert bool(ds["done"].all()) and not np.isnan(ds["accuracy"].values).any()


def test_demo_reuses_its_network(tmp_path, capsys, work):
    out = tmp_path / "demo"
    out.mkdir()
    net = build_scrramble_network(hidden_cores=(2,), rng=np.random.default_rng(3))
    save_network(net, out / "net.h5")
    d = _json(capsys, ["demo", "--out", str(out), "--data", str(work / "data"), "--samples",
                       "40", "--sweep-samples", "30", "--in-process", "--json",
                       "--no-progress"])
    assert d["command"] == "demo" and d["network_origin"] == "reused"
    assert set(d["chips"]) == {"ideal chip", "RRAM chip (rram_wan2022)"}
    assert d["chips"]["ideal chip"]["n_samples"] == 40
    # the ideal chip reproduces the float network on these images
    assert d["chips"]["ideal chip"]["accuracy"] == pytest.approx(
        float(np.mean(net.predict(_test_images(work)[0][:40]) == _test_images(work)[1][:40])))
    assert d["sweep"]["points"] == 30 and d["sweep"]["computed"] == 30
    assert all(Path(p).is_file() for p in d["figures"]) and len(d["figures"]) == 3
    assert (out / "summary.md").read_text().startswith("## scrramble-sim demo")
    noc = d["packet_network"]
    assert noc["inferences"] == 20 and noc["latency_cycles_mean"] > 0
    assert 0 < noc["traffic_reduction_percent"] < 100 and (out / "noc.txt").is_file()
    again = _json(capsys, ["demo", "--out", str(out), "--data", str(work / "data"),
                           "--samples", "40", "--sweep-samples", "30", "--in-process",
                           "--json", "--no-progress"])
    assert again["sweep"]["computed"] == 0 and again["sweep"]["skipped"] == 30


def _test_images(work):
    from sim.datasets import load_dataset as load_idx

    return load_idx("fashion-mnist", work / "data", "test")
