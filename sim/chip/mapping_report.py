"""Map a network onto a chip: tiles, cores, devices per encoding, traffic, placement, baseline.

:func:`map_network` is what ``scrramble-sim map`` prints. Nothing here simulates the analog
computation; it counts. Device counts are given for all three encodings (``single`` is refused,
i.e. ``None``, for dense layers, whose inputs are not balanced). The dense baseline is the
network's layers replaced by fully connected layers of the same shapes on the same tile
geometry, with partial sums between row tiles (:func:`mappings.tiling.plan_dense_baseline`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mappings.checks import check_seed
from mappings.encodings import ENCODINGS
from mappings.placement import PlacementError, PlacementReport, placement_report
from mappings.tiling import ChipPlan, LayerTiling, layer_tilings, plan_dense_baseline
from sim.chip.config import ChipConfig, ChipConfigError, plan_for_chip
from sim.chip.timing import MvmTiming, mvm_timing

COMPARED_PLACEMENTS: tuple[str, ...] = ("sequential", "random", "annealing")


@dataclass(frozen=True)
class BaselineComparison:
    """Inter-core traffic of the network vs. dense layers of the same shapes."""

    dense_inter_core_bits: int
    dense_psum_bits: int
    dense_cores: int
    dense_io_bits_in: int
    inter_core_bits: int
    io_bits_in: int

    @property
    def reduction_percent(self) -> float | None:
        """How much less inter-core traffic the network sends, in percent of the baseline."""
        if self.dense_inter_core_bits == 0:
            return None
        return 100.0 * (1.0 - self.inter_core_bits / self.dense_inter_core_bits)

    @property
    def reduction_with_io_percent(self) -> float | None:
        """The same with the input delivered from the I/O port counted on both sides."""
        dense = self.dense_inter_core_bits + self.dense_io_bits_in
        if dense == 0:
            return None
        return 100.0 * (1.0 - (self.inter_core_bits + self.io_bits_in) / dense)

    def as_dict(self) -> dict:
        return {
            "dense_inter_core_bits": self.dense_inter_core_bits,
            "dense_psum_bits": self.dense_psum_bits,
            "dense_cores": self.dense_cores,
            "dense_io_bits_in": self.dense_io_bits_in,
            "inter_core_bits": self.inter_core_bits,
            "io_bits_in": self.io_bits_in,
            "reduction_percent": self.reduction_percent,
            "reduction_with_io_percent": self.reduction_with_io_percent,
        }


@dataclass(frozen=True, eq=False)
class MappingReport:
    """Everything ``scrramble-sim map`` reports about one network on one chip."""

    chip_source: str
    config: ChipConfig
    plan: ChipPlan
    devices: dict[str, int | None]  # total programmed devices per encoding (None: refused)
    layer_devices: dict[str, tuple[int | None, ...]]
    placement: PlacementReport
    placement_method: str
    seed: int
    baseline: BaselineComparison | None  # None when the network has no ScRRAMBLe layer
    timing: MvmTiming
    estimate: object = None  # sim.chipnet.estimate.ChipEstimate of the chosen placement
    notes: tuple[str, ...] = ()  # encoding consequences worth knowing (see encoding_notes)

    @property
    def layers(self) -> tuple[LayerTiling, ...]:
        return self.plan.layers

    @property
    def cores_used(self) -> int:
        return self.plan.n_physical_cores

    @property
    def cores_available(self) -> int:
        return self.config.n_cores

    @property
    def single_vs_differential(self) -> float | None:
        """Devices needed by ``single`` over those needed by ``differential``."""
        s, d = self.devices["single"], self.devices["differential"]
        return None if s is None or not d else s / d

    @property
    def bit_hops(self) -> float:
        """Bit-hops of the chosen placement."""
        return self.placement.bit_hops[self.placement_method]

    def as_dict(self) -> dict:
        p, cfg = self.plan, self.config
        out = {
            "chip": cfg.source,
            "grid": list(cfg.grid),
            "core_rows": cfg.chip.core_rows,
            "core_cols": cfg.chip.core_cols,
            "slot_size": cfg.chip.slot_size,
            "encoding": cfg.mapping.encoding,
            "scaling": cfg.mapping.scaling,
            "activation_bits": cfg.mapping.activation_bits,
            "psum_bits": cfg.mapping.psum_bits,
            "device": cfg.device.name,
            "layers": [
                {
                    **t.as_dict(),
                    "first_core": p.first_core[t.layer],
                    "input_bits": p.layer_input_bits[t.layer],
                    "psum_bits": p.layer_psum_bits[t.layer],
                    "devices": {e: self.layer_devices[e][t.layer] for e in ENCODINGS},
                }
                for t in p.layers
            ],
            "cores_used": self.cores_used,
            "cores_available": self.cores_available,
            "devices": dict(self.devices),
            "single_vs_differential": self.single_vs_differential,
            "traffic": {
                "inter_core_bits": p.inter_core_bits,
                "activation_bits": p.activation_traffic_bits,
                "psum_bits": p.psum_traffic_bits,
                "io_bits_in": p.io_bits_in,
                "io_bits_out": p.io_bits_out,
            },
            "placement": {
                **self.placement.as_dict(),
                "method": self.placement_method,
                "chosen_bit_hops": self.bit_hops,
                "seed": self.seed,
                "positions": self.placement.placements[self.placement_method].positions.tolist(),
            },
            "baseline": None if self.baseline is None else self.baseline.as_dict(),
            "timing": self.timing.as_dict(),
            "estimate": None if self.estimate is None else self.estimate.as_dict(),
            "notes": list(self.notes),
        }
        return out

    def table(self) -> str:
        """A readable text report."""
        p, cfg = self.plan, self.config
        c, m = cfg.chip, cfg.mapping
        act = f"{m.activation_bits}-bit" if m.activation_bits else "float (32-bit)"
        lines = [
            (
                f"chip {cfg.source}: {c.grid_rows} x {c.grid_cols} grid of {c.core_rows} x "
                f"{c.core_cols} cores, slot {c.slot_size}, device {cfg.device.name}"
            ),
            (
                f"mapping: encoding {m.encoding} ({m.scaling} scaling), {act} activations, "
                f"{m.psum_bits}-bit partial sums"
            ),
            "",
        ]
        head = ("layer", "kind", "in", "out", "blocks", "block", "tile in x out",
                "row x col tiles", "cores", "input bits", "psum bits")
        rows = [head]
        for t in p.layers:
            rows.append((
                str(t.layer), t.kind, f"{t.n_in:,}", f"{t.n_out:,}", str(t.n_blocks),
                f"{t.block_out}x{t.block_in}", f"{t.inputs_per_tile}x{t.outputs_per_tile}",
                f"{t.row_tiles} x {t.col_tiles}", str(t.n_tiles),
                f"{p.layer_input_bits[t.layer]:,}", f"{p.layer_psum_bits[t.layer]:,}",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for r in rows:
            lines.append("  ".join(v.rjust(w) if i >= 2 else v.ljust(w)
                                   for i, (v, w) in enumerate(zip(r, widths))).rstrip())
        lines.append("")
        lines.append(f"physical cores: {self.cores_used} used of {self.cores_available}")
        dev = ", ".join(
            f"{e} {'refused' if v is None else f'{v:,}'}" for e, v in self.devices.items()
        )
        ratio = self.single_vs_differential
        lines.append(
            f"devices: {dev}; single / differential = "
            + ("n/a (single refused: dense layer)" if ratio is None else f"{ratio:.3f}")
        )
        lines.append(
            f"traffic per inference: {p.inter_core_bits:,} bits between cores "
            f"({p.activation_traffic_bits:,} activations, {p.psum_traffic_bits:,} partial sums); "
            f"I/O {p.io_bits_in:,} in, {p.io_bits_out:,} out"
        )
        hops = ", ".join(f"{k} {v:,.0f}" for k, v in self.placement.bit_hops.items())
        lines.append(f"placement bit-hops: {hops}")
        lines.append(
            f"chosen placement: {self.placement_method} ({self.bit_hops:,.0f} bit-hops, "
            f"{self.placement.mean_hops(self.placement_method):.2f} hops per bit, seed {self.seed})"
        )
        b = self.baseline
        if b is not None:
            red = b.reduction_percent
            lines.append(
                f"dense baseline (same layer shapes, partial sums): {b.dense_inter_core_bits:,} "
                f"bits between {b.dense_cores} cores; "
                + ("no inter-core traffic to compare" if red is None
                   else f"this network sends {red:.1f} % less")
            )
        lines.append(self.timing.describe())
        if self.estimate is not None:
            lines.append("")
            lines.append(self.estimate.table())
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _has_dense(network) -> int | None:
    for i, layer in enumerate(network.layers):
        if not hasattr(layer, "routing"):
            return i
    return None


def count_devices(network, config: ChipConfig) -> tuple[dict, dict]:
    """Programmed devices per encoding on the chip's core geometry: totals and per layer.

    ``single`` gives None for dense layers (their inputs are not balanced) and for the total
    of a network that has one.
    """
    totals: dict[str, int | None] = {}
    per_layer: dict[str, tuple[int | None, ...]] = {}
    for enc in ENCODINGS:
        tilings = layer_tilings(network, config.chip.core_rows, config.chip.core_cols, enc)
        counts = tuple(
            None if (enc == "single" and t.kind == "dense") else t.devices(enc) for t in tilings
        )
        per_layer[enc] = counts
        totals[enc] = None if any(v is None for v in counts) else int(sum(counts))
    return totals, per_layer


def compare_with_dense(network, config: ChipConfig, plan: ChipPlan | None = None):
    """:class:`BaselineComparison` of ``network`` vs. dense layers of the same shapes on the
    chip's tile geometry and bit widths; None when the network has no ScRRAMBLe layer."""
    if all(not hasattr(layer, "routing") for layer in network.layers):
        return None
    m = config.mapping
    if plan is None:
        plan = plan_for_chip(network, config, check=False)
    dense = plan_dense_baseline(
        network, config.chip.core_rows, config.chip.core_cols, m.encoding,
        activation_bits=m.activation_bits, psum_bits=m.psum_bits,
        slot_elements=config.chip.slot_size, address_cores=config.n_cores,
    )
    return BaselineComparison(
        dense_inter_core_bits=dense.inter_core_bits,
        dense_psum_bits=dense.psum_traffic_bits,
        dense_cores=dense.n_physical_cores,
        dense_io_bits_in=dense.io_bits_in,
        inter_core_bits=plan.inter_core_bits,
        io_bits_in=plan.io_bits_in,
    )


