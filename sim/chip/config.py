"""Chip description files: TOML -> a validated, frozen :class:`ChipConfig`.

Sections (every key optional; see docs/chip_file.md):

- ``[chip]`` grid_rows, grid_cols, core_rows, core_cols, slot_size, clock_mhz
- ``[device]`` preset plus any :class:`devices.models.DeviceModel` field as an override;
  sub-tables ``[device.programming]``, ``[device.read]``, ``[device.retention]``
- ``[dac]`` / ``[adc]`` the fields of :class:`devices.converters.DACConfig` / ``ADCConfig``
- ``[mapping]`` encoding, scaling, placement, activation_bits, psum_bits, balance_correction
- ``[retention]`` time_s, drift_compensation
- ``[simulation]`` batch_chunk, calibration_samples, skip_zero_inputs
- ``[costs]`` energy and area constants of :class:`sim.costs.constants.CostConfig`
- ``[noc]`` the packet network (:class:`sim.noc.config.NocConfig`; its mesh is the ``[chip]`` grid)

Unknown sections or keys, wrong types and out-of-range values raise :class:`ChipConfigError`
naming the file, the section, the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from devices.converters import (
    ADC_CALIBRATIONS,
    ADC_GRANULARITIES,
    DAC_MODES,
    MAX_BITS,
    ADCConfig,
    DACConfig,
)
from devices.models import (
    LEVEL_SPACINGS,
    MAX_LEVELS,
    RETENTION_KINDS,
    SIGMA_KINDS,
    DeviceModel,
    RetentionModel,
    SigmaModel,
)
from devices.presets import PRESETS, get_preset
from mappings import fit
from mappings.encodings import ENCODINGS, SCALINGS
from mappings.fit import ChipGeometrySpec
from mappings.placement import METHODS as PLACEMENT_METHODS
from mappings.safe_files import atomic_write, read_toml
from mappings.tiling import ChipPlan
from sim.costs.constants import CostConfig
from sim.noc.config import NocConfig, NocConfigError, noc_config_from_dict

DEFAULT_PRESET = "rram_wan2022"
DEFAULT_CHIP_RESOURCE = "default_chip.toml"


class ChipConfigError(ValueError):
    """An invalid chip description: the message names the file, section, key and range."""


# ------------------------------------------------------------------------------ sections


@dataclass(frozen=True)
class ChipGeometry:
    """``[chip]``: a grid of crossbar cores and the packet slot width."""

    grid_rows: int = 8
    grid_cols: int = 8
    core_rows: int = 256  # crossbar rows (inputs; two per input for 'differential')
    core_cols: int = 256  # crossbar columns (outputs; one is the 'offset' reference)
    slot_size: int = 64  # activations per packet; ScRRAMBLe slot width
    clock_mhz: float = 1000.0

    @property
    def n_cores(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def grid(self) -> tuple[int, int]:
        return self.grid_rows, self.grid_cols


@dataclass(frozen=True)
class MappingConfig:
    """``[mapping]``: how weights become conductances and tiles become grid cells."""

    encoding: str = "single"
    scaling: str = "core"
    placement: str = "sequential"
    activation_bits: int = 8  # bits per activation between cores; 0 = float (32-bit words)
    psum_bits: int = 16  # bits per partial sum between row tiles
    balance_correction: bool = True  # 'single': subtract g_zero * digital sum of DAC inputs


DRIFT_COMPENSATIONS: tuple[str, ...] = ("read", "oracle", "none")
# the boolean form of older chip files: true = compensation on (now measured: 'read')
DRIFT_COMPENSATION_BOOLS: dict[bool, str] = {True: "read", False: "none"}


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: when the chip is read after programming, and how the decode
    compensates the global conductance drift: ``read`` (the factor is measured by reading a
    known input on the arrays, with read noise and faults; see sim.chip.programming.age),
    ``oracle`` (the exact, noise-free summed conductances: an idealisation), ``none``. The
    boolean of older files maps true -> 'read', false -> 'none'."""

    time_s: float = 0.0
    drift_compensation: str = "read"

    def __post_init__(self) -> None:
        mode = self.drift_compensation
        if isinstance(mode, bool):
            object.__setattr__(self, "drift_compensation", DRIFT_COMPENSATION_BOOLS[mode])
        elif mode not in DRIFT_COMPENSATIONS:
            raise ValueError(
                f"drift_compensation must be one of {', '.join(map(repr, DRIFT_COMPENSATIONS))} "
                f"(or true = 'read', false = 'none'), got {mode!r}"
            )


