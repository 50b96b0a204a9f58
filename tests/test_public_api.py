"""Every package has a public surface (``__all__``) that resolves, and the names other packages
and the command line import from its modules are on it."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

# sim.commands gets its __all__ with the CLI work (sim/commands/__init__.py).
PACKAGES = ["mappings", "devices", "sim", "sim.chip", "sim.datasets", "sim.training",
            "sim.costs", "sim.chipnet", "sim.sweep"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_resolves(name):
    package = importlib.import_module(name)
    public = package.__all__
    assert len(public) == len(set(public)), "duplicates in __all__"
    for attr in public:
        assert hasattr(package, attr) or importlib.import_module(f"{name}.{attr}"), attr
    if name == "sim":  # a package of sub-packages: all of them
        subs = {m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg}
        assert subs <= set(public), subs - set(public)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mappings", ["H5Reader", "atomic_write", "open_hdf5", "check_seed", "check_rng",
                      "positive_int", "probability", "SEED_LIMIT", "check_fits"]),
        ("sim.training", ["save_checkpoint", "load_checkpoint", "LOSSES", "OPTIMIZERS",
                          "SCHEDULES", "evaluate_accuracy", "parallel_predict", "train"]),
    ],
)
def test_surface_has_what_other_packages_use(name, expected):
    assert set(expected) <= set(importlib.import_module(name).__all__)


def test_shared_helpers_are_the_same_objects():
    """The package surface re-exports the one implementation, not copies."""
    import mappings
    from mappings import checks, safe_files

    assert mappings.check_seed is checks.check_seed
    assert mappings.H5Reader is safe_files.H5Reader