def encoding_notes(network, config: ChipConfig, plan: ChipPlan) -> tuple[str, ...]:
    """Consequences of the encoding the numbers above would otherwise hide.

    ``offset`` takes one column of every core for the reference column, so a block exactly
    as wide as the core (a ScRRAMBLe core of core_cols outputs) needs two column tiles: the
    note gives the cores and inter-core bits with and without the reference column (the
    latter: the same tiling with all core_cols columns for weights, as 'single' has).
    """
    if config.mapping.encoding != "offset":
        return ()
    c = config.chip
    plain = layer_tilings(network, c.core_rows, c.core_cols, "single")
    split = [
        (t, p) for t, p in zip(plan.layers, plain) if t.col_tiles > p.col_tiles
    ]
    if not split:
        return ()
    without = plan_for_chip(network, config.replace(mapping={"encoding": "single"}), check=False)
    layers = ", ".join(
        f"layer {t.layer} ({t.n_blocks} x {t.block_out}-wide blocks: {t.col_tiles} column "
        f"tiles each instead of {p.col_tiles})"
        for t, p in split
    )
    note = (
        f"encoding 'offset' keeps one column of every {c.core_cols}-column core for the "
        f"reference, leaving {c.core_cols - 1} for weights, so {layers}: "
        f"{plan.n_physical_cores} cores instead of {without.n_physical_cores} and "
        f"{plan.inter_core_bits:,} inter-core bits instead of {without.inter_core_bits:,} "
        f"(+{100 * (plan.inter_core_bits / max(without.inter_core_bits, 1) - 1):.0f} %). "
        f"Blocks of at most {c.core_cols - 1} outputs, or encoding 'single' / "
        f"'differential', avoid the split."
    )
    return (note,)


