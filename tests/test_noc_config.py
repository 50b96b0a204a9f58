"""NocConfig, traffic and trace validation: bad settings name the key and the range."""

from __future__ import annotations

import numpy as np
import pytest

from sim.noc import (
    NocConfig,
    NocConfigError,
    SyntheticTraffic,
    Trace,
    message_trace,
    min_hops,
    noc_config_from_dict,
)
from sim.noc.traffic import destination_table


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"vcs": 0}, "vcs"),
        ({"buffer_depth": 0}, "buffer_depth"),
        ({"rows": 0}, "rows"),
        ({"cols": 0}, "cols"),
        ({"routing": "zigzag"}, "routing"),
        ({"vc_allocator": "magic"}, "vc_allocator"),
        ({"topology": "torus", "vcs": 1}, "dateline"),
        ({"credit_delay": 0}, "credit_delay"),
        ({"vcs": 2.0}, "vcs"),
    ],
)
def test_bad_config_names_key(kwargs, needle):
    with pytest.raises(NocConfigError, match=needle):
        NocConfig(**kwargs)


def test_from_dict_names_section_and_key():
    cfg = noc_config_from_dict({"rows": 4, "cols": 6, "vcs": 2})
    assert (cfg.rows, cfg.cols, cfg.vcs) == (4, 6, 2)
    with pytest.raises(NocConfigError, match=r"\[noc\] vcs: expected an integer in 1\.\.64"):
        noc_config_from_dict({"vcs": 0})
    with pytest.raises(NocConfigError, match=r"\[noc\].*unknown key.*'vc'"):
        noc_config_from_dict({"vc": 2})
    with pytest.raises(NocConfigError, match="true or false"):
        noc_config_from_dict({"wait_for_tail_credit": 1})


def test_packet_flits_from_bits():
    cfg = NocConfig(link_width_bits=64, header_bits=16)
    assert cfg.packet_flits(0) == 1
    assert cfg.packet_flits(48) == 1
    assert cfg.packet_flits(49) == 2
    assert cfg.packet_flits(1000) == 16  # ceil(1016 / 64)
    assert cfg.packet_flits(1009) == 17


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate": 1.5}, "--rate"),
        ({"rate": -0.1}, "--rate"),
        ({"pattern": "random"}, "--traffic"),
        ({"packet_flits": 0}, "--packet"),
        ({"burst": True, "rate": 0.9, "burst_on": 0.1, "burst_off": 0.9, "packet_flits": 1},
         "--rate"),
    ],
)
def test_bad_traffic(kwargs, needle):
    with pytest.raises(NocConfigError, match=needle):
        SyntheticTraffic(**kwargs)


def test_permutation_patterns():
    cfg = NocConfig(rows=4, cols=4)
    tr = destination_table(cfg, "transpose")
    assert tr[1] == 4 and tr[4] == 1 and tr[5] == 5  # (x=1,y=0) <-> (x=0,y=1)
    assert list(destination_table(cfg, "bitcomp")[:2]) == [15, 14]
    assert destination_table(cfg, "bitrev")[1] == 8
    assert destination_table(cfg, "shuffle")[9] == 3  # 1001 -> 0011
    assert destination_table(cfg, "tornado")[0] == 1 + 4  # +1 in x and y (ceil(4/2)-1)
    assert destination_table(cfg, "neighbor")[15] == 0
    assert destination_table(cfg, "uniform") is None
    with pytest.raises(NocConfigError, match="square"):
        destination_table(NocConfig(rows=2, cols=4), "transpose")
    with pytest.raises(NocConfigError, match="power-of-two"):
        destination_table(NocConfig(rows=3, cols=3), "bitrev")


def test_min_hops_mesh_and_torus():
    mesh, torus = NocConfig(rows=4, cols=8), NocConfig(rows=4, cols=8, topology="torus")
    assert min_hops(mesh, 0, 7) == 8
    assert min_hops(torus, 0, 7) == 2
    assert min_hops(mesh, 5, 5) == 1


def test_trace_destination_outside_mesh():
    cfg = NocConfig(rows=2, cols=2)
    with pytest.raises(NocConfigError, match=r"msg_dst\[0\] = 4: router outside the 2x2 mesh"):
        message_trace([0], [4], [0], [8]).validate(cfg)


def test_trace_inputs_must_match_consumers():
    t = Trace(
        msg_src=np.array([0]), msg_dst_ptr=np.array([0, 1]), msg_dst=np.array([1]),
        msg_bits=np.array([8]), msg_producer=np.array([-1]), msg_cycle=np.array([0]),
        msg_dst_task=np.array([0]), msg_tag=np.array([0]), task_core=np.array([1]),
        task_start=np.array([0]), task_duration=np.array([1]), task_inputs=np.array([2]),
    )
    with pytest.raises(NocConfigError, match=r"task_inputs\[0\] = 2"):
        t.validate(NocConfig(rows=2, cols=2))
