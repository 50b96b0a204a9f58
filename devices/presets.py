"""Named device presets; every number cites its source.

Sources (see also docs/devices.md):
- NeuRRAM: W. Wan et al., "A compute-in-memory chip based on resistive random-access memory",
  Nature 608, 504-512 (2022); programming-error fit as modelled in Sandia CrossSim / IBM aihwkit.
- IBM HfOx/CMO RRAM as modelled in IBM aihwkit (ReRAM inference noise models).
- V. Milo et al., "Optimized programming algorithms for multilevel RRAM in hardware neural
  networks", IRPS 2021, as modelled in Sandia CrossSim.
- V. Joshi et al., "Accurate deep neural network inference using computational phase-change
  memory", Nat. Commun. 11, 2473 (2020), as modelled in IBM aihwkit (PCMLikeNoiseModel).
Read noise: the IBM aihwkit documentation gives about 1 % per read for RRAM; we model it as a
constant sigma of 1 % of g_max (not of the range g_max - g_min, which is smaller when
g_min > 0: 0.88 uS instead of 0.79 uS for rram_ibm_hfox, 2.25 uS instead of 1.75 uS for
rram_milo2021). Stuck-at faults are 0 in every preset (no source
figure per device); see the fault ladder in docs/devices.md.
"""

from __future__ import annotations

import math

from devices.models import DeviceConfigError, DeviceModel, RetentionModel, SigmaModel

# --- NeuRRAM (Wan et al., Nature 2022) ---------------------------------------------------
# Programming sigma: cubic in u = G / g_max through the published fit points (CrossSim cubic /
# aihwkit polynomial of Wan 2022): 1.05 uS at G = 0, 2.4 uS at 10 and 20 uS, 1.7 uS at 39 uS
# (g_max = 40 uS). Solving the 4x4 Vandermonde system gives the coefficients below; the curve
# peaks at ~2.51 uS near 16 uS and is 1.72 uS at 40 uS.
_WAN_PROG_COEFFS = (1.05, 9.224017, -17.544102, 8.992136)
# Relaxation: the measured spread is 2.3 uS at 1 s and 4.0 uS after ~1.5 days (Wan 2022).
# The 1-s spread is already the programming error (~2.3-2.5 uS mid-range, above), so the
# relaxation term carries only the growth, added in quadrature:
# sigma_relax(1.5 d) = sqrt(4.0**2 - 2.3**2) = 3.27 uS over ln(1.5 * 86400 s / 1 s) = 11.77.
_WAN_T_LONG = 1.5 * 86400.0  # s, "after ~1.5 days" (Wan 2022)
_WAN_SIGMA_PER_LN_T = math.sqrt(4.0**2 - 2.3**2) / math.log(_WAN_T_LONG)  # ~0.278 uS per ln s

RRAM_WAN2022 = DeviceModel(
    name="rram_wan2022",
    g_min=0.0,  # uS, range "about 0-40 uS" (Wan 2022); linear levels need no g_min > 0
    g_max=40.0,  # uS (Wan 2022)
    n_levels=16,  # 4-bit weights (Wan 2022)
    level_spacing="linear",
    programming=SigmaModel("polynomial", _WAN_PROG_COEFFS, relative_to_gmax=True),
    read=SigmaModel("constant", (0.01 * 40.0,)),  # 1 % of g_max per read (aihwkit docs: ~1 %)
    retention=RetentionModel(
        kind="rram_relaxation",
        mean_per_ln_t=0.0,  # no mean shift reported for NeuRRAM
        sigma_base=0.0,  # the 1-s spread is the programming error (see above)
        sigma_per_ln_t=_WAN_SIGMA_PER_LN_T,
        t_ref=1.0,  # s, first measurement time (Wan 2022)
    ),
)