def map_network(
    network,
    config: ChipConfig,
    *,
    seed: int,
    placement: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> MappingReport:
    """Tile ``network`` onto the chip, check it fits, count devices and traffic, and place it
    (sequential, random, annealing and the configured method, all from ``seed``).

    ``placement`` overrides ``config.mapping.placement``. Raises ChipConfigError when the
    network does not fit or the encoding cannot map it, PlacementError for a bad seed.
    ``progress(step)`` is called after tiling (``"tiling"``) and after each placement method.
    """
    seed = check_seed(seed, "placement seed", PlacementError)
    if placement is not None and placement != config.mapping.placement:
        config = config.replace(mapping={"placement": placement})
    enc = config.mapping.encoding
    dense_at = _has_dense(network)
    if enc == "single" and dense_at is not None:
        raise ChipConfigError(
            f"{config.source}: [mapping] encoding = \"single\" cannot map layer {dense_at}, a "
            f"dense layer: its inputs are not balanced, so the shared conductance offset would "
            f"not cancel; use encoding \"differential\" or \"offset\""
        )
    plan = plan_for_chip(network, config)
    totals, per_layer = count_devices(network, config)
    if progress is not None:
        progress("tiling")
    method = config.mapping.placement
    methods = COMPARED_PLACEMENTS + (() if method in COMPARED_PLACEMENTS else (method,))
    # placement cost: the bits on the wires, headers included, from the mapping's flows
    report = placement_report(
        plan.flows.core_matrix(header=True), config.grid, int(seed), methods, progress=progress
    )
    from sim.chipnet.estimate import estimate_chip

    estimate = estimate_chip(
        network, config, plan, report.placements[method].positions, devices=totals
    )
    return MappingReport(
        chip_source=config.source,
        config=config,
        plan=plan,
        devices=totals,
        layer_devices=per_layer,
        placement=report,
        placement_method=method,
        seed=int(seed),
        baseline=compare_with_dense(network, config, plan),
        timing=mvm_timing(config, len(network.layers)),
        estimate=estimate,
        notes=encoding_notes(network, config, plan),
    )
