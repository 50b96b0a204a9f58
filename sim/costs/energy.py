"""Energy per inference in NeuroSim-like categories, from the mapping's flows and tiles.

Categories (``CATEGORIES``), per inference, in pJ:

- ``array``: read energy of the crossbars, sum over input passes of t_read * sum_i V_i^2 *
  sum_j G_ij (NeuroSim's array model). G is the programmed instance's conductances (every
  device on the row: both devices of a differential pair, the offset reference column) and V
  the DAC's row voltage for the actual inputs of a batch: ``read_voltage_v`` x |x| / full
  scale (multi-level DAC), or ``read_voltage_v`` on the rows whose magnitude bit is set in
  each bit-serial plane. The full scale of a layer is the largest |input| of the batch (the
  ``minmax`` DAC calibration). Without an instance the estimate is *nominal*: mid-range
  conductance on every device and a mean V^2 of a quarter of full scale (a bit set with
  probability 1/4 per plane).
- ``dac``: one conversion per used input row per pass, ``dac_pj_per_bit`` x DAC bits.
- ``adc``: one conversion per used column (reference columns included) per pass.
- ``accumulation``: digital adds of 16-bit words: the shift-and-add of every column per
  pass, the decode of every output, every partial sum added at the accumulating tile, and
  the signed routed sums a ScRRAMBLe core forms from its input slots (one add per element
  per nonzero route).
- ``buffer``: every payload bit delivered to a core is written into its input buffer and
  read by the sender's output buffer: 2 x payload bits x ``buffer_pj_per_bit``.
- ``router``: bits x routers traversed (hops + 1 per unicast packet; tree links + 1 for a
  multicast packet), headers included; ``link``: bits x links x hop length (the core pitch
  of :mod:`sim.costs.area`) x ``link_pj_per_bit_mm``.
- ``leakage``: ADC leakage of the used cores x the time per inference (the pipelined
  inference interval when a stream is simulated).

Operations: 2 x the crossbar multiply-accumulates of every used tile (zeros that a crossbar
programs included), so TOPS/W = ops / pJ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mappings.encodings import reference_columns
from mappings.flows import PSUM, Flows
from mappings.tiling import ChipPlan, LayerTiling
from sim.costs.area import adcs_per_core, area_report, dac_bits_per_input

if TYPE_CHECKING:
    from sim.chip.config import ChipConfig
    from sim.chip.programming import ChipInstance

__all__ = [
    "CATEGORIES",
    "EnergyError",
    "EnergyReport",
    "array_energy_fj",
    "energy_report",
    "nominal_row_activity",
    "nominal_row_conductance",
    "row_activity",
    "row_conductance",
]

CATEGORIES: tuple[str, ...] = (
    "array", "dac", "adc", "accumulation", "buffer", "router", "link", "leakage",
)
NOMINAL_V2 = 0.25  # nominal mean (V / V_read)^2 per row per pass


class EnergyError(ValueError):
    """Inputs of the energy model that do not match the plan (shapes, times)."""


@dataclass(frozen=True)
class EnergyReport:
    """Energy per inference by category (pJ), operations per inference and how the array
    energy was obtained (``instance`` or ``nominal``)."""

    pj: dict[str, float]
    ops: int
    seconds_per_inference: float
    array_source: str

    @property
    def total_pj(self) -> float:
        return float(sum(self.pj.values()))

    @property
    def tops_per_w(self) -> float:
        """Tera-operations per second per watt = operations per pJ."""
        return self.ops / self.total_pj if self.total_pj > 0 else float("inf")

    @property
    def inferences_per_j(self) -> float:
        return 1e12 / self.total_pj if self.total_pj > 0 else float("inf")

    def as_dict(self) -> dict:
        return {
            "pj_per_inference": dict(self.pj),
            "total_pj_per_inference": self.total_pj,
            "ops_per_inference": self.ops,
            "tops_per_w": self.tops_per_w,
            "inferences_per_j": self.inferences_per_j,
            "seconds_per_inference": self.seconds_per_inference,
            "array_source": self.array_source,
        }

    def table(self) -> str:
        total = self.total_pj
        lines = [f"energy per inference: {total:,.1f} pJ ({self.array_source} array read)"]
        for k, v in self.pj.items():
            share = 100 * v / total if total else 0.0
            lines.append(f"  {k:<13}{v:>14,.1f} pJ  {share:5.1f} %")
        lines.append(
            f"  {self.ops:,} ops per inference: {self.tops_per_w:.2f} TOPS/W, "
            f"{self.inferences_per_j:,.0f} inferences/J"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- tiles


def _used(t: LayerTiling) -> tuple[np.ndarray, np.ndarray]:
    """(rows in use, columns in use) of every tile of a layer, in tile order."""
    rows = np.array([t.row_range(r)[1] - t.row_range(r)[0] for r in range(t.row_tiles)])
    cols = np.array([t.col_range(c)[1] - t.col_range(c)[0] for c in range(t.col_tiles)])
    r = np.broadcast_to(rows[None, :, None], (t.n_blocks, t.row_tiles, t.col_tiles)).ravel()
    c = np.broadcast_to(cols[None, None, :], (t.n_blocks, t.row_tiles, t.col_tiles)).ravel()
    return r, c


def _to_tile_rows(a: np.ndarray, t: LayerTiling) -> np.ndarray:
    """(n_blocks, block_in) per-input values -> (n_tiles, inputs_per_tile), tile order."""
    ipt = t.inputs_per_tile
    padded = np.zeros((t.n_blocks, t.row_tiles * ipt))
    padded[:, : t.block_in] = a
    per = padded.reshape(t.n_blocks, t.row_tiles, 1, ipt)
    return np.broadcast_to(per, (t.n_blocks, t.row_tiles, t.col_tiles, ipt)).reshape(
        t.n_tiles, ipt
    )


def row_conductance(instance: ChipInstance) -> list[np.ndarray]:
    """Per layer (n_tiles, inputs_per_tile): total conductance (uS) on each input's rows."""
    out = []
    for layer in instance.layers:
        c = layer.current
        g = c.g_pos.sum(axis=1, dtype=np.float64)
        if c.g_neg is not None:
            g = g + c.g_neg.sum(axis=1, dtype=np.float64)
        if c.g_ref is not None:
            g = g + c.g_ref
        out.append(g)
    return out


