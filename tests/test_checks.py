"""The shared argument checks (mappings/checks.py) and that every package applies them alike."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mappings.builders import BuildError, build_dense_network, build_scrramble_network
from mappings.checks import SEED_LIMIT, check_rng, check_seed, positive_int, probability
from mappings.placement import PlacementError, place
from mappings.routing import RoutingError, draw_routing, validate_geometry
from mappings.tiling import TilingError, tile_dims
from sim.chip.config import chip_config_from_dict
from sim.chip.mapping_report import map_network
from sim.chip.programming import ProgrammingError, age, program_chip
from sim.training import TrainConfig, TrainConfigError, train
from sim.training.parallel import Workers


class Bad(ValueError):
    pass


def small_net():
    return build_scrramble_network(
        hidden_cores=(2,), core_size=64, slot_size=16, p=0.3, rng=np.random.default_rng(0)
    )


def small_config():
    return chip_config_from_dict(
        {
            "chip": {"grid_rows": 4, "grid_cols": 4, "core_rows": 64, "core_cols": 64,
                     "slot_size": 16},
            "device": {"preset": "ideal"},
        },
        source="<test chip>",
    )


# ------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [0, 7, np.int64(5), np.uint32(9), SEED_LIMIT - 1])
def test_seed_accepted_and_normalised(seed):
    out = check_seed(seed, "seed", Bad)
    assert out == int(seed) and type(out) is int


@pytest.mark.parametrize(
    "seed", [-1, SEED_LIMIT, 2**64, True, np.bool_(False), 1.0, np.float64(3), "3", None]
)
def test_seed_refused_with_the_callers_error_naming_the_field(seed):
    with pytest.raises(Bad, match=r"^my seed must be an integer >= 0 and < 2\*\*63, got "):
        check_seed(seed, "my seed", Bad)


def seed_errors(seed):
    """The error each seed-taking entry point raises for ``seed``."""
    net, cfg = small_net(), small_config()
    calls = {
        "programming seed": (ProgrammingError, lambda: program_chip(net, cfg, seed)),
        "retention seed": (ProgrammingError, lambda: age(program_chip(net, cfg, 1), 10.0, seed)),
        "placement seed": (PlacementError, lambda: map_network(net, cfg, seed=seed)),
        "TrainConfig.seed": (TrainConfigError, lambda: TrainConfig(seed=seed)),
    }
    out = {}
    for field, (error, call) in calls.items():
        with pytest.raises(error) as info:
            call()
        out[field] = str(info.value)
    return out


@pytest.mark.parametrize("seed", [-3, 2**63, True, 2.0])
def test_same_bad_seed_same_message_everywhere(seed):
    """One seed rule for programming, retention, placement and training: the same bad seed
    reads the same, with the field named (2**63 and True used to pass some of them)."""
    for field, msg in seed_errors(seed).items():
        assert msg == f"{field} must be an integer >= 0 and < 2**63, got {seed!r}"


def test_largest_seed_is_accepted_everywhere():
    net, cfg = small_net(), small_config()
    seed = np.int64(SEED_LIMIT - 1)
    inst = program_chip(net, cfg, seed)
    assert inst.seed == SEED_LIMIT - 1
    assert age(inst, 10.0, seed).age_seed == SEED_LIMIT - 1
    assert map_network(net, cfg, seed=seed) is not None
    assert TrainConfig(seed=seed).seed == seed


# ------------------------------------------------------------------------ positive ints


@pytest.mark.parametrize("value", [3, np.int16(3), 3.0, np.float32(3.0)])
def test_positive_int_accepts_integral_values(value):
    out = positive_int(value, "n", Bad)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [0, -2, 2.5, float("nan"), float("inf"), True, "3", None])
def test_positive_int_refuses(value):
    with pytest.raises(Bad, match=r"^n must be an integer >= 1, got "):
        positive_int(value, "n", Bad)
    with pytest.raises(Bad, match=r"^n must be an integer >= 2, got 1"):
        positive_int(1, "n", Bad, minimum=2)


def test_integer_sizes_accept_integral_floats():
    """Routing, tiling and builders all accept 64.0 (tiling used to refuse it)."""
    assert validate_geometry(2, 2, 64.0, 16) == 4
    assert tile_dims(64.0, np.int64(64), "single") == (64, 64)
    net = build_scrramble_network(
        hidden_cores=(2,), core_size=64.0, slot_size=16, rng=np.random.default_rng(0)
    )
    assert net.layers[0].core_size == 64


@pytest.mark.parametrize("value", [2.5, True, 0])
def test_integer_sizes_share_one_rule(value):
    """...and refuse 2.5, True and 0 with one message (routing said 'a positive integer')."""
    rng = np.random.default_rng(0)
    calls = [
        (RoutingError, lambda: validate_geometry(2, 2, value, 16)),
        (TilingError, lambda: tile_dims(value, 64, "single")),
        (BuildError, lambda: build_scrramble_network(core_size=value, rng=rng)),
    ]
    for error, call in calls:
        match = rf"^core_(size|rows) must be an integer >= 1, got {value!r}$"
        with pytest.raises(error, match=match):
            call()


# ------------------------------------------------------------------ probabilities, rngs


def test_probability():
    assert probability(np.float32(0.5), "p", Bad) == 0.5
    assert probability(0, "p", Bad) == 0.0
    for p in (-0.1, 1.5, float("nan"), True, "0.2", None):
        with pytest.raises(Bad, match=re.escape("p must lie in [0, 1] (a number), got")):
            probability(p, "p", Bad)
    with pytest.raises(Bad, match=re.escape("p must lie in (0, 1] (a number), got 0.0")):
        probability(0.0, "p", Bad, zero=False)


def test_probability_rule_shared_by_routing_and_builders():
    rng = np.random.default_rng(0)
    with pytest.raises(RoutingError, match=re.escape("p must lie in [0, 1] (a number), got True")):
        draw_routing(2, 2, core_size=64, slot_size=16, p=True, rng=rng)
    with pytest.raises(BuildError, match=re.escape("p must lie in (0, 1] (a number), got 1.5")):
        build_scrramble_network(p=1.5, rng=rng)


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0), np.random.PCG64(0)])
def test_rng_must_be_a_generator_everywhere(rng):
    """Builders, routing and placement refuse a non-Generator with the same message."""
    tail = (
        " must be a seeded numpy.random.Generator (np.random.default_rng(seed)), "
        f"got {type(rng).__name__}"
    )
    with pytest.raises(Bad, match=re.escape("my rng" + tail)):
        check_rng(rng, "my rng", Bad)
    traffic = np.ones((3, 3))
    calls = [
        (BuildError, "rng", lambda: build_dense_network(rng=rng)),
        (BuildError, "rng", lambda: build_scrramble_network(rng=rng)),
        (RoutingError, "rng", lambda: draw_routing(2, 2, core_size=64, slot_size=16, rng=rng)),
        (PlacementError, "rng of placement method 'random'",
         lambda: place(traffic, (2, 2), "random", rng)),
        (PlacementError, "rng of placement method 'annealing'",
         lambda: place(traffic, (2, 2), "annealing", rng)),
    ]
    for error, field, call in calls:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == field + tail
    generator = np.random.default_rng(0)
    assert check_rng(generator, "rng", Bad) is generator


@pytest.mark.parametrize("threads", [0, True, 1.5, "x"])
def test_thread_counts_share_the_rule(threads):
    """Workers used to fail on 'x' with int()'s own message."""
    with pytest.raises(ValueError, match=rf"^threads must be an integer >= 1, got {threads!r}$"):
        Workers(threads)
    net = small_net()
    x, y = np.zeros((4, 28, 28), np.float32), np.zeros(4, np.int64)
    with pytest.raises(TrainConfigError, match=r"^threads must be an integer >= 1, got "):
        train(net, x, y, TrainConfig(epochs=1), progress=False, threads=threads)


def test_grid_sizes_share_the_rule():
    traffic = np.ones((3, 3))
    assert place(traffic, (2.0, np.int64(2)), "sequential", None).grid == (2, 2)
    with pytest.raises(PlacementError, match=r"^grid cols must be an integer >= 1, got 2\.5$"):
        place(traffic, (2, 2.5), "sequential", None)
