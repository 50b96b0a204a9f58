"""Non-ideality sweeps: TOML specifications, execution on Dask, labelled results, reports.

:mod:`sim.sweep.spec` validates a specification into points; :mod:`sim.sweep.evaluate_point`
is the one adapter to the chip simulation; :mod:`sim.sweep.runner` runs the points in this
process or on a Dask cluster; :mod:`sim.sweep.store` keeps one file per finished point and
builds the xarray Dataset; :mod:`sim.sweep.report` draws the figures and tables.
"""

from sim.sweep.evaluate_point import PointError, PointEvaluator, warm_numba
from sim.sweep.runner import SweepRun, SweepRunError, group_tasks, run_sweep
from sim.sweep.spec import (
    Parameter,
    PointTask,
    Sweep,
    SweepSpecError,
    load_sweep,
    sweep_from_dict,
)
from sim.sweep.store import SweepStoreError, build_dataset, load_dataset

__all__ = [
    "Parameter",
    "PointError",
    "PointEvaluator",
    "PointTask",
    "Sweep",
    "SweepRun",
    "SweepRunError",
    "SweepSpecError",
    "SweepStoreError",
    "build_dataset",
    "group_tasks",
    "load_dataset",
    "load_sweep",
    "run_sweep",
    "sweep_from_dict",
    "warm_numba",
]
