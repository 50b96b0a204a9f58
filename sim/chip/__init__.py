"""The virtual chip: chip file, programming a network onto devices, noisy simulation, timing.

Data flow: a chip file (:mod:`sim.chip.config`) and a network are mapped
(:mod:`sim.chip.mapping_report`, tiling and placement in :mod:`mappings`), programmed into a
chip instance (:mod:`sim.chip.programming`), then read with converters and noise
(:mod:`sim.chip.functional`, Numba kernels in :mod:`sim.chip.kernels`).
"""

from sim.chip.config import (
    ChipConfig,
    ChipConfigError,
    ChipGeometry,
    MappingConfig,
    RetentionConfig,
    SimulationConfig,
    check_fits,
    chip_config_from_dict,
    default_chip_config,
    load_chip_config,
    plan_for_chip,
    save_chip_config,
)
from sim.chip.functional import (
    Calibration,
    ChipRunner,
    SimulationError,
    SimulationResult,
    calibrate,
    simulate,
)
from sim.chip.mapping_report import MappingReport, map_network
from sim.chip.programming import (
    ChipInstance,
    ChipInstanceError,
    ProgrammingError,
    age,
    load_instance,
    program_chip,
    save_instance,
)
from sim.chip.timing import MvmTiming, mvm_timing

__all__ = [
    "Calibration",
    "ChipConfig",
    "ChipConfigError",
    "ChipGeometry",
    "ChipInstance",
    "ChipInstanceError",
    "ChipRunner",
    "MappingConfig",
    "MappingReport",
    "MvmTiming",
    "ProgrammingError",
    "RetentionConfig",
    "SimulationConfig",
    "SimulationError",
    "SimulationResult",
    "age",
    "calibrate",
    "check_fits",
    "chip_config_from_dict",
    "default_chip_config",
    "load_chip_config",
    "load_instance",
    "map_network",
    "mvm_timing",
    "plan_for_chip",
    "program_chip",
    "save_chip_config",
    "save_instance",
    "simulate",
]
