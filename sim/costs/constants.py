"""``CostConfig``: the energy and area constants of the chip-level cost model, with sources.

Every field can be overridden from the chip file's ``[costs]`` section (see docs/chip_file.md).
Defaults are published figures, mostly scaled to a 32 nm node as ISAAC reports them, so the
categories can be set beside NeuroSim-like tools:

- ISAAC: Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with In-Situ
  Analog Arithmetic in Crossbars", ISCA 2016 (32 nm): SAR ADC 8 bit 1.67 pJ per conversion,
  1200 um^2; the 4-8 bit energies of the ISAAC-scaled SAR (0.79, 0.99, 1.20, 1.42, 1.67 pJ)
  rise by about 0.22 pJ per bit; area roughly doubles every 2 bits (361, 627, 1200, 3002 um^2
  at 4, 6, 8, 10 bits); 1-bit DAC 3.9 uW, i.e. 0.04 pJ per 10 ns pulse, 0.00017 mm^2 for
  1,024 DACs; shift-and-add 0.021 pJ per 16-bit operation; eDRAM buffer 20.45 pJ per 256-bit
  access (0.08 pJ/bit); router 20.74 pJ per 256-bit transfer (0.081 pJ per bit per router).
- PUMA: Ankit et al., "PUMA: A Programmable Ultra-efficient Memristor-based Accelerator for
  Machine Learning Inference", ASPLOS 2019: ADC leakage 0.2 mW; 4-port router 0.047 mm^2.
- Mesh links: Park et al., DATE 2013 (45 nm): 40.4 fJ per bit per mm.
- NeuroSim: Chen, Peng & Yu, "NeuroSim: A Circuit-Level Macro Model for Benchmarking
  Neuro-Inspired Architectures in Online Learning", IEEE TCAD 2018: 1T1R cell 48 F^2,
  read voltage ~0.2 V, array read energy sum over pulses of t * sum_i V_i^2 * sum_j G_ij.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

__all__ = ["CostConfig", "CostConfigError"]


class CostConfigError(ValueError):
    """A cost constant out of range; the message names the ``[costs]`` key."""


@dataclass(frozen=True)
class CostConfig:
    """Energy (pJ, fJ) and area (um^2, mm^2) constants; see the module docstring for sources."""

    feature_nm: float = 32.0  # technology node F for the cell area (ISAAC's 32 nm)
    cell_area_f2: float = 48.0  # 1T1R cell (NeuroSim default)
    read_voltage_v: float = 0.2  # full-scale read voltage on a row (NeuroSim)
    dac_pj_per_bit: float = 0.04  # per input per pass, x DAC bits (ISAAC 1-bit DAC, 10 ns)
    dac_area_um2_per_bit: float = 0.166  # ISAAC: 0.00017 mm^2 / 1,024 1-bit DACs
    adc_pj_8bit: float = 1.67  # SAR ADC per conversion at 8 bits (ISAAC)
    adc_pj_per_bit: float = 0.22  # slope of the ISAAC-scaled 4..8 bit SAR energies
    adc_area_um2_8bit: float = 1200.0  # ISAAC
    adc_area_doubling_bits: float = 2.0  # SAR area ~doubles every 2 bits (ISAAC-scaled table)
    adc_leakage_mw: float = 0.2  # per ADC (PUMA)
    shift_add_pj: float = 0.021  # per 16-bit digital add (ISAAC)
    buffer_pj_per_bit: float = 0.08  # eDRAM, per bit written or read (ISAAC)
    router_pj_per_bit: float = 0.081  # per bit per router traversal (ISAAC)
    link_pj_per_bit_mm: float = 0.0404  # per bit per mm of wire (Park et al., DATE 2013)
    router_area_mm2: float = 0.047  # one router per core (PUMA)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CostConfigError(f"[costs] {f.name}: expected a finite number, got {v!r}")
            positive = f.name in ("feature_nm", "cell_area_f2", "adc_area_doubling_bits")
            if v < 0 or (positive and v == 0):
                raise CostConfigError(
                    f"[costs] {f.name}: expected a number {'> 0' if positive else '>= 0'}, got {v}"
                )
            object.__setattr__(self, f.name, float(v))

    @property
    def cell_area_um2(self) -> float:
        """One device (1T1R cell): cell_area_f2 x F^2."""
        return self.cell_area_f2 * (self.feature_nm * 1e-3) ** 2

    def adc_pj(self, bits: int) -> float:
        """Energy of one SAR conversion: linear in bits through the 8-bit figure, at least
        one bit's worth; 0 for an ideal (0-bit) ADC."""
        if bits == 0:
            return 0.0
        return max(self.adc_pj_8bit + self.adc_pj_per_bit * (bits - 8), self.adc_pj_per_bit)

    def adc_area_um2(self, bits: int) -> float:
        """Area of one SAR ADC, doubling every ``adc_area_doubling_bits`` from the 8-bit one."""
        if bits == 0:
            return 0.0
        return self.adc_area_um2_8bit * 2.0 ** ((bits - 8) / self.adc_area_doubling_bits)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)
