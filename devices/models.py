"""Physics of one memory device: conductance levels, programming error, read noise, retention.

Units: conductance in microsiemens (uS), time in seconds. Every random draw comes from an
explicitly passed ``numpy.random.Generator``; all draws are vectorised over devices and happen
in a fixed order, so the same seed gives the same devices.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np

SIGMA_KINDS: tuple[str, ...] = ("constant", "proportional", "polynomial")
RETENTION_KINDS: tuple[str, ...] = ("none", "pcm_drift", "rram_relaxation")
LEVEL_SPACINGS: tuple[str, ...] = ("linear", "log", "pulse")
MAX_LEVELS = 4096


class DeviceError(ValueError):
    """Raised for invalid arrays or arguments passed to a device model."""


class DeviceConfigError(DeviceError):
    """Raised for an invalid device configuration; the message names the field and range."""


# ----------------------------------------------------------------------------- validation


def _real(owner: str, name: str, value: Any, what: str) -> float:
    """``value`` as a finite float, else DeviceConfigError naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise DeviceConfigError(f"{owner}.{name} must be {what}, got {value!r}")
    return float(value)


def _check_fields(owner: str, cls: type, given: Mapping[str, Any]) -> None:
    valid = [f.name for f in fields(cls)]
    unknown = sorted(k for k in given if k not in valid)
    if unknown:
        raise DeviceConfigError(
            f"{owner}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"valid fields: {', '.join(valid)}"
        )


def _as_mapping(owner: str, d: Any) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise DeviceConfigError(f"{owner} expects a mapping of field names to values, got {d!r}")
    return d


def _finite_array(name: str, x: Any) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DeviceError(f"{name} must be an array of real numbers ({exc})") from None
    if not np.all(np.isfinite(a)):
        raise DeviceError(f"{name} contains NaN or infinite values")
    return a


def _float_dtype(x: np.ndarray) -> np.dtype:
    """float32 for float32 input, float64 otherwise."""
    return np.dtype(np.float32) if x.dtype == np.float32 else np.dtype(np.float64)


# ----------------------------------------------------------------------------- SigmaModel


