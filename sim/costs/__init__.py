"""Chip-level energy and area: constants with sources (:mod:`sim.costs.constants`), the
energy model by category (:mod:`sim.costs.energy`) and the area model (:mod:`sim.costs.area`)."""

from sim.costs.area import AreaReport, adcs_per_core, area_report, dac_bits_per_input
from sim.costs.constants import CostConfig, CostConfigError
from sim.costs.energy import CATEGORIES, EnergyError, EnergyReport, energy_report

__all__ = [
    "CATEGORIES",
    "AreaReport",
    "CostConfig",
    "CostConfigError",
    "EnergyError",
    "EnergyReport",
    "adcs_per_core",
    "area_report",
    "dac_bits_per_input",
    "energy_report",
]