# --- IBM HfOx / CMO RRAM (as modelled in IBM aihwkit) ------------------------------------
RRAM_IBM_HFOX = DeviceModel(
    name="rram_ibm_hfox",
    g_min=9.0,  # uS (aihwkit IBM CMO RRAM model)
    g_max=88.0,  # uS (aihwkit IBM CMO RRAM model)
    n_levels=35,  # "about 35 distinguishable states" (aihwkit IBM CMO RRAM model)
    level_spacing="linear",
    # 2 % acceptance-window programming: sigma = 0.011 + 0.0113 G uS (aihwkit CMO fit)
    programming=SigmaModel("polynomial", (0.011, 0.0113), relative_to_gmax=False),
    read=SigmaModel("constant", (0.01 * 88.0,)),  # 1 % of g_max per read (aihwkit docs: ~1 %)
    retention=RetentionModel(
        kind="rram_relaxation",
        mean_per_ln_t=-0.089,  # uS per ln s, mean relaxation (aihwkit CMO fit)
        sigma_base=0.41,  # uS (aihwkit CMO fit: sigma = 0.042 ln t + 0.41)
        sigma_per_ln_t=0.042,  # uS per ln s (aihwkit CMO fit)
        t_ref=1.0,  # s, t in seconds in the fit
    ),
)

# --- Milo et al., IRPS 2021 (as modelled in Sandia CrossSim) -----------------------------
RRAM_MILO2021 = DeviceModel(
    name="rram_milo2021",
    g_min=50.0,  # uS (Milo 2021 via CrossSim), on/off = 225 / 50 = 4.5
    g_max=225.0,  # uS (Milo 2021 via CrossSim)
    n_levels=0,  # continuous: the CrossSim model programs analog targets (no level count given)
    programming=SigmaModel("polynomial", (4.78, -0.0091), relative_to_gmax=False),  # CrossSim fit
    read=SigmaModel("constant", (0.01 * 225.0,)),  # 1 % of g_max per read (aihwkit: ~1 %)
    retention=RetentionModel(),  # no retention figure in the source
)

# --- PCM, Joshi et al., Nat. Commun. 2020 (as modelled in IBM aihwkit) -------------------
# Drift exponent: aihwkit fits mu_nu = clip(-0.0155 ln gT + 0.0244, 0.049, 0.1) and
# sigma_nu = clip(-0.0125 ln gT - 0.0059, 0.008, 0.045) with gT = G / g_max; over gT in
# [0.1, 1] that is mu_nu 0.049-0.060 and sigma_nu 0.008-0.023. One per-device distribution
# for all G: nu ~ N(0.055, 0.015).
# Read noise: aihwkit's 1/f model sigma = G Q_s sqrt(ln((t + t_read) / (2 t_read))) with
# Q_s = min(0.0088 / gT**0.65, 0.2), t_read = 250 ns. Simplified to a G-proportional sigma
# 0.05 G: the 1/f factor at t = 1 h is 0.042 at gT = 1, 0.053 at gT = 0.7, 0.066 at gT = 0.5.
PCM_JOSHI2020 = DeviceModel(
    name="pcm_joshi2020",
    g_min=0.25,  # uS, lowest reliably programmed state (Joshi 2020: 0.25-25 uS)
    g_max=25.0,  # uS (Joshi 2020; aihwkit PCMLikeNoiseModel g_max = 25)
    n_levels=0,  # analog iterative programming (Joshi 2020)
    # sigma = 0.263 + 1.965 x - 1.173 x^2 uS, x = G / g_max (aihwkit PCM programming fit)
    programming=SigmaModel("polynomial", (0.263, 1.965, -1.173), relative_to_gmax=True),
    read=SigmaModel("proportional", (0.05,)),  # 1/f read noise simplified (see above)
    retention=RetentionModel(
        kind="pcm_drift",
        t0=20.0,  # s (aihwkit PCM model)
        nu_mean=0.055,  # drift exponent mean (aihwkit fit, see above)
        nu_std=0.015,  # drift exponent device spread (aihwkit fit, see above)
    ),
)

PRESETS: dict[str, DeviceModel] = {
    "ideal": DeviceModel(name="ideal"),  # 0-40 uS, continuous, noise-free, no faults
    "rram_wan2022": RRAM_WAN2022,
    "rram_ibm_hfox": RRAM_IBM_HFOX,
    "rram_milo2021": RRAM_MILO2021,
    "pcm_joshi2020": PCM_JOSHI2020,
}


class UnknownPresetError(DeviceConfigError):
    """Raised by get_preset for a name that is not in PRESETS."""


def get_preset(name: str) -> DeviceModel:
    """The preset DeviceModel called ``name``; unknown names raise UnknownPresetError."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise UnknownPresetError(
            f"unknown device preset {name!r}; choose one of: {', '.join(PRESETS)}"
        ) from None
