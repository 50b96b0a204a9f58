"""``scrramble-sim map``: JSON and text reports, placement options, user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim.commands.cli
from mappings.builders import build_scrramble_network
from mappings.h5format import save_network
from mappings.network import InputSpec
from mappings.routing import routing_stats

CHIP = """
[chip]
grid_rows = 2
grid_cols = 4
[mapping]
encoding = "{encoding}"
activation_bits = 8
psum_bits = 16
"""


@pytest.fixture
def cli():
    """The command-line entry point, run in-process."""
    return sim.commands.cli.main


def _net(readout="capsule"):
    # 1 input core (16 x 16 image) -> 6 hidden cores -> 2 output cores of 256, slots of 64
    return build_scrramble_network(
        hidden_cores=(6,), n_classes=2, readout=readout,
        input_spec=InputSpec((16, 16), (16, 16)), rng=np.random.default_rng(11),
    )


@pytest.fixture
def files(tmp_path):
    net = _net()
    net_path = tmp_path / "net.h5"
    save_network(net, net_path)
    chip = tmp_path / "chip.toml"
    chip.write_text(CHIP.format(encoding="single"))
    return net, net_path, chip


def run_json(cli, capsys, *argv):
    assert cli(["map", *map(str, argv), "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["command"] == "map" and d["seconds"] > 0
    d.pop("seconds")  # wall time: the only key allowed to differ between identical runs
    return d


def test_json_report(cli, capsys, files):
    net, net_path, chip = files
    d = run_json(cli, capsys, net_path, "--chip", chip, "--seed", 3)
    assert d["network"] == str(net_path) and d["chip"] == str(chip)
    assert d["grid"] == [2, 4] and d["encoding"] == "single"
    assert d["cores_used"] == 8 and d["cores_available"] == 8
    assert [(la["kind"], la["n_blocks"], la["n_tiles"]) for la in d["layers"]] == [
        ("scrramble", 6, 6), ("scrramble", 2, 2)]
    n_w = 8 * 256 * 256
    # offset: the reference column leaves 255 outputs per tile -> 2 column tiles per core,
    # each with one reference device per input row
    assert d["devices"] == {"single": n_w, "differential": 2 * n_w, "offset": n_w + 8 * 2 * 256}
    assert d["single_vs_differential"] == 0.5
    links = [routing_stats(layer.routing).n_links for layer in net.layers]
    t = d["traffic"]
    assert t["inter_core_bits"] == links[1] * 64 * 8 and t["psum_bits"] == 0
    assert t["io_bits_in"] == links[0] * 64 * 8 and t["io_bits_out"] == 512 * 32
    p = d["placement"]
    assert set(p["bit_hops"]) == {"sequential", "random", "annealing"}
    assert p["method"] == "sequential" and p["seed"] == 3
    assert p["chosen_bit_hops"] == p["bit_hops"]["sequential"] > 0
    assert p["bit_hops"]["annealing"] <= p["bit_hops"]["sequential"]
    assert len(p["positions"]) == 8 and len({tuple(x) for x in p["positions"]}) == 8
    # dense baseline 256 -> 1536 -> 512 on 256 x 256 tiles: layer 1 has 6 row x 2 column
    # tiles: 1536 inputs to 2 column tiles (8 bits) + 5 x 2 x 256 partial sums (16 bits)
    b = d["baseline"]
    dense = 1536 * 2 * 8 + 5 * 2 * 256 * 16
    assert b["dense_inter_core_bits"] == dense and b["dense_cores"] == 6 + 12
    assert b["reduction_percent"] == pytest.approx(100 * (1 - links[1] * 512 / dense))


def test_placement_option_and_seed(cli, capsys, files):
    _, net_path, chip = files
    a = run_json(cli, capsys, net_path, "--chip", chip, "--placement", "annealing", "--seed", 5)
    b = run_json(cli, capsys, net_path, "--chip", chip, "--placement", "annealing", "--seed", 5)
    assert a == b  # same seed, same report
    assert a["placement"]["method"] == "annealing"
    assert a["placement"]["chosen_bit_hops"] == a["placement"]["bit_hops"]["annealing"]
    s = run_json(cli, capsys, net_path, "--chip", chip, "--placement", "spectral")
    assert set(s["placement"]["bit_hops"]) == {"sequential", "random", "annealing", "spectral"}
    assert s["placement"]["method"] == "spectral"


def test_placement_from_chip_file(cli, capsys, files, tmp_path):
    _, net_path, _ = files
    chip = tmp_path / "random.toml"
    chip.write_text(CHIP.format(encoding="single") + 'placement = "random"\n')
    d = run_json(cli, capsys, net_path, "--chip", chip, "--seed", 2)
    assert d["placement"]["method"] == "random"
    assert d["placement"]["chosen_bit_hops"] == d["placement"]["bit_hops"]["random"]
    over = run_json(cli, capsys, net_path, "--chip", chip, "--placement", "sequential")
    assert over["placement"]["method"] == "sequential"  # the flag overrides the file


def test_text_report(cli, capsys, files):
    _, net_path, chip = files
    assert cli(["map", str(net_path), "--chip", str(chip)]) == 0
    out = capsys.readouterr().out
    assert "physical cores: 8 used of 8" in out
    assert "single 524,288, differential 1,048,576" in out
    assert "chosen placement: sequential" in out
    assert "dense baseline" in out and "% less" in out
    assert out.count("scrramble") == 2


def test_default_chip(cli, capsys, files):
    """Counts on the packaged default chip (8 x 8 cores of 256 x 256, 'single', 8-bit
    activations), all computable from the network's shapes."""
    net, net_path, _ = files
    d = run_json(cli, capsys, net_path)
    assert d["chip"].endswith("default_chip.toml") and d["grid"] == [8, 8]
    assert d["cores_available"] == 64 and d["encoding"] == "single"
    # one 256 x 256 crossbar per destination core: 6 hidden + 2 output cores
    assert d["cores_used"] == 6 + 2
    n_w = (6 + 2) * 256 * 256
    assert d["devices"] == {"single": n_w, "differential": 2 * n_w, "offset": n_w + 8 * 2 * 256}
    assert [la["devices"]["single"] for la in d["layers"]] == [6 * 256 * 256, 2 * 256 * 256]
    links = [routing_stats(layer.routing).n_links for layer in net.layers]
    assert d["traffic"]["inter_core_bits"] == links[1] * 64 * 8  # slots of 64, 8-bit
    assert d["placement"]["method"] == "sequential" and d["seed"] == 0
    # the text report prints the same numbers
    assert cli(["map", str(net_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "physical cores: 8 used of 64" in out
    assert f"single {n_w:,}, differential {2 * n_w:,}" in out


def test_differential_chip_doubles_cores(cli, capsys, files, tmp_path):
    _, net_path, _ = files
    chip = tmp_path / "diff.toml"
    chip.write_text(CHIP.format(encoding="differential").replace("grid_cols = 4", "grid_cols = 8"))
    d = run_json(cli, capsys, net_path, "--chip", chip)
    assert d["cores_used"] == 16 and d["traffic"]["psum_bits"] == 8 * 256 * 16


def test_dense_readout_needs_signed_encoding(cli, capsys, tmp_path):
    net_path = tmp_path / "logits.h5"
    save_network(_net(readout="logits"), net_path)
    chip = tmp_path / "chip.toml"
    chip.write_text(CHIP.format(encoding="single").replace("grid_cols = 4", "grid_cols = 8"))
    assert cli(["map", str(net_path), "--chip", str(chip)]) == 2
    err = capsys.readouterr().err
    assert "dense layer" in err and "differential" in err
    # offset: 8 ScRRAMBLe cores x 2 column tiles + the dense 512 -> 2 layer in 2 row tiles
    chip.write_text(CHIP.format(encoding="offset").replace("grid_rows = 2", "grid_rows = 3")
                    .replace("grid_cols = 4", "grid_cols = 6"))
    d = run_json(cli, capsys, net_path, "--chip", chip)
    # row tile 1 sends its 2 outputs' and its reference column's partial sums to row tile 0
    assert d["cores_used"] == 18 and d["traffic"]["psum_bits"] == (2 + 1) * 16
    assert d["devices"]["single"] is None and d["single_vs_differential"] is None
    assert d["layers"][2]["kind"] == "dense" and d["layers"][2]["devices"]["single"] is None
    assert d["layers"][0]["devices"]["single"] == 6 * 256 * 256


@pytest.mark.parametrize("chip_text,needles", [
    ("[chip]\ngrid_rows = 2\ncore_colls = 256\n", ["chip.toml", "'core_colls'", "[chip]"]),
    ("[chip]\ngrid_rows = 2\ngrid_cols = 2\n",
     ["network needs 8 physical cores for encoding single, chip has 2 x 2 = 4"]),
    ("[chip]\nslot_size = 32\n", ["64-wide slots", "slot_size = 32"]),
    ("[chip\n", ["chip.toml", "invalid TOML"]),
])
def test_chip_errors(cli, capsys, files, tmp_path, chip_text, needles):
    _, net_path, _ = files
    chip = tmp_path / "chip.toml"
    chip.write_text(chip_text)
    assert cli(["map", str(net_path), "--chip", str(chip), "--no-progress"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("scrramble-sim map: error: ")
    for needle in needles:
        assert needle in cap.err


def test_network_errors(cli, capsys, tmp_path, files):
    _, _, chip = files
    assert cli(["map", str(tmp_path / "absent.h5"), "--chip", str(chip)]) == 2
    assert "absent.h5" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert cli(["map", str(bad), "--chip", str(chip)]) == 2
    assert "bad.h5" in capsys.readouterr().err
    assert cli(["map", str(bad), "--chip", str(tmp_path / "nochip.toml")]) == 2
    assert "nochip.toml" in capsys.readouterr().err


def test_negative_seed_is_a_clear_error(cli, capsys, files):
    net, net_path, chip = files
    with pytest.raises(SystemExit) as exit_:
        cli(["map", str(net_path), "--chip", str(chip), "--seed", "-1"])
    assert exit_.value.code == 2
    assert "scrramble-sim map: error: argument --seed: expected an integer 0 <= seed < 2**63" in (
        capsys.readouterr().err)
    from mappings.placement import PlacementError
    from sim.chip.config import load_chip_config
    from sim.chip.mapping_report import map_network

    with pytest.raises(PlacementError, match="seed must be an integer >= 0"):
        map_network(net, load_chip_config(chip), seed=-3)
