"""Chip area: crossbar cells, converters and routers per core, and programmed devices per
encoding (``single`` one device per weight, ``differential`` two, ``offset`` one plus a
reference column per tile)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.chip.config import ChipConfig

__all__ = ["AreaReport", "adcs_per_core", "area_report", "dac_bits_per_input"]


def dac_bits_per_input(config: ChipConfig) -> int:
    """Resolution of the DAC on each input: 1 for bit-serial inputs, else the DAC's bits
    (0 for an ideal DAC, which costs nothing)."""
    return 1 if config.dac.mode == "bit_serial" else config.dac.bits


def adcs_per_core(config: ChipConfig) -> int:
    """ADCs on one core: ceil(columns / columns_per_adc)."""
    return math.ceil(config.chip.core_cols / config.adc.columns_per_adc)


@dataclass(frozen=True)
class AreaReport:
    """Area of every core (um^2) and of the chip (mm^2); device areas per encoding."""

    n_cores: int
    array_um2: float  # one core's crossbar cells (every cell of core_rows x core_cols)
    adc_um2: float  # one core's ADCs
    dac_um2: float  # one core's DACs
    router_um2: float  # one core's router
    device_um2: dict[str, float | None]  # programmed devices x cell area, per encoding

    @property
    def core_um2(self) -> float:
        return self.array_um2 + self.adc_um2 + self.dac_um2 + self.router_um2

    @property
    def chip_mm2(self) -> float:
        return self.n_cores * self.core_um2 * 1e-6

    @property
    def pitch_mm(self) -> float:
        """Distance between neighbouring cores (square cores): the wire length of one hop."""
        return math.sqrt(self.core_um2) * 1e-3

    def breakdown_mm2(self) -> dict[str, float]:
        """Chip area by category (adds up to :attr:`chip_mm2`)."""
        n = self.n_cores * 1e-6
        return {
            "array": self.array_um2 * n,
            "adc": self.adc_um2 * n,
            "dac": self.dac_um2 * n,
            "router": self.router_um2 * n,
        }

    def as_dict(self) -> dict:
        return {
            "n_cores": self.n_cores,
            "core_um2": self.core_um2,
            "chip_mm2": self.chip_mm2,
            "pitch_mm": self.pitch_mm,
            "breakdown_mm2": self.breakdown_mm2(),
            "device_um2": dict(self.device_um2),
        }


def area_report(config: ChipConfig, devices: dict[str, int | None] | None = None) -> AreaReport:
    """Area of the chip of ``config``; ``devices`` (programmed devices per encoding, e.g.
    from :func:`sim.chip.mapping_report.count_devices`) gives the device areas."""
    c, k = config.chip, config.costs
    cell = k.cell_area_um2
    return AreaReport(
        n_cores=c.n_cores,
        array_um2=c.core_rows * c.core_cols * cell,
        adc_um2=adcs_per_core(config) * k.adc_area_um2(config.adc.bits),
        dac_um2=c.core_rows * dac_bits_per_input(config) * k.dac_area_um2_per_bit,
        router_um2=k.router_area_mm2 * 1e6,
        device_um2={
            e: (None if n is None else n * cell) for e, n in (devices or {}).items()
        },
    )