@dataclass(frozen=True)
class SigmaModel:
    """sigma(G) in uS.

    kind ``constant`` -> c0; ``proportional`` -> c0 * G; ``polynomial`` -> sum_i c_i * u**i with
    u = G / g_max if ``relative_to_gmax`` else u = G (uS). The result is clipped at >= 0.
    ``constant`` and ``proportional`` take exactly one coefficient c0 >= 0 and
    ``relative_to_gmax`` must stay False for them.
    """

    kind: Literal["constant", "proportional", "polynomial"] = "constant"
    coeffs: tuple[float, ...] = (0.0,)
    relative_to_gmax: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SIGMA_KINDS:
            raise DeviceConfigError(
                f"SigmaModel.kind must be one of {SIGMA_KINDS}, got {self.kind!r}"
            )
        raw = self.coeffs
        if isinstance(raw, (str, bytes, Mapping)) or not hasattr(raw, "__iter__"):
            raise DeviceConfigError(
                f"SigmaModel.coeffs must be a sequence of finite numbers, got {raw!r}"
            )
        coeffs = tuple(
            _real("SigmaModel", f"coeffs[{i}]", c, "a finite number") for i, c in enumerate(raw)
        )
        if not coeffs:
            raise DeviceConfigError("SigmaModel.coeffs must hold at least one coefficient")
        if self.kind != "polynomial":
            if len(coeffs) != 1:
                raise DeviceConfigError(
                    f"SigmaModel.coeffs must hold exactly one coefficient for kind "
                    f"{self.kind!r}, got {len(coeffs)}"
                )
            if coeffs[0] < 0:
                raise DeviceConfigError(
                    f"SigmaModel.coeffs[0] must be >= 0 for kind {self.kind!r}, got {coeffs[0]}"
                )
        if not isinstance(self.relative_to_gmax, (bool, np.bool_)):
            raise DeviceConfigError(
                f"SigmaModel.relative_to_gmax must be true or false, got {self.relative_to_gmax!r}"
            )
        if self.relative_to_gmax and self.kind != "polynomial":
            raise DeviceConfigError(
                f"SigmaModel.relative_to_gmax only applies to kind 'polynomial', "
                f"not {self.kind!r}"
            )
        object.__setattr__(self, "coeffs", coeffs)
        object.__setattr__(self, "relative_to_gmax", bool(self.relative_to_gmax))

    def sigma(self, g: np.ndarray, g_max: float) -> np.ndarray:
        """sigma (uS) at conductance ``g`` (uS); float32 for float32 input, else float64."""
        g = np.asarray(g)
        dt = _float_dtype(g)
        if self.kind == "constant":
            return np.full(g.shape, max(self.coeffs[0], 0.0), dtype=dt)
        if self.kind == "proportional":
            out = np.asarray(g, dtype=dt) * dt.type(self.coeffs[0])
            return np.maximum(out, 0, out=out)
        if self.relative_to_gmax and not g_max > 0:
            raise DeviceError(f"SigmaModel.sigma needs g_max > 0 (relative_to_gmax), got {g_max}")
        u = np.asarray(g, dtype=dt) * dt.type(1.0 / g_max) if self.relative_to_gmax else g
        u = np.asarray(u, dtype=dt)
        out = np.full(g.shape, self.coeffs[-1], dtype=dt)
        for c in self.coeffs[-2::-1]:  # Horner, over the (few) coefficients only
            out *= u
            out += dt.type(c)
        return np.maximum(out, 0, out=out)

    def is_zero(self) -> bool:
        """True when sigma is identically zero."""
        return all(c == 0.0 for c in self.coeffs)

    def replace(self, **overrides: Any) -> SigmaModel:
        """Validated copy with fields replaced; unknown names raise DeviceConfigError."""
        _check_fields("SigmaModel", SigmaModel, overrides)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (str, list of float, bool)."""
        return {
            "kind": self.kind,
            "coeffs": list(self.coeffs),
            "relative_to_gmax": self.relative_to_gmax,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SigmaModel:
        """Inverse of ``to_dict``; missing fields take their defaults."""
        return cls().replace(**_as_mapping("SigmaModel.from_dict", d))


# ----------------------------------------------------------------------------- RetentionModel


@dataclass(frozen=True)
class RetentionModel:
    """Conductance change t seconds after programming.

    kind ``none``: unchanged. ``pcm_drift``: G(t) = G0 * ((t + t0) / t0) ** -nu with
    nu ~ N(nu_mean, nu_std) per device, clipped >= 0. ``rram_relaxation``: with
    L = ln(t / t_ref) for t >= t_ref and L = 0 for 0 < t < t_ref,
    G(t) = G0 + mean_per_ln_t * L + N(0, sigma_base + sigma_per_ln_t * L). G(t) is clipped
    at >= 0 and t = 0 leaves G unchanged. Fields not used by ``kind`` are ignored.
    """

    kind: Literal["none", "pcm_drift", "rram_relaxation"] = "none"
    t0: float = 20.0
    nu_mean: float = 0.0
    nu_std: float = 0.0
    mean_per_ln_t: float = 0.0
    sigma_base: float = 0.0
    sigma_per_ln_t: float = 0.0
    t_ref: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in RETENTION_KINDS:
            raise DeviceConfigError(
                f"RetentionModel.kind must be one of {RETENTION_KINDS}, got {self.kind!r}"
            )
        checks = {
            "t0": ("a finite number > 0 (seconds)", lambda v: v > 0),
            "nu_mean": ("a finite number >= 0", lambda v: v >= 0),
            "nu_std": ("a finite number >= 0", lambda v: v >= 0),
            "mean_per_ln_t": ("a finite number (uS per ln s)", lambda v: True),
            "sigma_base": ("a finite number >= 0 (uS)", lambda v: v >= 0),
            "sigma_per_ln_t": ("a finite number >= 0 (uS per ln s)", lambda v: v >= 0),
            "t_ref": ("a finite number > 0 (seconds)", lambda v: v > 0),
        }
        for name, (what, ok) in checks.items():
            v = _real("RetentionModel", name, getattr(self, name), what)
            if not ok(v):
                raise DeviceConfigError(f"RetentionModel.{name} must be {what}, got {v!r}")
            object.__setattr__(self, name, v)

    def is_none(self) -> bool:
        """True when retention never changes a conductance."""
        if self.kind == "none":
            return True
        if self.kind == "pcm_drift":
            return self.nu_mean == 0.0 and self.nu_std == 0.0
        return self.mean_per_ln_t == 0.0 and self.sigma_base == 0.0 and self.sigma_per_ln_t == 0.0

    def ln_t(self, t: float) -> float:
        """The relaxation log term L(t) = ln(t / t_ref) for t >= t_ref, else 0."""
        return math.log(t / self.t_ref) if t >= self.t_ref else 0.0

    def replace(self, **overrides: Any) -> RetentionModel:
        """Validated copy with fields replaced; unknown names raise DeviceConfigError."""
        _check_fields("RetentionModel", RetentionModel, overrides)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str / float."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetentionModel:
        """Inverse of ``to_dict``; missing fields take their defaults."""
        return cls().replace(**_as_mapping("RetentionModel.from_dict", d))


# ----------------------------------------------------------------------------- DeviceModel


@dataclass(frozen=True, eq=False)
class ProgrammingResult:
    """Conductances after programming plus which devices are stuck.

    ``stuck`` is int8 shaped like ``g``: 0 healthy, -1 stuck at g_min, +1 stuck at g_max.
    ``n_clipped``: healthy devices whose drawn conductance was negative and was clipped to 0
    (programming error and variation are not truncated at g_max, only at 0: a real device
    cannot have a negative conductance, but an over-programmed one can exceed the nominal
    window; the clipping biases noisy devices near g_min upwards, hence the count).
    """

    g: np.ndarray
    stuck: np.ndarray
    n_clipped: int = 0

    @property
    def n_stuck_gmin(self) -> int:
        return int(np.count_nonzero(self.stuck < 0))

    @property
    def n_stuck_gmax(self) -> int:
        return int(np.count_nonzero(self.stuck > 0))

    @property
    def n_faulty(self) -> int:
        return int(np.count_nonzero(self.stuck))


_NESTED: dict[str, type] = {}  # filled after DeviceModel is defined


@dataclass(frozen=True)
class DeviceModel:
    """One memory device type: conductance window, levels, programming error, noise, faults.

    ``program`` draws, in this fixed order and always for every device (common random
    numbers: switching one effect on or off leaves the other effects' draws unchanged),
    1. programming error z1 ~ N(0, 1), 2. variation z2 ~ N(0, 1), 3. fault u ~ U[0, 1):
    g = max((q + sigma_prog(q) * z1) * (1 + variation * z2), 0) with q = quantize(target);
    then u < stuck_at_gmin -> g_min, stuck_at_gmin <= u < stuck_at_gmin + stuck_at_gmax -> g_max.
    """

    name: str = "ideal"
    g_min: float = 0.0  # uS, lowest programmable conductance (off state)
    g_max: float = 40.0  # uS
    n_levels: int = 0  # 0 = continuous (no level quantisation); else 2..4096
    level_spacing: Literal["linear", "log", "pulse"] = "linear"
    pulse_tau: float = 0.5  # 'pulse': g(x) = (g_inf - g_min)(1 - exp(-x/tau)) + g_min
    programming: SigmaModel = field(default_factory=SigmaModel)  # write error sigma vs target G
    read: SigmaModel = field(default_factory=SigmaModel)  # per-read noise sigma vs G
    variation: float = 0.0  # device-to-device relative sigma (multiplicative, fixed per device)
    stuck_at_gmin: float = 0.0  # fraction of devices stuck at g_min
    stuck_at_gmax: float = 0.0  # fraction stuck at g_max
    retention: RetentionModel = field(default_factory=RetentionModel)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DeviceConfigError(f"DeviceModel.name must be a non-empty string, got {self.name!r}")
        g_min = _real("DeviceModel", "g_min", self.g_min, "a finite number >= 0 (uS)")
        if g_min < 0:
            raise DeviceConfigError(f"DeviceModel.g_min must be >= 0 uS, got {g_min}")
        g_max = _real("DeviceModel", "g_max", self.g_max, "a finite number > g_min (uS)")
        if not g_max > g_min:
            raise DeviceConfigError(
                f"DeviceModel.g_max must be > g_min = {g_min} uS, got {g_max}"
            )
        n = self.n_levels
        if (
            isinstance(n, bool)
            or not isinstance(n, Integral)
            or not (n == 0 or 2 <= n <= MAX_LEVELS)
        ):
            raise DeviceConfigError(
                f"DeviceModel.n_levels must be an integer, 0 (continuous) or 2..{MAX_LEVELS}, "
                f"got {n!r}"
            )
        if self.level_spacing not in LEVEL_SPACINGS:
            raise DeviceConfigError(
                f"DeviceModel.level_spacing must be one of {LEVEL_SPACINGS}, "
                f"got {self.level_spacing!r}"
            )
        if self.level_spacing == "log" and n > 0 and not g_min > 0:
            raise DeviceConfigError(
                f"DeviceModel.g_min must be > 0 uS for level_spacing 'log' (geometric levels "
                f"between g_min and g_max), got {g_min}"
            )
        tau = _real("DeviceModel", "pulse_tau", self.pulse_tau, "a finite number > 0")
        if not tau > 0:
            raise DeviceConfigError(f"DeviceModel.pulse_tau must be a finite number > 0, got {tau}")
        for name in ("programming", "read"):
            if not isinstance(getattr(self, name), SigmaModel):
                raise DeviceConfigError(
                    f"DeviceModel.{name} must be a SigmaModel (or a mapping via replace / "
                    f"from_dict), got {getattr(self, name)!r}"
                )
        if not isinstance(self.retention, RetentionModel):
            raise DeviceConfigError(
                f"DeviceModel.retention must be a RetentionModel (or a mapping via replace / "
                f"from_dict), got {self.retention!r}"
            )
        var = _real("DeviceModel", "variation", self.variation, "a finite number >= 0")
        if var < 0:
            raise DeviceConfigError(f"DeviceModel.variation must be >= 0, got {var}")
        fractions = {}
        for name in ("stuck_at_gmin", "stuck_at_gmax"):
            p = _real("DeviceModel", name, getattr(self, name), "a fraction in [0, 1]")
            if not 0.0 <= p <= 1.0:
                raise DeviceConfigError(f"DeviceModel.{name} must be a fraction in [0, 1], got {p}")
            fractions[name] = p
        if fractions["stuck_at_gmin"] + fractions["stuck_at_gmax"] > 1.0:
            raise DeviceConfigError(
                "DeviceModel.stuck_at_gmin + stuck_at_gmax must be <= 1, got "
                f"{fractions['stuck_at_gmin']} + {fractions['stuck_at_gmax']}"
            )
        for name, value in (
            ("g_min", g_min),
            ("g_max", g_max),
            ("n_levels", int(n)),
            ("pulse_tau", tau),
            ("variation", var),
            *fractions.items(),
        ):
            object.__setattr__(self, name, value)

    # ---------------------------------------------------------------- levels

    @property
    def g_range(self) -> float:
        """g_max - g_min in uS."""
        return self.g_max - self.g_min

    def levels(self) -> np.ndarray | None:
        """Sorted level conductances (float64, uS), or None when continuous (n_levels = 0).

        linear: equally spaced; log: geometric (g_min > 0); pulse: saturating-exponential
        response to k = 0..n-1 equal pulses, g(x) = g_min + (g_max - g_min)
        (1 - exp(-x/tau)) / (1 - exp(-1/tau)) with x = k / (n - 1), i.e.
        (g_inf - g_min)(1 - exp(-x/tau)) + g_min with g_inf chosen so g(1) = g_max.
        The end levels are exactly g_min and g_max.
        """
        n = self.n_levels
        if n == 0:
            return None
        if self.level_spacing == "linear":
            lv = np.linspace(self.g_min, self.g_max, n)
        elif self.level_spacing == "log":
            lv = np.geomspace(self.g_min, self.g_max, n)
        else:
            x = np.linspace(0.0, 1.0, n)
            lv = self.g_min + self.g_range * (
                -np.expm1(-x / self.pulse_tau) / -math.expm1(-1.0 / self.pulse_tau)
            )
        lv[0], lv[-1] = self.g_min, self.g_max
        return lv

    def level_index(self, g_target: Any) -> np.ndarray:
        """Index (int32) of the nearest level for each target (clipped to the window first).

        Ties go to the lower level. Raises DeviceError for a continuous device.
        """
        lv = self.levels()
        if lv is None:
            raise DeviceError(f"device {self.name!r} is continuous (n_levels = 0): no level index")
        g = np.clip(_finite_array("g_target", g_target), self.g_min, self.g_max)
        idx = np.clip(np.searchsorted(lv, g, side="left"), 1, lv.size - 1)
        lower_closer = (g - lv[idx - 1]) <= (lv[idx] - g)
        return np.asarray(idx - lower_closer, dtype=np.int32)

    def quantize(self, g_target: Any) -> np.ndarray:
        """Clip targets to [g_min, g_max] and snap to the nearest level; float32 (uS)."""
        lv = self.levels()
        if lv is None:
            g = np.clip(_finite_array("g_target", g_target), self.g_min, self.g_max)
            return np.asarray(g, dtype=np.float32)
        return np.asarray(lv[self.level_index(g_target)], dtype=np.float32)

    # ---------------------------------------------------------------- programming

    def program_with_report(self, g_target: Any, rng: np.random.Generator) -> ProgrammingResult:
        """Program devices to ``g_target`` (uS); returns conductances and the stuck mask.

        See the class docstring for the draw order and the model.
        """
        _check_rng(rng, "program")
        q = self.quantize(g_target).astype(np.float64)
        shape = q.shape
        z_prog = rng.standard_normal(shape)
        z_var = rng.standard_normal(shape)
        u_fault = rng.random(shape)
        g = q
        if not self.programming.is_zero():
            g = g + self.programming.sigma(q, self.g_max) * z_prog
        if self.variation > 0:
            g = g * (1.0 + self.variation * z_var)
        negative = np.asarray(g < 0.0)
        g = np.array(np.maximum(g, 0.0), dtype=np.float32)  # an array also for 0-d targets
        stuck = np.zeros(shape, dtype=np.int8)
        p_lo, p_hi = self.stuck_at_gmin, self.stuck_at_gmax
        if p_lo > 0:
            low = u_fault < p_lo
            g[low] = self.g_min
            stuck[low] = -1
        if p_hi > 0:
            high = (u_fault >= p_lo) & (u_fault < p_lo + p_hi)
            g[high] = self.g_max
            stuck[high] = 1
        n_clipped = int(np.count_nonzero(negative & (stuck == 0)))
        return ProgrammingResult(g=g, stuck=stuck, n_clipped=n_clipped)

    def program(self, g_target: Any, rng: np.random.Generator) -> np.ndarray:
        """Programmed conductances (float32, uS): quantize, + N(0, programming sigma),
        * (1 + variation * N(0, 1)), clip >= 0, then stuck-at faults override."""
        return self.program_with_report(g_target, rng).g

    def read_sigma(self, g: Any) -> np.ndarray:
        """Per-read noise sigma (uS) at conductance ``g`` (the simulator draws the noise)."""
        return self.read.sigma(np.asarray(g), self.g_max)

    # ---------------------------------------------------------------- retention

    def retain(
        self,
        g_programmed: Any,
        t: float,
        rng: np.random.Generator | None = None,
        *,
        stuck: np.ndarray | None = None,
    ) -> np.ndarray:
        """Conductances (float32, uS) ``t`` seconds after programming, clipped at >= 0.

        ``rng`` may be None only when nothing is drawn (t = 0 or kind 'none'). Devices where
        ``stuck`` (a mask shaped like ``g_programmed``, e.g. ``ProgrammingResult.stuck``) is
        nonzero keep their conductance. One N(0, 1) per device is drawn (nu for pcm_drift,
        the relaxation spread for rram_relaxation).
        """
        if isinstance(t, bool) or not isinstance(t, Real) or not (math.isfinite(t) and t >= 0):
            raise DeviceError(f"retention time t must be a finite number >= 0 seconds, got {t!r}")
        g0 = _finite_array("g_programmed", g_programmed)
        ret = self.retention
        if t == 0 or ret.kind == "none":
            return g0.astype(np.float32)
        _check_rng(rng, "retain")
        z = rng.standard_normal(g0.shape)
        if ret.kind == "pcm_drift":
            nu = np.maximum(ret.nu_mean + ret.nu_std * z, 0.0)
            g = g0 * np.exp(-nu * math.log((t + ret.t0) / ret.t0))
        else:
            ln_t = ret.ln_t(t)
            sigma = ret.sigma_base + ret.sigma_per_ln_t * ln_t
            g = g0 + ret.mean_per_ln_t * ln_t + sigma * z
        g = np.maximum(g, 0.0)
        if stuck is not None:
            mask = np.asarray(stuck)
            if mask.shape != g0.shape:
                raise DeviceError(
                    f"stuck mask shape {mask.shape} must match g_programmed shape {g0.shape}"
                )
            g = np.where(mask != 0, g0, g)
        return np.asarray(g, dtype=np.float32)

    # ---------------------------------------------------------------- config helpers

    def is_noise_free(self) -> bool:
        """True when programming, reading and retention add no error and nothing is stuck."""
        return (
            self.programming.is_zero()
            and self.read.is_zero()
            and self.variation == 0.0
            and self.stuck_at_gmin == 0.0
            and self.stuck_at_gmax == 0.0
            and self.retention.is_none()
        )

    def replace(self, **overrides: Any) -> DeviceModel:
        """Validated ``dataclasses.replace``.

        Unknown names raise DeviceConfigError listing the valid fields. ``programming``,
        ``read`` and ``retention`` take a model object (replaces the whole sub-model) or a
        mapping (merged onto the current sub-model, e.g. ``retention={"nu_mean": 0.1}``).
        """
        _check_fields("DeviceModel", DeviceModel, overrides)
        resolved = dict(overrides)
        for name in _NESTED:
            if name in resolved and isinstance(resolved[name], Mapping):
                resolved[name] = getattr(self, name).replace(**resolved[name])
        return dataclasses.replace(self, **resolved)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of primitives (TOML chip files, HDF5 chip instances)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if f.name in _NESTED else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceModel:
        """Inverse of ``to_dict``; missing fields (also nested ones) take their defaults."""
        return cls().replace(**_as_mapping("DeviceModel.from_dict", d))


_NESTED.update(programming=SigmaModel, read=SigmaModel, retention=RetentionModel)


def _check_rng(rng: Any, where: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise DeviceError(
            f"{where} needs an explicit numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {rng!r}"
        )


def drift_compensation_factor(g_reference: Any, g_now: Any) -> float:
    """Global scale sum(g_reference) / sum(g_now) that restores the mean conductance read on a
    reference probe (e.g. the same columns read right after programming and at time t)."""
    ref = _finite_array("g_reference", g_reference)
    now = _finite_array("g_now", g_now)
    if ref.shape != now.shape:
        raise DeviceError(f"g_reference shape {ref.shape} must match g_now shape {now.shape}")
    s_ref, s_now = float(ref.sum()), float(now.sum())
    if not s_now > 0 or not s_ref > 0:
        raise DeviceError(
            f"drift compensation needs positive summed conductances, got "
            f"sum(g_reference) = {s_ref}, sum(g_now) = {s_now}"
        )
    return s_ref / s_now
