"""``scrramble-sim noc``: JSON keys, load sweeps, errors naming the flag."""

from __future__ import annotations

import json

import pytest

import sim.commands.cli


def _json(capsys, argv):
    assert sim.commands.cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_single_run_json(capsys, tmp_path):
    d = _json(capsys, ["noc", "--mesh", "4x6", "--vcs", "2", "--buffer", "4", "--traffic",
                       "uniform", "--rate", "0.1", "--packet", "4", "--cycles", "2000",
                       "--seed", "3", "--json", "--out", str(tmp_path / "r.h5")])
    for key in ("packet_latency", "network_latency", "accepted_rate", "avg_hops", "cycles",
                "sim_seconds", "flit_hops", "saturated"):
        assert key in d
    assert d["cycles"] == 2000 and d["mesh"] == "4x6"
    assert 0.07 < d["accepted_rate"] < 0.13
    assert (tmp_path / "r.h5").is_file()


def test_rates_sweep_writes_table_and_figure(capsys, tmp_path):
    fig = tmp_path / "curve.png"
    assert sim.commands.cli.main(["noc", "--mesh", "4x4", "--rates", "0.1:0.3:0.1", "--warmup", "300",
                         "--measure", "1000", "--figure", str(fig)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| 0.") == 3 and fig.stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--vcs", "0"], "--vcs"),
        (["--buffer", "0"], "--buffer"),
        (["--rate", "1.5"], "--rate"),
        (["--mesh", "0x8"], "--mesh"),
        (["--traffic", "random"], "--traffic"),
        (["--routing", "zigzag"], "--routing"),
        (["--rates", "0.5:0.1:0.1"], "--rates"),
        (["net.h5"], "net.h5: no such"),  # network-driven mode: tests/test_cli_noc_network.py
    ],
)
def test_bad_flags(capsys, argv, needle):
    assert sim.commands.cli.main(["noc", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_outputs_are_never_replaced_without_overwrite(tmp_path, capsys):
    import sim.commands.cli

    out = tmp_path / "sub" / "res.h5"
    argv = ["noc", "--mesh", "4x4", "--cycles", "300", "--rate", "0.05", "--out", str(out)]
    assert sim.commands.cli.main(argv) == 0
    first = out.stat().st_mtime_ns
    capsys.readouterr()
    assert sim.commands.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err
    assert out.stat().st_mtime_ns == first
    assert sim.commands.cli.main(argv + ["--overwrite"]) == 0
    fig = tmp_path / "curve.png"
    fig.write_bytes(b"x")
    sweep = ["noc", "--mesh", "4x4", "--cycles", "200", "--rates", "0.05:0.1:0.05",
             "--figure", str(fig)]
    assert sim.commands.cli.main(sweep) == 2
    assert "--figure" in capsys.readouterr().err
    assert fig.read_bytes() == b"x"