def nominal_row_conductance(plan: ChipPlan, config: ChipConfig) -> list[np.ndarray]:
    """Like :func:`row_conductance` with every device at mid-range conductance."""
    d = config.device
    g_mid = 0.5 * (d.g_min + d.g_max)
    per_col = 2 if plan.encoding == "differential" else 1
    out = []
    for t in plan.layers:
        _, cols = _used(t)
        n = cols * per_col + reference_columns(plan.encoding)
        out.append(np.repeat((n * g_mid)[:, None], t.inputs_per_tile, axis=1).astype(np.float64))
    return out


def row_activity(network, samples: np.ndarray, plan: ChipPlan, config: ChipConfig):
    """Per layer (n_tiles, inputs_per_tile): the batch mean of sum over passes of
    (V / V_read)^2 on each input row, for the float forward of ``samples`` (batch-major)."""
    x = network.input_spec.prepare(np.asarray(samples))
    dac = config.dac
    out = []
    for layer, t in zip(network.layers, plan.layers):
        blocks = layer.route(x) if hasattr(layer, "routing") else x[None]
        full = float(np.abs(blocks).max())
        u = np.abs(blocks) / full if full > 0 else np.zeros_like(blocks)
        if dac.mode == "bit_serial":
            levels = (1 << (dac.bits - 1)) - 1
            codes = np.rint(u * levels).astype(np.int64)
            act = np.zeros(codes.shape)
            for p in range(dac.bits - 1):
                act += (codes >> p) & 1
            per = act.mean(axis=-1)
        else:
            per = (u.astype(np.float64) ** 2).mean(axis=-1)
        out.append(_to_tile_rows(per, t))
        x = layer.activation.apply(layer.preactivation(x))
    return out


