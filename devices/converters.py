"""Data converters: input DACs, column ADCs (with calibration) and activation quantisers.

All quantisers return float32. ``bits = 0`` means an ideal converter (values pass unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np

DAC_MODES: tuple[str, ...] = ("multilevel", "bit_serial")
ADC_CALIBRATIONS: tuple[str, ...] = ("minmax", "percentile")
ADC_GRANULARITIES: tuple[str, ...] = ("core", "column")
MAX_BITS = 16


class ConverterConfigError(ValueError):
    """Raised for an invalid converter configuration or argument; names the field and range."""


def _int_in(owner: str, name: str, value: Any, ok: tuple[int, ...], lo: int, hi: int) -> int:
    valid = not isinstance(value, bool) and isinstance(value, Integral)
    if not valid or not (value in ok or lo <= value <= hi):
        allowed = " or ".join([*map(str, ok), f"{lo}..{hi}"])
        raise ConverterConfigError(f"{owner}.{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise ConverterConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DACConfig:
    """Input DAC. ``bits`` 0 = ideal (no quantisation), else 2..16 (signed symmetric codes
    -(2**(bits-1) - 1)..2**(bits-1) - 1). ``bit_serial`` feeds the magnitude bits one cycle
    each (``bit_planes``) through 1-bit DACs; ``multilevel`` applies each code in one cycle."""

    bits: int = 8
    mode: Literal["multilevel", "bit_serial"] = "multilevel"

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _int_in("DACConfig", "bits", self.bits, (0,), 2, MAX_BITS))
        if self.mode not in DAC_MODES:
            raise ConverterConfigError(f"DACConfig.mode must be one of {DAC_MODES}, got {self.mode!r}")
        if self.mode == "bit_serial" and self.bits == 0:
            raise ConverterConfigError(
                "DACConfig.bits must be 2..16 for mode 'bit_serial' (an ideal DAC has no bits)"
            )

    @property
    def cycles(self) -> int:
        """Input cycles per matrix-vector product: bits - 1 magnitude planes if bit-serial."""
        return self.bits - 1 if self.mode == "bit_serial" else 1


@dataclass(frozen=True)
class ADCConfig:
    """Column ADC. ``bits`` 0 = ideal, else 1..16. Range per tile (``core``) or per column,
    from the min/max or the two-sided ``percentile`` of calibration outputs."""

    bits: int = 8
    calibration: Literal["minmax", "percentile"] = "minmax"
    percentile: float = 99.9  # used by 'percentile' (two-sided), in (50, 100]
    granularity: Literal["core", "column"] = "core"
    noise_lsb: float = 0.0  # Gaussian noise before rounding, in LSB
    columns_per_adc: int = 8  # timing only

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _int_in("ADCConfig", "bits", self.bits, (0,), 1, MAX_BITS))
        if self.calibration not in ADC_CALIBRATIONS:
            raise ConverterConfigError(
                f"ADCConfig.calibration must be one of {ADC_CALIBRATIONS}, got {self.calibration!r}"
            )
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, Real) or not (50.0 < p <= 100.0):
            raise ConverterConfigError(f"ADCConfig.percentile must be in (50, 100], got {p!r}")
        object.__setattr__(self, "percentile", float(p))
        if self.granularity not in ADC_GRANULARITIES:
            raise ConverterConfigError(
                f"ADCConfig.granularity must be one of {ADC_GRANULARITIES}, "
                f"got {self.granularity!r}"
            )
        nl = self.noise_lsb
        if isinstance(nl, bool) or not isinstance(nl, Real) or not (math.isfinite(nl) and nl >= 0):
            raise ConverterConfigError(f"ADCConfig.noise_lsb must be a finite number >= 0, got {nl!r}")
        object.__setattr__(self, "noise_lsb", float(nl))
        cpa = self.columns_per_adc
        if isinstance(cpa, bool) or not isinstance(cpa, Integral) or cpa < 1:
            raise ConverterConfigError(
                f"ADCConfig.columns_per_adc must be an integer >= 1, got {cpa!r}"
            )
        object.__setattr__(self, "columns_per_adc", int(cpa))


# ----------------------------------------------------------------------------- helpers


def _as_float(name: str, x: Any) -> np.ndarray:
    """x as a float32 array (float64 kept) with finite values."""
    try:
        a = np.asarray(x)
        if a.dtype != np.float32 and a.dtype != np.float64:
            a = a.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ConverterConfigError(f"{name} must be an array of real numbers ({exc})") from None
    if not np.all(np.isfinite(a)):
        raise ConverterConfigError(f"{name} contains NaN or infinite values")
    return a


def _dac_bits(bits: Any) -> int:
    return _int_in("DAC", "bits", bits, (), 2, MAX_BITS)


def _scalar(a: np.ndarray, v: float) -> np.floating:
    return a.dtype.type(v)


# ----------------------------------------------------------------------------- DAC


def dac_step(x_max: float, bits: int) -> float:
    """Signed symmetric DAC step: x_max / (2**(bits-1) - 1); bits 2..16, x_max > 0."""
    return _positive("x_max", x_max) / ((1 << (_dac_bits(bits) - 1)) - 1)


def dac_quantize(x: Any, bits: int, x_max: float) -> np.ndarray:
    """rint(clip(x, -x_max, x_max) / step) * step as float32; bits = 0 returns x unchanged."""
    bits = _int_in("dac_quantize", "bits", bits, (0,), 2, MAX_BITS)
    if bits == 0:
        return np.asarray(_as_float("x", x), dtype=np.float32)
    step = dac_step(x_max, bits)
    a = _as_float("x", x)
    y = np.clip(a, -_scalar(a, x_max), _scalar(a, x_max))
    np.rint(y * _scalar(a, 1.0 / step), out=y)
    y *= _scalar(a, step)
    return y.astype(np.float32, copy=False)


def dac_codes(x: Any, bits: int, x_max: float) -> tuple[np.ndarray, float]:
    """Integer DAC codes (int32, |code| <= 2**(bits-1) - 1) and the step; x ~= code * step."""
    step = dac_step(x_max, bits)
    a = _as_float("x", x)
    y = np.clip(a, -_scalar(a, x_max), _scalar(a, x_max))
    return np.rint(y * _scalar(a, 1.0 / step)).astype(np.int32), step


def bit_planes(codes: Any, bits: int) -> np.ndarray:
    """Sign-magnitude bit planes, LSB first: int8 (bits-1, *codes.shape) in {-1, 0, 1} with
    codes == sum_b 2**b * planes[b] exactly."""
    bits = _dac_bits(bits)
    c = np.asarray(codes)
    if not np.issubdtype(c.dtype, np.integer):
        raise ConverterConfigError(f"codes must be an integer array, got dtype {c.dtype}")
    limit = (1 << (bits - 1)) - 1
    # check before narrowing to int32: a wider code (e.g. 2**32 + 1) would wrap into range
    worst = max(abs(int(c.min())), abs(int(c.max()))) if c.size else 0
    if worst > limit:
        raise ConverterConfigError(
            f"codes must satisfy |code| <= 2**(bits-1) - 1 = {limit} for {bits} bits, "
            f"got max |code| {worst}"
        )
    c = c.astype(np.int32)
    mag = np.abs(c).astype(np.uint16)  # |code| < 2**15
    sign = np.sign(c).astype(np.int8)
    planes = np.empty((bits - 1, *c.shape), dtype=np.int8)
    tmp = np.empty(c.shape, dtype=np.uint16)
    for b in range(bits - 1):  # loop over bit positions only; each plane is vectorised
        np.right_shift(mag, b, out=tmp)
        np.bitwise_and(tmp, 1, out=tmp)
        np.multiply(tmp, sign, out=planes[b], casting="unsafe")
    return planes


def quantize_unsigned(x: Any, bits: int, x_max: float) -> np.ndarray:
    """Unsigned quantiser for activations: rint(clip(x, 0, x_max) / step) * step with
    step = x_max / (2**bits - 1); bits 1..16 (0 returns x unchanged); float32."""
    bits = _int_in("quantize_unsigned", "bits", bits, (0,), 1, MAX_BITS)
    a = _as_float("x", x)
    if bits == 0:
        return np.asarray(a, dtype=np.float32)
    step = _positive("x_max", x_max) / ((1 << bits) - 1)
    y = np.clip(a, _scalar(a, 0.0), _scalar(a, x_max))
    np.rint(y * _scalar(a, 1.0 / step), out=y)
    y *= _scalar(a, step)
    return y.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- ADC


def calibrate_adc(samples: Any, config: ADCConfig) -> tuple[np.ndarray, np.ndarray]:
    """ADC ranges from calibration outputs ``samples`` shaped (tiles, columns, batch).

    Returns lo, hi float32 shaped (tiles, 1, 1) for granularity 'core' (statistics over columns
    and batch) or (tiles, columns, 1) for 'column' (over batch). 'minmax' takes min / max;
    'percentile' p takes lo = percentile(100 - p), hi = percentile(p). Degenerate ranges are
    widened symmetrically by a tiny epsilon so that hi > lo always.
    """
    if not isinstance(config, ADCConfig):
        raise ConverterConfigError(f"calibrate_adc needs an ADCConfig, got {config!r}")
    s = _as_float("calibration samples", samples)
    if s.ndim != 3 or 0 in s.shape:
        raise ConverterConfigError(
            f"calibration samples must be a non-empty array shaped (tiles, columns, batch), "
            f"got shape {s.shape}"
        )
    axes = (1, 2) if config.granularity == "core" else (2,)
    if config.calibration == "minmax":
        lo = np.min(s, axis=axes, keepdims=True).astype(np.float64)
        hi = np.max(s, axis=axes, keepdims=True).astype(np.float64)
    else:
        p = config.percentile
        lo, hi = np.percentile(s, [100.0 - p, p], axis=axes, keepdims=True)
    return _widen(lo, hi)


def _widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 lo, hi with hi > lo: degenerate ranges get +-max(|mid| 2**-20, 1e-30)."""
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    bad = ~(hi32 > lo32)
    if np.any(bad):
        mid = 0.5 * (lo[bad] + hi[bad])
        eps = np.maximum(np.abs(mid) * 2.0**-20, 1e-30)
        lo32[bad] = (mid - eps).astype(np.float32)
        hi32[bad] = (mid + eps).astype(np.float32)
    return lo32, hi32


