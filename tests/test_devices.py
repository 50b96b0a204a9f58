"""Device models: levels, programming statistics, faults, retention, presets, validation.

Statistical checks use tolerances of 5 standard errors of the estimate for the sample size
(mean: sigma / sqrt(n); standard deviation: sigma / sqrt(2 n); a count: sqrt(n p (1 - p))).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices import (
    PRESETS,
    DeviceConfigError,
    DeviceError,
    DeviceModel,
    RetentionModel,
    SigmaModel,
    UnknownPresetError,
    drift_compensation_factor,
    get_preset,
)

N = 40_000  # devices per statistical test
Z = 5.0  # standard errors allowed


def _check_mean_std(sample: np.ndarray, mean: float, std: float) -> None:
    n = sample.size
    m, s = float(sample.mean()), float(sample.std(ddof=1))
    assert abs(m - mean) <= Z * std / math.sqrt(n) + 1e-6 * abs(mean), (m, mean, std)
    assert abs(s - std) <= Z * std / math.sqrt(2 * n) + 1e-9, (s, std)


# ----------------------------------------------------------------------------- programming

SIGMA_CASES = {
    "constant": SigmaModel("constant", (0.8,)),
    "proportional": SigmaModel("proportional", (0.04,)),
    "polynomial_rel": SigmaModel("polynomial", (1.05, 9.224017, -17.544102, 8.992136), True),
    "polynomial_abs": SigmaModel("polynomial", (0.3, 0.05, -0.0008)),
}


@pytest.mark.parametrize("case", list(SIGMA_CASES))
def test_programming_error_has_configured_distribution(case: str) -> None:
    sig = SIGMA_CASES[case]
    dev = DeviceModel(name="t", g_min=0.0, g_max=40.0, programming=sig)
    rng = np.random.default_rng(1)
    for target in (10.0, 20.0, 35.0):
        expected_sigma = float(sig.sigma(np.array([target]), 40.0)[0])
        assert expected_sigma > 0.3
        g = dev.program(np.full(N, target), rng)
        assert g.dtype == np.float32 and g.shape == (N,)
        _check_mean_std(g.astype(np.float64), target, expected_sigma)


def test_sigma_model_formulas_and_clipping() -> None:
    g = np.array([0.0, 10.0, 20.0, 40.0])
    assert np.allclose(SigmaModel("constant", (0.5,)).sigma(g, 40.0), 0.5)
    assert np.allclose(SigmaModel("proportional", (0.1,)).sigma(g, 40.0), 0.1 * g)
    u = g / 40.0
    rel = SigmaModel("polynomial", (1.0, 2.0, -3.0), relative_to_gmax=True).sigma(g, 40.0)
    assert np.allclose(rel, np.maximum(1 + 2 * u - 3 * u**2, 0))
    absolute = SigmaModel("polynomial", (1.0, -0.05)).sigma(g, 40.0)
    assert np.allclose(absolute, [1.0, 0.5, 0.0, 0.0])  # negative values clip to 0
    assert SigmaModel().is_zero() and not SigmaModel("constant", (0.1,)).is_zero()
    assert SigmaModel("proportional", (0.1,)).sigma(g.astype(np.float32), 40.0).dtype == np.float32


def test_programming_noise_centres_on_quantized_level() -> None:
    dev = DeviceModel(g_max=40.0, n_levels=5, programming=SigmaModel("constant", (0.5,)))
    g = dev.program(np.full(N, 12.0), np.random.default_rng(2))  # nearest level is 10
    _check_mean_std(g.astype(np.float64), 10.0, 0.5)


def test_variation_is_multiplicative_with_configured_sigma() -> None:
    dev = DeviceModel(g_max=40.0, variation=0.1)
    g10 = dev.program(np.full(N, 10.0), np.random.default_rng(3))
    g30 = dev.program(np.full(N, 30.0), np.random.default_rng(3))
    _check_mean_std(g10 / 10.0, 1.0, 0.1)
    # same devices (same seed): the factor is per device and scales every target alike
    np.testing.assert_allclose(g30 / g10, 3.0, rtol=1e-6)


def test_programming_clips_at_zero() -> None:
    dev = DeviceModel(g_max=40.0, programming=SigmaModel("constant", (5.0,)))
    g = dev.program(np.zeros(N), np.random.default_rng(4))
    assert g.min() == 0.0
    assert 0.4 < np.mean(g == 0) < 0.6


def test_stuck_at_fault_rates_and_values() -> None:
    p_lo, p_hi, n = 0.02, 0.05, 200_000
    dev = DeviceModel(
        g_min=2.0, g_max=40.0, programming=SigmaModel("constant", (0.5,)),
        stuck_at_gmin=p_lo, stuck_at_gmax=p_hi,
    )
    res = dev.program_with_report(np.full(n, 20.0), np.random.default_rng(5))
    for p, count in ((p_lo, res.n_stuck_gmin), (p_hi, res.n_stuck_gmax)):
        assert abs(count - n * p) <= Z * math.sqrt(n * p * (1 - p)), (count, n * p)
    assert res.n_faulty == res.n_stuck_gmin + res.n_stuck_gmax
    assert np.all(res.g[res.stuck == -1] == np.float32(2.0))
    assert np.all(res.g[res.stuck == 1] == np.float32(40.0))
    healthy = res.g[res.stuck == 0]
    assert not np.any((healthy == 2.0) | (healthy == 40.0))
    assert res.stuck.dtype == np.int8 and set(np.unique(res.stuck)) == {-1, 0, 1}


def test_all_devices_stuck_when_fractions_sum_to_one() -> None:
    dev = DeviceModel(g_min=1.0, g_max=40.0, stuck_at_gmin=0.3, stuck_at_gmax=0.7)
    res = dev.program_with_report(np.full(10_000, 20.0), np.random.default_rng(6))
    assert res.n_faulty == 10_000
    assert set(np.unique(res.g)) == {np.float32(1.0), np.float32(40.0)}


def test_common_random_numbers_across_effects() -> None:
    base = DeviceModel(g_max=40.0, stuck_at_gmin=0.1)
    noisy = base.replace(programming=SigmaModel("constant", (1.0,)), variation=0.05)
    a = base.program_with_report(np.full(5000, 20.0), np.random.default_rng(7))
    b = noisy.program_with_report(np.full(5000, 20.0), np.random.default_rng(7))
    np.testing.assert_array_equal(a.stuck, b.stuck)  # same faulty devices
    assert not np.array_equal(a.g, b.g)


def test_reproducibility() -> None:
    dev = get_preset("pcm_joshi2020").replace(variation=0.05, stuck_at_gmin=0.01)
    target = np.linspace(0, 25, 3000).reshape(30, 100)
    g1 = dev.program(target, np.random.default_rng(11))
    g2 = dev.program(target, np.random.default_rng(11))
    g3 = dev.program(target, np.random.default_rng(12))
    np.testing.assert_array_equal(g1, g2)
    assert g1.shape == target.shape and not np.array_equal(g1, g3)
    r1 = dev.retain(g1, 3600.0, np.random.default_rng(13))
    r2 = dev.retain(g1, 3600.0, np.random.default_rng(13))
    r3 = dev.retain(g1, 3600.0, np.random.default_rng(14))
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(r1, r3)


def test_scalar_targets_give_0d_arrays() -> None:
    dev = DeviceModel(g_max=40.0, n_levels=5, stuck_at_gmin=0.3,
                      retention=RetentionModel("rram_relaxation", sigma_base=0.5))
    assert dev.level_index(12.0).shape == () and int(dev.level_index(12.0)) == 1
    q = dev.quantize(12.0)
    assert isinstance(q, np.ndarray) and q.shape == () and q == np.float32(10.0)
    res = dev.program_with_report(12.0, np.random.default_rng(0))
    assert isinstance(res.g, np.ndarray) and res.g.shape == () and res.stuck.shape == ()
    g = dev.program(np.float32(12.0), np.random.default_rng(0))
    assert isinstance(g, np.ndarray) and g.shape == () and g.dtype == np.float32
    r = dev.retain(10.0, 100.0, np.random.default_rng(1))
    assert isinstance(r, np.ndarray) and r.shape == () and r.dtype == np.float32
    assert isinstance(DeviceModel().quantize(3.0), np.ndarray)


def test_program_needs_generator_and_finite_targets() -> None:
    dev = get_preset("rram_wan2022")
    with pytest.raises(DeviceError, match="Generator"):
        dev.program(np.ones(3), None)  # type: ignore[arg-type]
    with pytest.raises(DeviceError, match="NaN"):
        dev.program(np.array([1.0, np.nan]), np.random.default_rng(0))


# ----------------------------------------------------------------------------- levels


def test_linear_levels() -> None:
    lv = DeviceModel(g_min=1.0, g_max=41.0, n_levels=9).levels()
    assert lv is not None and lv.size == 9 and lv[0] == 1.0 and lv[-1] == 41.0
    np.testing.assert_allclose(np.diff(lv), 5.0)


def test_log_levels() -> None:
    lv = DeviceModel(g_min=1.0, g_max=64.0, n_levels=7, level_spacing="log").levels()
    assert lv is not None and lv[0] == 1.0 and lv[-1] == 64.0
    np.testing.assert_allclose(lv[1:] / lv[:-1], 2.0)
    with pytest.raises(DeviceConfigError, match="g_min"):
        DeviceModel(g_min=0.0, n_levels=4, level_spacing="log")


@pytest.mark.parametrize("tau", [0.1, 0.5, 3.0])
def test_pulse_levels_follow_saturating_exponential(tau: float) -> None:
    g_min, g_max, n = 2.0, 50.0, 12
    lv = DeviceModel(g_min=g_min, g_max=g_max, n_levels=n, level_spacing="pulse",
                     pulse_tau=tau).levels()
    g_inf = g_min + (g_max - g_min) / (1 - math.exp(-1 / tau))  # g(1) = g_max
    x = np.arange(n) / (n - 1)
    np.testing.assert_allclose(lv, (g_inf - g_min) * (1 - np.exp(-x / tau)) + g_min, rtol=1e-12)
    assert lv[0] == g_min and lv[-1] == g_max
    steps = np.diff(lv)
    assert np.all(steps > 0) and np.all(np.diff(steps) < 0)  # increasing, saturating


def test_continuous_device_has_no_levels() -> None:
    dev = DeviceModel(g_min=1.0, g_max=10.0)
    assert dev.levels() is None
    np.testing.assert_array_equal(dev.quantize([0.0, 5.5, 12.0]), np.float32([1.0, 5.5, 10.0]))
    with pytest.raises(DeviceError, match="continuous"):
        dev.level_index([1.0])


@pytest.mark.parametrize("spacing", ["linear", "log", "pulse"])
def test_quantize_snaps_to_nearest_level(spacing: str) -> None:
    dev = DeviceModel(g_min=1.0, g_max=40.0, n_levels=13, level_spacing=spacing)
    lv = dev.levels()
    g = np.random.default_rng(8).uniform(-5, 45, 5000)
    q = dev.quantize(g)
    assert q.dtype == np.float32
    clipped = np.clip(g, 1.0, 40.0)
    brute = lv[np.argmin(np.abs(clipped[:, None] - lv[None, :]), axis=1)]
    np.testing.assert_array_equal(q, brute.astype(np.float32))
    np.testing.assert_array_equal(lv[dev.level_index(g)].astype(np.float32), q)
    np.testing.assert_array_equal(dev.quantize(q), q)  # idempotent


# ----------------------------------------------------------------------------- reading


def test_read_sigma_uses_read_model() -> None:
    dev = DeviceModel(g_max=25.0, read=SigmaModel("proportional", (0.05,)))
    g = np.array([0.0, 10.0, 25.0], dtype=np.float32)
    s = dev.read_sigma(g)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, 0.05 * g)
    assert np.all(PRESETS["ideal"].read_sigma(g) == 0)


# ----------------------------------------------------------------------------- retention


def test_pcm_drift_recovers_nu_distribution() -> None:
    nu_mean, nu_std, t0, t = 0.06, 0.012, 20.0, 1.0e4
    dev = DeviceModel(g_min=0.1, g_max=25.0,
                      retention=RetentionModel("pcm_drift", t0=t0, nu_mean=nu_mean, nu_std=nu_std))
    g0 = np.full(N, 10.0, dtype=np.float32)
    gt = dev.retain(g0, t, np.random.default_rng(9))
    nu = np.log(gt.astype(np.float64) / g0) / -math.log((t + t0) / t0)
    # float32 rounding of G(t) adds < 1e-7 relative, i.e. < 2e-8 in nu: negligible
    _check_mean_std(nu, nu_mean, nu_std)


def test_pcm_drift_exponent_clipped_at_zero() -> None:
    dev = DeviceModel(retention=RetentionModel("pcm_drift", nu_mean=0.0, nu_std=0.05))
    g0 = np.full(N, 10.0, dtype=np.float32)
    gt = dev.retain(g0, 1e6, np.random.default_rng(10))
    assert np.all(gt <= g0) and 0.4 < np.mean(gt == g0) < 0.6  # nu < 0 -> nu = 0


@pytest.mark.parametrize("t", [50.0, 2.0e5])
def test_rram_relaxation_mean_and_sigma(t: float) -> None:
    m, s0, s1, t_ref = -0.089, 0.41, 0.042, 1.0
    dev = DeviceModel(g_min=9.0, g_max=88.0, retention=RetentionModel(
        "rram_relaxation", mean_per_ln_t=m, sigma_base=s0, sigma_per_ln_t=s1, t_ref=t_ref))
    g0 = np.full(N, 50.0, dtype=np.float32)
    shift = dev.retain(g0, t, np.random.default_rng(int(t))).astype(np.float64) - 50.0
    ln_t = math.log(t / t_ref)
    _check_mean_std(shift, m * ln_t, s0 + s1 * ln_t)


def test_rram_relaxation_before_t_ref_and_at_zero() -> None:
    ret = RetentionModel("rram_relaxation", mean_per_ln_t=-0.5, sigma_base=0.3,
                         sigma_per_ln_t=0.2, t_ref=10.0)
    dev = DeviceModel(retention=ret)
    g0 = np.full(N, 20.0, dtype=np.float32)
    shift = dev.retain(g0, 5.0, np.random.default_rng(15)).astype(np.float64) - 20.0
    _check_mean_std(shift, 0.0, 0.3)  # ln term treated as 0 for 0 < t < t_ref
    np.testing.assert_array_equal(dev.retain(g0, 0.0), g0)  # t = 0: unchanged, no rng needed
    with pytest.raises(DeviceError, match="Generator"):
        dev.retain(g0, 5.0)


def test_retention_none_and_stuck_devices_unchanged() -> None:
    g0 = np.linspace(0, 40, 100, dtype=np.float32)
    np.testing.assert_array_equal(PRESETS["ideal"].retain(g0, 1e8, None), g0)
    dev = get_preset("pcm_joshi2020")
    stuck = np.zeros(100, dtype=np.int8)
    stuck[::7] = 1
    gt = dev.retain(g0 + 1, 1e5, np.random.default_rng(16), stuck=stuck)
    np.testing.assert_array_equal(gt[stuck != 0], (g0 + 1)[stuck != 0])
    assert np.all(gt[stuck == 0] < (g0 + 1)[stuck == 0])
    with pytest.raises(DeviceError, match="shape"):
        dev.retain(g0, 1.0, np.random.default_rng(0), stuck=stuck[:10])
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(DeviceError, match="retention time"):
            dev.retain(g0, bad, np.random.default_rng(0))


def test_drift_compensation_restores_mean() -> None:
    dev = get_preset("pcm_joshi2020")
    rng = np.random.default_rng(17)
    g_ref = dev.program(rng.uniform(0.25, 25, 20_000), rng)
    g_now = dev.retain(g_ref, 86400.0, rng)
    f = drift_compensation_factor(g_ref, g_now)
    assert f > 1.3  # ((86400 + 20) / 20) ** 0.055 ~ 1.58 before the mix of nu
    restored = float(np.mean(f * g_now.astype(np.float64)))
    assert math.isclose(restored, float(np.mean(g_ref.astype(np.float64))), rel_tol=1e-9)
    with pytest.raises(DeviceError, match="positive"):
        drift_compensation_factor(g_ref, np.zeros_like(g_ref))
    with pytest.raises(DeviceError, match="shape"):
        drift_compensation_factor(g_ref, g_now[:5])


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_validates_and_round_trips(name: str) -> None:
    dev = get_preset(name)
    assert dev.name == name
    assert DeviceModel.from_dict(dev.to_dict()) == dev
    assert DeviceModel(**{k: v for k, v in vars(dev).items()}) == dev
    g = dev.program(np.linspace(dev.g_min, dev.g_max, 50), np.random.default_rng(0))
    assert g.dtype == np.float32 and np.all(np.isfinite(g)) and np.all(g >= 0)
    assert dev.is_noise_free() == (name == "ideal")


def test_ideal_preset_is_exact() -> None:
    dev = get_preset("ideal")
    target = np.random.default_rng(18).uniform(0, 40, 1000)
    np.testing.assert_array_equal(dev.program(target, np.random.default_rng(1)),
                                  target.astype(np.float32))
    np.testing.assert_array_equal(dev.retain(target, 1e6, np.random.default_rng(1)),
                                  target.astype(np.float32))
    assert dev.levels() is None and (dev.g_min, dev.g_max) == (0.0, 40.0)


def test_preset_numbers_match_sources() -> None:
    wan = get_preset("rram_wan2022").programming
    pts = np.array([0.0, 10.0, 20.0, 39.0])
    np.testing.assert_allclose(wan.sigma(pts, 40.0), [1.05, 2.4, 2.4, 1.7], atol=1e-4)
    ibm = get_preset("rram_ibm_hfox")
    assert ibm.programming.sigma(np.array([88.0]), 88.0)[0] == pytest.approx(0.011 + 0.0113 * 88)
    milo = get_preset("rram_milo2021")
    assert milo.g_max / milo.g_min == pytest.approx(4.5)
    assert milo.programming.sigma(np.array([100.0]), 225.0)[0] == pytest.approx(4.78 - 0.91)
    pcm = get_preset("pcm_joshi2020")
    assert pcm.programming.sigma(np.array([12.5]), 25.0)[0] == pytest.approx(
        0.263 + 1.965 * 0.5 - 1.173 * 0.25)
    # Wan relaxation: total spread sqrt(sigma_prog^2 + sigma_relax^2) ~ 4.0 uS after 1.5 days
    wdev = get_preset("rram_wan2022")
    relax = wdev.retention.sigma_per_ln_t * math.log(1.5 * 86400)
    assert math.hypot(2.3, relax) == pytest.approx(4.0)


def test_get_preset_unknown_lists_names() -> None:
    with pytest.raises(UnknownPresetError, match="rram_wan2022") as err:
        get_preset("rram_nope")
    assert isinstance(err.value, ValueError) and "rram_nope" in str(err.value)


# ----------------------------------------------------------------------------- validation

BAD_DEVICE = [
    ({"g_min": -1.0}, "g_min"),
    ({"g_min": 10.0, "g_max": 10.0}, "g_max"),
    ({"g_max": math.nan}, "g_max"),
    ({"n_levels": 1}, "n_levels"),
    ({"n_levels": 5000}, "n_levels"),
    ({"n_levels": 4.0}, "n_levels"),
    ({"n_levels": True}, "n_levels"),
    ({"level_spacing": "cubic"}, "level_spacing"),
    ({"pulse_tau": 0.0}, "pulse_tau"),
    ({"variation": -0.1}, "variation"),
    ({"stuck_at_gmin": 1.5}, "stuck_at_gmin"),
    ({"stuck_at_gmax": -0.1}, "stuck_at_gmax"),
    ({"stuck_at_gmin": 0.6, "stuck_at_gmax": 0.6}, "stuck_at_gmin \\+ stuck_at_gmax"),
    ({"programming": "big"}, "programming"),
    ({"read": 0.1}, "read"),
    ({"retention": "pcm"}, "retention"),
    ({"name": ""}, "name"),
    ({"g_max": "40"}, "g_max"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_DEVICE)
def test_device_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(DeviceConfigError, match=f"DeviceModel.{field}"):
        DeviceModel(**kwargs)
    with pytest.raises(DeviceConfigError, match=field):
        PRESETS["ideal"].replace(**kwargs)


BAD_SIGMA = [
    ({"kind": "cubic"}, "kind"),
    ({"coeffs": (math.nan,)}, "coeffs\\[0\\]"),
    ({"coeffs": ()}, "coeffs"),
    ({"coeffs": "1.0"}, "coeffs"),
    ({"kind": "constant", "coeffs": (1.0, 2.0)}, "coeffs"),
    ({"kind": "proportional", "coeffs": (-0.1,)}, "coeffs\\[0\\]"),
    ({"kind": "constant", "coeffs": (0.1,), "relative_to_gmax": True}, "relative_to_gmax"),
    ({"kind": "polynomial", "coeffs": (0.1,), "relative_to_gmax": "yes"}, "relative_to_gmax"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_SIGMA)
def test_sigma_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(DeviceConfigError, match=f"SigmaModel.{field}"):
        SigmaModel(**kwargs)


BAD_RETENTION = [
    ({"kind": "decay"}, "kind"),
    ({"t0": 0.0}, "t0"),
    ({"nu_mean": -0.01}, "nu_mean"),
    ({"nu_std": -0.01}, "nu_std"),
    ({"sigma_base": -1.0}, "sigma_base"),
    ({"sigma_per_ln_t": -0.1}, "sigma_per_ln_t"),
    ({"mean_per_ln_t": math.inf}, "mean_per_ln_t"),
    ({"t_ref": 0.0}, "t_ref"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_RETENTION)
def test_retention_config_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(DeviceConfigError, match=f"RetentionModel.{field}"):
        RetentionModel(**kwargs)


def test_replace_rejects_unknown_fields_and_lists_valid_ones() -> None:
    with pytest.raises(DeviceConfigError, match="g_maxx") as err:
        PRESETS["ideal"].replace(g_maxx=30.0)
    assert "g_max" in str(err.value) and "retention" in str(err.value)
    with pytest.raises(DeviceConfigError, match="nu"):
        PRESETS["ideal"].replace(retention={"nu": 0.1})
    with pytest.raises(DeviceConfigError, match="mapping"):
        DeviceModel.from_dict([("g_max", 1.0)])  # type: ignore[arg-type]


def test_replace_with_nested_objects_and_mappings() -> None:
    pcm = get_preset("pcm_joshi2020")
    merged = pcm.replace(retention={"nu_mean": 0.1}, programming=SigmaModel("constant", (0.2,)))
    assert merged.retention.kind == "pcm_drift" and merged.retention.nu_mean == 0.1
    assert merged.retention.t0 == pcm.retention.t0
    assert merged.programming == SigmaModel("constant", (0.2,))
    assert pcm.retention.nu_mean == 0.055  # original untouched
    d = DeviceModel.from_dict({"g_max": 30, "n_levels": 8,
                               "read": {"kind": "proportional", "coeffs": [0.02]}})
    assert d.g_max == 30.0 and isinstance(d.g_max, float) and d.read.coeffs == (0.02,)
    assert d.to_dict()["read"] == {"kind": "proportional", "coeffs": [0.02],
                                   "relative_to_gmax": False}
