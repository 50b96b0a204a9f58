"""``scrramble-sim noc NET.h5``: the mapped network's traffic, JSON keys, figures, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim.commands.cli
from mappings.builders import build_dense_network, build_scrramble_network
from mappings.h5format import save_network
from mappings.network import InputSpec

CHIP = """
[chip]
grid_rows = 3
grid_cols = 4
core_rows = 64
core_cols = 64
slot_size = 16
[mapping]
encoding = "{encoding}"
"""

KEYS = ("bits", "packets", "flits", "bit_hops", "latency_cycles",
        "throughput_inferences_per_s", "energy_pj_per_inference", "dense_bits",
        "traffic_reduction")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("noc_net")
    spec = InputSpec((8, 8), (8, 8))  # 64 features = 1 input core of 64
    net = build_scrramble_network(hidden_cores=(4,), n_classes=3, core_size=64, slot_size=16,
                                  p=0.3, input_spec=spec, rng=np.random.default_rng(1))
    save_network(net, d / "net.h5")
    dense = build_dense_network(hidden=(40,), n_classes=3, input_spec=spec,
                                rng=np.random.default_rng(2))
    save_network(dense, d / "dense.h5")
    for enc in ("single", "differential"):
        (d / f"{enc}.toml").write_text(CHIP.format(encoding=enc))
    return d, net


def _run(capsys, argv):
    rc = sim.commands.cli.main(argv)
    out = capsys.readouterr()
    return rc, out


def test_json_holds_the_issue_keys_and_counts(capsys, files):
    d, net = files
    rc, out = _run(capsys, ["noc", str(d / "net.h5"), "--chip", str(d / "single.toml"),
                            "--inferences", "4", "--samples", "0", "--dense-inferences", "2",
                            "--figures", str(d / "figs"), "--json"])
    assert rc == 0, out.err
    data = json.loads(out.out)
    for key in KEYS:
        assert key in data, key
    from sim.chip.config import load_chip_config, plan_for_chip

    plan = plan_for_chip(net, load_chip_config(d / "single.toml"))
    inter = plan.flows.inter_core
    assert data["packets"] == inter.n_packets()
    assert data["bits"] == inter.bits()
    assert data["cosim"]["inferences"] == 4
    assert data["latency_cycles"]["p50"] <= data["latency_cycles"]["p99"]
    assert data["traffic_reduction"] == pytest.approx(100 * (1 - data["bits"] / data["dense_bits"]))
    assert data["dense"]["inferences"] == 2
    e = data["energy"]["pj_per_inference"]
    assert sum(e.values()) == pytest.approx(data["energy_pj_per_inference"])
    assert data["energy"]["array_source"] == "nominal"
    for name in ("links", "timeline", "energy", "traffic"):
        assert (d / "figs" / f"noc_{name}.png").is_file()
    rc, out = _run(capsys, ["noc", str(d / "net.h5"), "--chip", str(d / "single.toml"),
                            "--inferences", "4", "--samples", "0", "--dense-inferences", "0"])
    assert rc == 0 and "latency per inference" in out.out and "reduction" in out.out


def test_dense_network_runs_with_partial_sums(capsys, files):
    d, _ = files
    rc, out = _run(capsys, ["noc", str(d / "dense.h5"), "--chip",
                            str(d / "differential.toml"), "--inferences", "3", "--samples", "0",
                            "--dense-inferences", "0", "--json"])
    assert rc == 0, out.err
    data = json.loads(out.out)
    assert data["traffic"]["network"]["psum_bits"] > 0
    assert data["cosim"]["inferences"] == 3


@pytest.mark.parametrize(("extra", "match"), [
    (["--inferences", "0"], "--inferences must be an integer >= 1, got 0"),
    (["--interval", "-1"], "--interval must be an integer >= 0"),
    (["--mesh", "2x2"], r"has 4 routers|outside the 2x2 mesh"),
    (["--rates", "0.1:0.2:0.1"], "--rates sweeps synthetic traffic"),
    (["--vcs", "0"], "--vcs"),
])
def test_errors_name_the_flag(capsys, files, extra, match):
    d, _ = files
    rc, out = _run(capsys, ["noc", str(d / "net.h5"), "--chip", str(d / "single.toml"),
                            "--samples", "0", "--dense-inferences", "0", *extra])
    assert rc == 2
    assert "scrramble-sim noc: error: " in out.err
    import re

    assert re.search(match, out.err), out.err


def test_missing_network_file(capsys, files):
    d, _ = files
    rc, out = _run(capsys, ["noc", str(d / "nope.h5"), "--chip", str(d / "single.toml")])
    assert rc == 2 and "nope.h5" in out.err


def test_map_prints_the_chip_estimate(capsys, files):
    d, net = files
    rc, out = _run(capsys, ["map", str(d / "net.h5"), "--chip", str(d / "single.toml"),
                            "--json"])
    assert rc == 0, out.err
    est = json.loads(out.out)["estimate"]
    from sim.chip.config import load_chip_config, plan_for_chip

    plan = plan_for_chip(net, load_chip_config(d / "single.toml"))
    assert est["traffic"]["network"]["packets"] == plan.flows.inter_core.n_packets()
    assert est["latency_cycles"] > 2 * 83  # two layers' MVMs plus the network
    assert est["interval_cycles"] >= 83
    e = est["energy"]
    assert sum(e["pj_per_inference"].values()) == pytest.approx(e["total_pj_per_inference"])
    assert est["area"]["chip_mm2"] > 0


def test_multicast_run(capsys, files):
    d, net = files
    rc, out = _run(capsys, ["noc", str(d / "net.h5"), "--chip", str(d / "single.toml"),
                            "--inferences", "3", "--samples", "0", "--dense-inferences", "1",
                            "--multicast", "--json"])
    assert rc == 0, out.err
    data = json.loads(out.out)
    from sim.chip.config import load_chip_config, plan_for_chip

    plan = plan_for_chip(net, load_chip_config(d / "single.toml"))
    inter = plan.flows.inter_core
    assert data["cosim"]["multicast"] is True
    assert data["packets"] == inter.n_packets(multicast=True) == inter.n_flows
    assert data["bits"] == inter.bits(multicast=True)


def test_chip_file_noc_section_drives_the_network_and_flags_override_it(capsys, files):
    d, _ = files
    (d / "narrow.toml").write_text(
        CHIP.format(encoding="single") + "[noc]\nvcs = 2\nlink_width_bits = 32\n"
    )
    base = ["noc", str(d / "net.h5"), "--inferences", "2", "--samples", "0",
            "--dense-inferences", "0", "--json"]
    rc, out = _run(capsys, base + ["--chip", str(d / "single.toml")])
    assert rc == 0, out.err
    wide = json.loads(out.out)
    rc, out = _run(capsys, base + ["--chip", str(d / "narrow.toml")])
    assert rc == 0, out.err
    narrow = json.loads(out.out)
    assert narrow["noc_config"]["vcs"] == 2 and narrow["noc_config"]["link_width_bits"] == 32
    assert wide["noc_config"]["vcs"] == 8 and wide["noc_config"]["link_width_bits"] == 128
    assert narrow["bits"] == wide["bits"]
    assert narrow["flits"] > wide["flits"]  # 32-bit flits: more of them for the same bits
    rc, out = _run(capsys, base + ["--chip", str(d / "narrow.toml"), "--vcs", "4"])
    assert rc == 0, out.err
    over = json.loads(out.out)
    assert over["noc_config"]["vcs"] == 4 and over["noc_config"]["link_width_bits"] == 32
