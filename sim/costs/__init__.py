"""Chip-level energy and area: constants with sources (:mod:`sim.costs.constants`), the
energy model by category (:mod:`sim.costs.energy`) and the area model (:mod:`sim.costs.area`)."""

from sim.costs.constants import CostConfig, CostConfigError

__all__ = ["CostConfig", "CostConfigError"]