def nominal_row_activity(plan: ChipPlan, config: ChipConfig) -> list[np.ndarray]:
    passes = config.dac.cycles
    return [np.full((t.n_tiles, t.inputs_per_tile), NOMINAL_V2 * passes) for t in plan.layers]


def array_energy_fj(g_rows, activity, config: ChipConfig, read_ns: float) -> float:
    """sum over layers, tiles and rows of t_read * V_read^2 * activity * G (fJ: V^2 uS ns)."""
    v2 = config.costs.read_voltage_v ** 2
    total = 0.0
    for g, a in zip(g_rows, activity):
        if g.shape != a.shape:
            raise EnergyError(f"row conductance {g.shape} and activity {a.shape} differ")
        total += float((g * a).sum())
    return read_ns * v2 * total


# ----------------------------------------------------------------------------- report


def _routed_adds(network, plan: ChipPlan) -> int:
    adds = 0
    for layer in getattr(network, "layers", ()):
        if hasattr(layer, "routing"):
            adds += int(np.abs(layer.routing).sum()) * layer.slot_size
    return adds


def energy_report(
    plan: ChipPlan,
    config: ChipConfig,
    *,
    positions: np.ndarray,
    seconds_per_inference: float,
    multicast: bool = False,
    io_position=(0, 0),
    network=None,
    instance: ChipInstance | None = None,
    samples: np.ndarray | None = None,
    read_ns: float | None = None,
) -> EnergyReport:
    """Energy per inference of ``plan`` on the chip of ``config`` (see the module docstring).

    ``positions``: grid cell of every physical core; ``seconds_per_inference`` scales the
    leakage; ``instance`` and ``samples`` (with ``network``) give the array read energy from
    real conductances and inputs, else it is nominal.
    """
    from sim.chip.timing import READ_PULSE_NS

    if not (np.isfinite(seconds_per_inference) and seconds_per_inference >= 0):
        raise EnergyError(
            f"seconds_per_inference must be a finite number >= 0, got {seconds_per_inference!r}"
        )
    k = config.costs
    passes = config.dac.cycles
    read_ns = READ_PULSE_NS if read_ns is None else read_ns
    if instance is not None and samples is not None and network is not None:
        g_rows, activity, source = (
            row_conductance(instance), row_activity(network, samples, plan, config), "instance"
        )
    else:
        g_rows, activity, source = (
            nominal_row_conductance(plan, config), nominal_row_activity(plan, config), "nominal"
        )
    array_pj = array_energy_fj(g_rows, activity, config, read_ns) * 1e-3

    rows_used = cols_used = outputs = 0
    ref = reference_columns(plan.encoding)
    macs = 0
    for t in plan.layers:
        r, c = _used(t)
        rows_used += int(r.sum())
        cols_used += int((c + ref).sum())
        macs += int((r * c).sum())
        outputs += t.n_out
    flows: Flows = plan.flows
    psum_elements = int((flows.elements * flows.fanout)[flows.kind == PSUM].sum())
    adds = cols_used * passes + outputs + psum_elements + _routed_adds(network, plan)

    bits = flows.payload_bits + flows.header_bits(multicast)
    hops = flows.hops(positions, io_position, multicast)
    routers = hops + (1 if multicast else flows.fanout)
    pitch = area_report(config).pitch_mm
    used_cores = plan.n_physical_cores
    pj = {
        "array": array_pj,
        "dac": rows_used * passes * k.dac_pj_per_bit * dac_bits_per_input(config),
        "adc": cols_used * passes * k.adc_pj(config.adc.bits),
        "accumulation": adds * k.shift_add_pj,
        "buffer": 2 * flows.payload_total(multicast=False) * k.buffer_pj_per_bit,
        "router": float((bits * routers).sum()) * k.router_pj_per_bit,
        "link": float((bits * hops).sum()) * pitch * k.link_pj_per_bit_mm,
        "leakage": (
            k.adc_leakage_mw * adcs_per_core(config) * used_cores * seconds_per_inference * 1e9
        ),
    }
    if config.adc.bits == 0:
        pj["leakage"] = 0.0
    return EnergyReport({c: float(pj[c]) for c in CATEGORIES}, 2 * macs,
                        float(seconds_per_inference), source)