@dataclass(frozen=True)
class SimulationConfig:
    """``[simulation]``: batch size of one simulator call, ADC calibration samples, and
    whether the analog products leave out the inputs that are always zero (the images' zero
    padding; the results are the same, see docs/simulation.md)."""

    batch_chunk: int = 1000
    calibration_samples: int = 512
    skip_zero_inputs: bool = True


def _default_device() -> DeviceModel:
    return get_preset(DEFAULT_PRESET)


@dataclass(frozen=True)
class ChipConfig:
    """A whole virtual chip. ``device`` is the resolved DeviceModel (preset + overrides)."""

    chip: ChipGeometry = field(default_factory=ChipGeometry)
    device: DeviceModel = field(default_factory=_default_device)
    device_preset: str = DEFAULT_PRESET
    dac: DACConfig = field(default_factory=DACConfig)
    adc: ADCConfig = field(default_factory=ADCConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    noc: NocConfig = field(default_factory=NocConfig)
    source: str = field(default="<defaults>", compare=False)

    def __post_init__(self) -> None:
        # the packet network has one router per core: its mesh is always the [chip] grid
        if (self.noc.rows, self.noc.cols) != self.chip.grid:
            grid = self.chip.grid
            object.__setattr__(self, "noc", self.noc.replace(rows=grid[0], cols=grid[1]))

    @property
    def grid(self) -> tuple[int, int]:
        return self.chip.grid

    @property
    def n_cores(self) -> int:
        return self.chip.n_cores

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (TOML/JSON-ready); ``chip_config_from_dict`` rebuilds an equal
        config. ``[device]`` holds the preset and only the fields that differ from it."""
        out: dict[str, Any] = {"chip": dataclasses.asdict(self.chip)}
        out["device"] = {"preset": self.device_preset, **_device_diff(self)}
        for name in ("dac", "adc", "mapping", "retention", "simulation", "costs"):
            section = getattr(self, name)
            out[name] = {f.name: getattr(section, f.name) for f in fields(section)}
        out["noc"] = {k: v for k, v in self.noc.to_dict().items() if k not in _NOC_FROM_GRID}
        return out

    def to_toml(self) -> str:
        """The config as chip-file text (loads back to an equal config)."""
        return dump_toml(self.to_dict())

    def replace(self, **sections: Any) -> ChipConfig:
        """Copy with sections replaced: ``cfg.replace(mapping={"encoding": "offset"})``
        merges the keys given onto that section (validated like a chip file)."""
        d = self.to_dict()
        for name, value in sections.items():
            if name not in d:
                raise ChipConfigError(
                    f"{self.source}: unknown section [{name}]; valid sections: {', '.join(d)}"
                )
            if not isinstance(value, Mapping):
                raise ChipConfigError(f"{self.source}: [{name}] override must be a mapping")
            if name == "device" and "preset" in value:
                d[name] = dict(value)
            else:
                d[name] = {**d[name], **value}
        return chip_config_from_dict(d, source=self.source)


# ------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class _Rule:
    """Type and range of one key."""

    kind: type  # int, float, bool, str, tuple (of floats)
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo excluded
    also: tuple[int, ...] = ()  # extra allowed ints outside [lo, hi] (e.g. 0 = off)
    choices: tuple[str, ...] = ()
    bools: tuple[tuple[bool, str], ...] = ()  # str rules: booleans accepted as these choices

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            if self.choices:
                text = "one of " + ", ".join(repr(c) for c in self.choices)
                if self.bools:
                    text += " (or " + ", ".join(
                        f"{_show(b)} = {c!r}" for b, c in self.bools
                    ) + ")"
                return text
            return "a non-empty string"
        if self.kind is tuple:
            return "a list of numbers"
        noun = "an integer" if self.kind is int else "a number"
        parts = [str(v) for v in self.also]
        if self.lo is not None and self.hi is not None:
            if self.lo_open:
                parts.append(f"> {_fmt(self.lo)} and <= {_fmt(self.hi)}")
            else:
                parts.append(f"{_fmt(self.lo)}..{_fmt(self.hi)}")
        elif self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}")
        if not parts:
            return noun
        return f"{noun} {' or '.join(parts)}"

    def check(self, value: Any) -> Any:
        """The value coerced to the rule's type, or None when it does not fit."""
        k = self.kind
        if k is bool:
            return value if isinstance(value, bool) else None
        if k is str:
            if isinstance(value, bool) and self.bools:
                return dict(self.bools)[value]
            if not isinstance(value, str) or not value:
                return None
            return value if not self.choices or value in self.choices else None
        if k is tuple:
            if not isinstance(value, (list, tuple)) or not value:
                return None
            if not all(_is_number(v) and math.isfinite(v) for v in value):
                return None
            return tuple(float(v) for v in value)
        if k is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return None
        elif not _is_number(value) or not math.isfinite(value):
            return None
        v = int(value) if k is int else float(value)
        if k is int and v in self.also:
            return v
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return None
        if self.hi is not None and v > self.hi:
            return None
        return v


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_POSITIVE_COSTS = ("feature_nm", "cell_area_f2", "adc_area_doubling_bits")
_SECTION_RULES: dict[str, dict[str, _Rule]] = {
    "chip": {
        "grid_rows": _Rule(int, 1, 1024),
        "grid_cols": _Rule(int, 1, 1024),
        "core_rows": _Rule(int, 1, 65536),
        "core_cols": _Rule(int, 1, 65536),
        "slot_size": _Rule(int, 1, 65536),
        "clock_mhz": _Rule(float, 0, 1e6, lo_open=True),
    },
    "dac": {
        "bits": _Rule(int, 2, MAX_BITS, also=(0,)),
        "mode": _Rule(str, choices=DAC_MODES),
    },
    "adc": {
        "bits": _Rule(int, 1, MAX_BITS, also=(0,)),
        "calibration": _Rule(str, choices=ADC_CALIBRATIONS),
        "percentile": _Rule(float, 50, 100, lo_open=True),
        "granularity": _Rule(str, choices=ADC_GRANULARITIES),
        "noise_lsb": _Rule(float, 0),
        "columns_per_adc": _Rule(int, 1, 65536),
    },
    "mapping": {
        "encoding": _Rule(str, choices=ENCODINGS),
        "scaling": _Rule(str, choices=SCALINGS),
        "placement": _Rule(str, choices=PLACEMENT_METHODS),
        "activation_bits": _Rule(int, 0, 32),
        "psum_bits": _Rule(int, 1, 64),
        "balance_correction": _Rule(bool),
    },
    "retention": {
        "time_s": _Rule(float, 0),
        "drift_compensation": _Rule(
            str, choices=DRIFT_COMPENSATIONS, bools=tuple(DRIFT_COMPENSATION_BOOLS.items())
        ),
    },
    "simulation": {
        "batch_chunk": _Rule(int, 1, 10_000_000),
        "calibration_samples": _Rule(int, 1, 10_000_000),
        "skip_zero_inputs": _Rule(bool),
    },
    "costs": {
        f.name: _Rule(float, 0, lo_open=f.name in _POSITIVE_COSTS) for f in fields(CostConfig)
    },
}

_SECTION_CLASSES: dict[str, type] = {
    "chip": ChipGeometry,
    "dac": DACConfig,
    "adc": ADCConfig,
    "mapping": MappingConfig,
    "retention": RetentionConfig,
    "simulation": SimulationConfig,
    "costs": CostConfig,
}
SECTIONS: tuple[str, ...] = (
    "chip", "device", "dac", "adc", "mapping", "retention", "simulation", "costs", "noc",
)
_NOC_FROM_GRID = ("rows", "cols")  # [noc] keys that follow [chip] grid_rows / grid_cols

_SIGMA_RULES = {
    "kind": _Rule(str, choices=SIGMA_KINDS),
    "coeffs": _Rule(tuple),
    "relative_to_gmax": _Rule(bool),
}
_DEVICE_RULES: dict[str, _Rule | dict[str, _Rule]] = {
    "preset": _Rule(str, choices=tuple(PRESETS)),
    "name": _Rule(str),
    "g_min": _Rule(float, 0),
    "g_max": _Rule(float, 0, lo_open=True),
    "n_levels": _Rule(int, 2, MAX_LEVELS, also=(0,)),
    "level_spacing": _Rule(str, choices=LEVEL_SPACINGS),
    "pulse_tau": _Rule(float, 0, lo_open=True),
    "programming": _SIGMA_RULES,
    "read": _SIGMA_RULES,
    "variation": _Rule(float, 0),
    "stuck_at_gmin": _Rule(float, 0, 1),
    "stuck_at_gmax": _Rule(float, 0, 1),
    "retention": {
        "kind": _Rule(str, choices=RETENTION_KINDS),
        "t0": _Rule(float, 0, lo_open=True),
        "nu_mean": _Rule(float, 0),
        "nu_std": _Rule(float, 0),
        "mean_per_ln_t": _Rule(float),
        "sigma_base": _Rule(float, 0),
        "sigma_per_ln_t": _Rule(float, 0),
        "t_ref": _Rule(float, 0, lo_open=True),
    },
}
_NESTED_MODELS: dict[str, type] = {
    "programming": SigmaModel,
    "read": SigmaModel,
    "retention": RetentionModel,
}


def _rules_for(section: str, cls: type) -> dict[str, _Rule]:
    """Explicit rules, plus a type-only rule for any field added to ``cls`` later."""
    rules = dict(_SECTION_RULES[section])
    for f in fields(cls):
        if f.name not in rules:
            default = getattr(cls(), f.name)
            kind = bool if isinstance(default, bool) else type(default)
            rules[f.name] = _Rule(kind if kind in (int, float, str, bool) else str)
    return rules


# ------------------------------------------------------------------------------ loading


class _Ctx:
    """Builds error messages that name the file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, msg: str) -> ChipConfigError:
        return ChipConfigError(f"{self.source}: {msg}")

    def unknown_key(self, section: str, key: str, valid) -> ChipConfigError:
        return self.error(
            f"unknown key {key!r} in section [{section}]; valid keys: {', '.join(valid)}"
        )

    def value(self, section: str, key: str, rules: Mapping[str, _Rule], value: Any) -> Any:
        if key not in rules:
            raise self.unknown_key(section, key, rules)
        rule = rules[key]
        if isinstance(value, Mapping):
            raise self.error(
                f"[{section}] {key} must be a value ({rule.describe()}), got a table"
            )
        out = rule.check(value)
        if out is None:
            raise self.error(
                f"[{section}] {key} = {_show(value)} is invalid; expected {rule.describe()}"
            )
        return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _table(ctx: _Ctx, d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ctx.error(f"{where} must be a table of key = value pairs, got {_show(d)}")
    return d


def _section(ctx: _Ctx, name: str, d: Any) -> Any:
    cls = _SECTION_CLASSES[name]
    rules = _rules_for(name, cls)
    values = {k: ctx.value(name, k, rules, v) for k, v in _table(ctx, d, f"[{name}]").items()}
    try:
        obj = cls(**values)
    except (ValueError, TypeError) as exc:
        raise ctx.error(f"[{name}] {', '.join(values) or '(defaults)'}: {exc}") from None
    return obj


def _device(ctx: _Ctx, d: Any) -> tuple[DeviceModel, str]:
    d = _table(ctx, d, "[device]")
    overrides: dict[str, Any] = {}
    preset = DEFAULT_PRESET
    for key, value in d.items():
        if key not in _DEVICE_RULES:
            raise ctx.unknown_key("device", key, _DEVICE_RULES)
        rule = _DEVICE_RULES[key]
        if isinstance(rule, dict):
            sub = f"device.{key}"
            table = _table(ctx, value, f"[{sub}]")
            vals = {k: ctx.value(sub, k, rule, v) for k, v in table.items()}
            overrides[key] = vals
        elif key == "preset":
            preset = ctx.value("device", key, _DEVICE_RULES, value)  # type: ignore[arg-type]
        else:
            overrides[key] = ctx.value("device", key, _DEVICE_RULES, value)  # type: ignore[arg-type]
    base = get_preset(preset)
    resolved: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _NESTED_MODELS:
            # a sub-table that names 'kind' replaces the preset's model; otherwise it merges
            model_cls = _NESTED_MODELS[key]
            start = model_cls() if "kind" in value else getattr(base, key)
            try:
                resolved[key] = start.replace(**value)
            except (ValueError, TypeError) as exc:
                raise ctx.error(f"[device.{key}] {', '.join(value)}: {exc}") from None
        else:
            resolved[key] = value
    try:
        device = base.replace(**resolved)
    except (ValueError, TypeError) as exc:
        keys = ", ".join(resolved)
        raise ctx.error(f"[device] {keys} (preset {preset!r}): {exc}") from None
    return device, preset


def _noc(ctx: _Ctx, d: Any) -> NocConfig:
    table = dict(_table(ctx, d, "[noc]"))
    for key in _NOC_FROM_GRID:
        if key in table:
            raise ctx.error(
                f"[noc] {key}: the packet network has one router per core, so its mesh is "
                f"[chip] grid_rows x grid_cols; remove {key} from [noc]"
            )
    try:
        return noc_config_from_dict(table, source="[noc]")
    except NocConfigError as exc:
        raise ctx.error(str(exc)) from None


def chip_config_from_dict(d: Mapping[str, Any], source: str = "<dict>") -> ChipConfig:
    """Validate a parsed chip description (sections as nested dicts) into a ChipConfig."""
    ctx = _Ctx(str(source))
    d = _table(ctx, d, "the chip description")
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        if name not in SECTIONS:
            if not isinstance(value, Mapping):
                raise ctx.error(
                    f"key {name!r} = {_show(value)} is outside any section; valid sections: "
                    + ", ".join(f"[{s}]" for s in SECTIONS)
                )
            raise ctx.error(
                f"unknown section [{name}]; valid sections: "
                + ", ".join(f"[{s}]" for s in SECTIONS)
            )
        if name == "device":
            kwargs["device"], kwargs["device_preset"] = _device(ctx, value)
        elif name == "noc":
            kwargs["noc"] = _noc(ctx, value)
        else:
            kwargs[name] = _section(ctx, name, value)
    config = ChipConfig(**kwargs, source=str(source))
    _cross_checks(ctx, config)
    return config


def _cross_checks(ctx: _Ctx, cfg: ChipConfig) -> None:
    c = cfg.chip
    if c.core_cols % c.slot_size:
        raise ctx.error(
            f"[chip] slot_size = {c.slot_size} must divide core_cols = {c.core_cols} "
            f"(a core's outputs leave as whole slots)"
        )


def load_chip_config(path: str | os.PathLike) -> ChipConfig:
    """Read and validate a TOML chip description file."""
    d = read_toml(path, error=ChipConfigError, what="chip file")
    return chip_config_from_dict(d, source=str(path))


def default_chip_config() -> ChipConfig:
    """The packaged default chip (``sim/chip/default_chip.toml``)."""
    res = resources.files("sim.chip").joinpath(DEFAULT_CHIP_RESOURCE)
    with resources.as_file(res) as p:
        return load_chip_config(p)


def save_chip_config(config: ChipConfig, path: str | os.PathLike) -> Path:
    """Write ``config`` as a TOML chip file (atomically: temp file + os.replace)."""
    text = config.to_toml()
    return atomic_write(
        path, lambda tmp: tmp.write_text(text, encoding="utf-8"), error=ChipConfigError,
        what="chip file",
    )


# ------------------------------------------------------------------------------ writing


def _device_diff(cfg: ChipConfig) -> dict[str, Any]:
    """Fields of ``cfg.device`` that differ from its preset (sub-models: changed keys only,
    or the whole sub-model with its kind when the kind changed)."""
    base = get_preset(cfg.device_preset)
    out: dict[str, Any] = {}
    for f in fields(DeviceModel):
        now, was = getattr(cfg.device, f.name), getattr(base, f.name)
        if now == was:
            continue
        if f.name in _NESTED_MODELS:
            now_d, was_d = now.to_dict(), was.to_dict()
            if now.kind != was.kind:
                sub = now_d
            else:
                sub = {k: v for k, v in now_d.items() if v != was_d[k]}
            out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in sub.items()}
        else:
            out[f.name] = now
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ChipConfigError(f"cannot write non-finite number {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ChipConfigError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(d: Mapping[str, Any]) -> str:
    """Sections of scalars (and one level of sub-tables) as TOML text."""
    lines: list[str] = []

    def table(name: str, t: Mapping[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in t.items() if not isinstance(v, Mapping))
        lines.append("")
        for k, v in t.items():
            if isinstance(v, Mapping):
                table(f"{name}.{k}", v)

    for name, t in d.items():
        table(name, t)
    return "\n".join(lines)


# ------------------------------------------------------------------------------ fit check


def geometry_spec(config: ChipConfig) -> ChipGeometrySpec:
    """The ``[chip]`` section as the mapping side's geometry."""
    c = config.chip
    return ChipGeometrySpec(c.grid_rows, c.grid_cols, c.core_rows, c.core_cols, c.slot_size)


def check_fits(plan: ChipPlan, config: ChipConfig) -> None:
    """:func:`mappings.fit.check_fits` against the chip of ``config``; raises ChipConfigError
    naming the chip file."""
    try:
        fit.check_fits(plan, geometry_spec(config))
    except fit.FitError as exc:
        raise ChipConfigError(f"{config.source}: {exc}") from None


def plan_for_chip(network, config: ChipConfig, *, check: bool = True) -> ChipPlan:
    """:func:`mappings.fit.plan_for_geometry` with the chip's geometry, encoding and bit
    widths; raises ChipConfigError naming the chip file."""
    m = config.mapping
    try:
        return fit.plan_for_geometry(
            network,
            geometry_spec(config),
            m.encoding,
            activation_bits=m.activation_bits,
            psum_bits=m.psum_bits,
            check=check,
        )
    except fit.FitError as exc:
        raise ChipConfigError(f"{config.source}: {exc}") from None
