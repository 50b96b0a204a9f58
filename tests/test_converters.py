"""Converters: DAC quantisation, bit planes, ADC quantisation / noise / calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices import (
    ADCConfig,
    ConverterConfigError,
    DACConfig,
    adc_quantize,
    adc_step,
    bit_planes,
    calibrate_adc,
    dac_codes,
    dac_quantize,
    dac_step,
    quantize_unsigned,
)
from mappings.activations import Activation

# ----------------------------------------------------------------------------- DAC


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_dac_quantize_error_and_clipping(bits: int) -> None:
    x_max = 1.7
    step = dac_step(x_max, bits)
    assert step == pytest.approx(x_max / (2 ** (bits - 1) - 1))
    x = np.random.default_rng(bits).uniform(-2 * x_max, 2 * x_max, 50_000).astype(np.float32)
    q = dac_quantize(x, bits, x_max)
    assert q.dtype == np.float32 and q.shape == x.shape
    inside = np.abs(x) <= x_max
    assert np.all(np.abs(q[inside] - x[inside]) <= step / 2 * (1 + 1e-5) + 1e-6)
    np.testing.assert_allclose(q[x > x_max], x_max, rtol=1e-6)
    np.testing.assert_allclose(q[x < -x_max], -x_max, rtol=1e-6)
    assert np.unique(q).size <= 2**bits - 1
    if bits <= 8:
        assert np.unique(q).size == 2**bits - 1  # every code is reached


def test_dac_codes_match_quantize() -> None:
    x = np.random.default_rng(0).normal(0, 1, (64, 32))
    codes, step = dac_codes(x, 6, 2.0)
    assert codes.dtype == np.int32 and codes.shape == x.shape
    assert np.abs(codes).max() <= 31 and step == dac_step(2.0, 6)
    np.testing.assert_allclose(codes * step, dac_quantize(x, 6, 2.0), rtol=1e-6, atol=1e-7)


def test_ideal_dac_passes_values() -> None:
    x = np.array([-5.0, 0.1234567, 9.0])
    np.testing.assert_array_equal(dac_quantize(x, 0, 1.0), x.astype(np.float32))


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 16])
def test_bit_planes_reconstruct_codes(bits: int) -> None:
    limit = 2 ** (bits - 1) - 1
    codes = np.random.default_rng(bits).integers(-limit, limit + 1, (7, 300))
    codes[0, :3] = (-limit, 0, limit)
    planes = bit_planes(codes, bits)
    assert planes.shape == (bits - 1, *codes.shape) and planes.dtype == np.int8
    assert set(np.unique(planes)) <= {-1, 0, 1}
    weights = (2 ** np.arange(bits - 1)).reshape(-1, 1, 1)
    np.testing.assert_array_equal((weights * planes.astype(np.int64)).sum(axis=0), codes)
    # sign-magnitude: every nonzero plane entry carries the code's sign
    assert np.all(planes * np.sign(codes)[None] >= 0)
    np.testing.assert_array_equal(planes[0], np.sign(codes) * (np.abs(codes) & 1))  # LSB first


def test_bit_planes_reject_bad_codes() -> None:
    with pytest.raises(ConverterConfigError, match="\\|code\\| <= 2\\*\\*\\(bits-1\\) - 1 = 7"):
        bit_planes(np.array([8]), 4)
    with pytest.raises(ConverterConfigError, match="integer"):
        bit_planes(np.array([1.0]), 4)
    with pytest.raises(ConverterConfigError, match="bits"):
        bit_planes(np.array([1]), 1)
    # wide integer codes must be range-checked before narrowing: 2**32 + 1 wraps to 1 in int32
    for wide in (np.array([2**32 + 1], dtype=np.int64), np.array([2**63], dtype=np.uint64)):
        with pytest.raises(ConverterConfigError, match="max \\|code\\|"):
            bit_planes(wide, 4)


# ----------------------------------------------------------------------------- ADC


@pytest.mark.parametrize("bits", [1, 3, 6, 8])
def test_adc_levels_error_and_clipping(bits: int) -> None:
    lo, hi = -3.0, 5.0
    step = (hi - lo) / (2**bits - 1)
    y = np.linspace(lo - 2, hi + 2, 40_001, dtype=np.float32)
    out = adc_quantize(y, lo, hi, bits)
    assert out.dtype == np.float32 and out.shape == y.shape
    assert np.unique(out).size == 2**bits
    inside = (y >= lo) & (y <= hi)
    assert np.all(np.abs(out[inside] - y[inside]) <= step / 2 * (1 + 1e-5) + 1e-6)
    np.testing.assert_allclose(out[y < lo], lo, atol=1e-6)
    np.testing.assert_allclose(out[y > hi], hi, atol=1e-6)
    assert float(adc_step(lo, hi, bits)) == pytest.approx(step)


def test_adc_per_column_ranges_broadcast() -> None:
    lo = np.array([[[0.0], [10.0]]], dtype=np.float32)  # (1 tile, 2 columns, 1)
    hi = np.array([[[1.0], [20.0]]], dtype=np.float32)
    y = np.array([[[0.49, 2.0], [14.0, -1.0]]], dtype=np.float32)
    out = adc_quantize(y, lo, hi, 1)  # two levels per column: lo, hi
    np.testing.assert_array_equal(out, np.float32([[[0.0, 1.0], [10.0, 10.0]]]))
    with pytest.raises(ConverterConfigError, match="broadcast"):
        adc_quantize(y, np.zeros((3, 1, 1)), np.ones((3, 1, 1)), 4)
    with pytest.raises(ConverterConfigError, match="hi > lo"):
        adc_quantize(y, hi, lo, 4)


def test_adc_noise_adds_configured_spread() -> None:
    bits, lo, hi, sigma_lsb, n = 8, 0.0, 255.0, 0.7, 200_000  # step = 1
    rng = np.random.default_rng(3)
    y = rng.uniform(lo + 10, hi - 10, n)  # uniform offsets, no clipping
    err = adc_quantize(y, lo, hi, bits, noise_lsb=sigma_lsb, rng=rng) - y
    # uniform offset -> rounding error U(-1/2, 1/2) independent of the noise
    var_expected = sigma_lsb**2 + 1 / 12
    tol = 5 * var_expected * math.sqrt(2 / n)  # Gaussian bound; U has lighter tails
    assert abs(float(err.var()) - var_expected) <= tol
    assert abs(float(err.mean())) <= 5 * math.sqrt(var_expected / n)
    quiet = adc_quantize(y, lo, hi, bits) - y
    assert abs(float(quiet.var()) - 1 / 12) <= 5 * (1 / 12) * math.sqrt(2 / n)
    same = adc_quantize(y, lo, hi, bits, noise_lsb=sigma_lsb, rng=np.random.default_rng(9))
    again = adc_quantize(y, lo, hi, bits, noise_lsb=sigma_lsb, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(same, again)


def test_adc_noise_requires_rng_and_ideal_adc_passes() -> None:
    with pytest.raises(ConverterConfigError, match="rng"):
        adc_quantize(np.ones(3), 0.0, 1.0, 4, noise_lsb=0.5)
    with pytest.raises(ConverterConfigError, match="noise_lsb"):
        adc_quantize(np.ones(3), 0.0, 1.0, 4, noise_lsb=-0.5)
    with pytest.raises(ConverterConfigError, match="bits"):
        adc_quantize(np.ones(3), 0.0, 1.0, 17)
    y = np.array([-3.3, 7.25])
    np.testing.assert_array_equal(adc_quantize(y, 0.0, 1.0, 0), y.astype(np.float32))


# ----------------------------------------------------------------------------- calibration


def _calibration_samples() -> np.ndarray:
    """(2 tiles, 3 columns, 1001 batch): column c of tile t holds 0..1000 shuffled, scaled by
    (t + 1) and shifted by 100 c, so percentiles are known exactly."""
    rng = np.random.default_rng(4)
    base = np.arange(1001, dtype=np.float64)
    s = np.empty((2, 3, 1001))
    for t in range(2):
        for c in range(3):
            s[t, c] = rng.permutation(base) * (t + 1) + 100 * c
    return s


def test_calibrate_minmax_core_and_column() -> None:
    s = _calibration_samples()
    lo, hi = calibrate_adc(s, ADCConfig(calibration="minmax", granularity="core"))
    assert lo.shape == hi.shape == (2, 1, 1) and lo.dtype == hi.dtype == np.float32
    np.testing.assert_array_equal(lo.ravel(), [0.0, 0.0])
    np.testing.assert_array_equal(hi.ravel(), [1200.0, 2200.0])
    lo, hi = calibrate_adc(s, ADCConfig(calibration="minmax", granularity="column"))
    assert lo.shape == hi.shape == (2, 3, 1)
    np.testing.assert_array_equal(lo[..., 0], [[0, 100, 200], [0, 100, 200]])
    np.testing.assert_array_equal(hi[..., 0], [[1000, 1100, 1200], [2000, 2100, 2200]])


def test_calibrate_percentile_core_and_column() -> None:
    s = _calibration_samples()
    cfg = ADCConfig(calibration="percentile", percentile=99.0, granularity="column")
    lo, hi = calibrate_adc(s, cfg)
    assert lo.shape == (2, 3, 1)
    scale = np.array([1.0, 2.0])[:, None]
    shift = 100.0 * np.arange(3)[None, :]
    np.testing.assert_allclose(lo[..., 0], 10 * scale + shift)  # 1st percentile of 0..1000
    np.testing.assert_allclose(hi[..., 0], 990 * scale + shift)
    lo, hi = calibrate_adc(s, ADCConfig(calibration="percentile", percentile=99.0))
    assert lo.shape == (2, 1, 1)
    for t in range(2):
        flat = s[t].ravel()  # one range pooled over all columns and the batch
        np.testing.assert_allclose([lo[t, 0, 0], hi[t, 0, 0]], np.percentile(flat, [1, 99]),
                                   rtol=1e-6)
        # ~1 % of pooled samples outside the range on each side (one-sample slack)
        slack = 1 / flat.size
        assert abs(np.mean(flat < lo[t, 0, 0]) - 0.01) <= slack
        assert abs(np.mean(flat > hi[t, 0, 0]) - 0.01) <= slack
    full = calibrate_adc(s, ADCConfig(calibration="percentile", percentile=100.0))
    mm = calibrate_adc(s, ADCConfig(calibration="minmax"))
    np.testing.assert_array_equal(full[0], mm[0])
    np.testing.assert_array_equal(full[1], mm[1])


def test_calibrate_widens_degenerate_ranges() -> None:
    s = np.zeros((3, 2, 50))
    s[1] = 7.5
    s[2] = 1.0e6
    for gran in ("core", "column"):
        lo, hi = calibrate_adc(s, ADCConfig(granularity=gran))
        assert np.all(hi > lo)
        np.testing.assert_allclose(0.5 * (lo + hi)[:, 0, 0], [0.0, 7.5, 1.0e6], rtol=1e-5)
        out = adc_quantize(s.astype(np.float32), lo, hi, 8)
        np.testing.assert_allclose(out, s, rtol=1e-5, atol=1e-20)


def test_calibrate_rejects_bad_input() -> None:
    with pytest.raises(ConverterConfigError, match="tiles, columns, batch"):
        calibrate_adc(np.zeros((4, 5)), ADCConfig())
    with pytest.raises(ConverterConfigError, match="tiles, columns, batch"):
        calibrate_adc(np.zeros((4, 5, 0)), ADCConfig())
    with pytest.raises(ConverterConfigError, match="NaN"):
        calibrate_adc(np.full((1, 1, 3), np.nan), ADCConfig())
    with pytest.raises(ConverterConfigError, match="ADCConfig"):
        calibrate_adc(np.zeros((1, 1, 3)), {"bits": 8})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_quantize_unsigned(bits: int) -> None:
    x_max = 6.0
    step = x_max / (2**bits - 1)
    x = np.random.default_rng(bits).uniform(-2, 8, 20_000).astype(np.float32)
    q = quantize_unsigned(x, bits, x_max)
    assert q.dtype == np.float32
    inside = (x >= 0) & (x <= x_max)
    assert np.all(np.abs(q[inside] - x[inside]) <= step / 2 * (1 + 1e-5) + 1e-6)
    assert np.all(q[x < 0] == 0) and np.allclose(q[x > x_max], x_max)
    assert np.unique(q).size == 2**bits
    # same grid as the network's quantised ReLU
    np.testing.assert_allclose(q, Activation("qrelu", bits, x_max).apply(x), atol=1e-6)
    np.testing.assert_array_equal(quantize_unsigned(x, 0, x_max), x)


# ----------------------------------------------------------------------------- configs

BAD_DAC = [
    ({"bits": 1}, "bits"),
    ({"bits": 17}, "bits"),
    ({"bits": 4.0}, "bits"),
    ({"bits": True}, "bits"),
    ({"mode": "serial"}, "mode"),
    ({"bits": 0, "mode": "bit_serial"}, "bits"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_DAC)
def test_dac_config_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ConverterConfigError, match=f"DACConfig.{field}"):
        DACConfig(**kwargs)


BAD_ADC = [
    ({"bits": -1}, "bits"),
    ({"bits": 17}, "bits"),
    ({"calibration": "mean"}, "calibration"),
    ({"percentile": 50.0}, "percentile"),
    ({"percentile": 100.5}, "percentile"),
    ({"granularity": "row"}, "granularity"),
    ({"noise_lsb": -0.1}, "noise_lsb"),
    ({"noise_lsb": math.nan}, "noise_lsb"),
    ({"columns_per_adc": 0}, "columns_per_adc"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_ADC)
def test_adc_config_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ConverterConfigError, match=f"ADCConfig.{field}"):
        ADCConfig(**kwargs)


def test_config_defaults_and_cycles() -> None:
    assert DACConfig().bits == 8 and DACConfig().cycles == 1
    assert DACConfig(bits=6, mode="bit_serial").cycles == 5
    cfg = ADCConfig(bits=0, percentile=99)
    assert cfg.percentile == 99.0 and isinstance(cfg.percentile, float)
    assert issubclass(ConverterConfigError, ValueError)
    with pytest.raises(ConverterConfigError, match="x_max"):
        dac_step(0.0, 4)
    with pytest.raises(ConverterConfigError, match="bits"):
        dac_quantize(np.ones(2), 1, 1.0)
