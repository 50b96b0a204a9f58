"""First-order latency of the analog matrix-vector products, from the converter settings.

Until the cycle-level packet network lands, the chip's timing is that of one tile's analog
MVM: every input pass (one for a multi-level DAC, ``bits - 1`` magnitude planes for a
bit-serial DAC) integrates for one read pulse, then each ADC converts its ``columns_per_adc``
columns one after another. All tiles of a layer work in parallel, so a layer costs one MVM and
an inference, without network traffic, one MVM per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.chip.config import ChipConfig

# Integration (read) pulse per input pass: 10 ns (NeuroSim: P.-Y. Chen, X. Peng and S. Yu,
# "NeuroSim: A circuit-level macro model for benchmarking neuro-inspired architectures in online
# learning", IEEE TCAD 37(12), 2018).
READ_PULSE_NS = 10.0


def sar_conversion_ns(bits: int) -> float:
    """SAR ADC conversion time, about (bits + 1) ns (NeuroSim); 0 for an ideal (0-bit) ADC."""
    return 0.0 if bits == 0 else float(bits + 1)


@dataclass(frozen=True)
class MvmTiming:
    """Latency of one analog MVM on a tile and of one inference through ``n_layers``."""

    passes: int  # DAC input passes per MVM
    columns_per_adc: int  # conversions one ADC makes per pass
    read_ns: float  # integration pulse per pass
    conversion_ns: float  # one ADC conversion
    clock_mhz: float
    n_layers: int

    @property
    def mvm_ns(self) -> float:
        return self.passes * (self.read_ns + self.columns_per_adc * self.conversion_ns)

    @property
    def mvm_cycles(self) -> int:
        """The MVM latency rounded up to whole cycles of the chip clock."""
        return math.ceil(self.mvm_ns * self.clock_mhz / 1000.0 - 1e-9)

    @property
    def inference_ns(self) -> float:
        return self.n_layers * self.mvm_ns

    @property
    def inference_cycles(self) -> int:
        return self.n_layers * self.mvm_cycles

    def as_dict(self) -> dict:
        return {
            "passes": self.passes,
            "columns_per_adc": self.columns_per_adc,
            "read_ns": self.read_ns,
            "conversion_ns": self.conversion_ns,
            "clock_mhz": self.clock_mhz,
            "mvm_ns": self.mvm_ns,
            "mvm_cycles": self.mvm_cycles,
            "inference_ns": self.inference_ns,
            "inference_cycles": self.inference_cycles,
        }

    def describe(self) -> str:
        return (
            f"analog MVM: {self.passes} pass(es) x ({self.read_ns:g} ns read + "
            f"{self.columns_per_adc} columns x {self.conversion_ns:g} ns ADC) = "
            f"{self.mvm_ns:g} ns = {self.mvm_cycles} cycles at {self.clock_mhz:g} MHz; "
            f"{self.n_layers} layers: {self.inference_ns:g} ns per inference "
            f"(network traffic not included)"
        )


def mvm_timing(config: ChipConfig, n_layers: int) -> MvmTiming:
    """The MVM latency implied by ``config``'s DAC, ADC and clock for ``n_layers`` layers."""
    return MvmTiming(
        passes=config.dac.cycles,
        columns_per_adc=min(config.adc.columns_per_adc, config.chip.core_cols),
        read_ns=READ_PULSE_NS,
        conversion_ns=sar_conversion_ns(config.adc.bits),
        clock_mhz=config.chip.clock_mhz,
        n_layers=n_layers,
    )
