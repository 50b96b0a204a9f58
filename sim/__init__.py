"""The virtual chip and everything around it, one sub-package per job.

- :mod:`sim.datasets` — IDX datasets (Fashion-MNIST, MNIST).
- :mod:`sim.training` — numpy trainer for ScRRAMBLe and dense networks.
- :mod:`sim.chip` — chip file, programming, noisy functional simulation, timing.
- :mod:`sim.commands` — the ``scrramble-sim`` command line.
- :mod:`sim.sweep` — non-ideality sweeps on Dask, labelled results, reports.
"""

__all__ = ["chip", "commands", "datasets", "sweep", "training"]
