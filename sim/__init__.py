"""The virtual chip and everything around it, one sub-package per job.

- :mod:`sim.datasets` — IDX datasets (Fashion-MNIST, MNIST).
- :mod:`sim.training` — numpy trainer for ScRRAMBLe and dense networks.
- :mod:`sim.chip` — chip file, programming, noisy functional simulation, timing.
- :mod:`sim.noc` — the cycle-level packet network-on-chip.
- :mod:`sim.costs` — energy by category and area.
- :mod:`sim.chipnet` — the mapped network's traffic on the packet network: traffic report,
  inference trace, co-simulation.
- :mod:`sim.commands` — the ``scrramble-sim`` command line.
- :mod:`sim.sweep` — non-ideality sweeps on Dask, labelled results, reports.
"""

__all__ = ["chip", "chipnet", "commands", "costs", "datasets", "noc", "sweep", "training"]