def adc_step(lo: Any, hi: Any, bits: int) -> np.ndarray:
    """LSB size (hi - lo) / (2**bits - 1), broadcast over lo / hi; bits 1..16."""
    bits = _int_in("ADC", "bits", bits, (), 1, MAX_BITS)
    lo_a, hi_a = _as_float("lo", lo), _as_float("hi", hi)
    return (hi_a - lo_a) / ((1 << bits) - 1)


def adc_quantize(
    y: Any,
    lo: Any,
    hi: Any,
    bits: int,
    noise_lsb: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Quantise ``y`` onto 2**bits levels lo + code * step, step = (hi - lo) / (2**bits - 1),
    code = clip(rint((y - lo) / step + noise), 0, 2**bits - 1), noise ~ N(0, noise_lsb) LSB
    drawn from ``rng`` (required when noise_lsb > 0). lo / hi broadcast against y and need
    hi > lo. bits = 0 returns y unchanged (float32). float32 result.
    """
    bits = _int_in("ADC", "bits", bits, (0,), 1, MAX_BITS)
    a = _as_float("y", y)
    if bits == 0:
        return np.asarray(a, dtype=np.float32)
    if isinstance(noise_lsb, bool) or not isinstance(noise_lsb, Real) or not (
        math.isfinite(noise_lsb) and noise_lsb >= 0
    ):
        raise ConverterConfigError(f"noise_lsb must be a finite number >= 0, got {noise_lsb!r}")
    if noise_lsb > 0 and not isinstance(rng, np.random.Generator):
        raise ConverterConfigError(
            f"adc_quantize with noise_lsb = {noise_lsb} > 0 needs rng, a numpy.random.Generator; "
            f"got {rng!r}"
        )
    dt = a.dtype
    lo_a = _as_float("lo", lo).astype(dt, copy=False)
    hi_a = _as_float("hi", hi).astype(dt, copy=False)
    if not np.all(hi_a > lo_a):
        raise ConverterConfigError("ADC range must satisfy hi > lo everywhere (see calibrate_adc)")
    try:
        out_shape = np.broadcast_shapes(a.shape, lo_a.shape, hi_a.shape)
    except ValueError:
        raise ConverterConfigError(
            f"ADC range shapes lo {lo_a.shape} / hi {hi_a.shape} do not broadcast against "
            f"y {a.shape}"
        ) from None
    if out_shape != a.shape:
        raise ConverterConfigError(
            f"ADC range shapes lo {lo_a.shape} / hi {hi_a.shape} must broadcast to y {a.shape}"
        )
    n_max = (1 << bits) - 1
    step = (hi_a - lo_a) / dt.type(n_max)
    code = (a - lo_a) / step
    if noise_lsb > 0:
        code += dt.type(noise_lsb) * rng.standard_normal(a.shape, dtype=dt)
    np.rint(code, out=code)
    np.clip(code, 0, n_max, out=code)
    code *= step
    code += lo_a
    return code.astype(np.float32, copy=False)
