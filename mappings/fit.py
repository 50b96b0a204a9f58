"""Does a tiled network fit a chip? The mapping-side check of a plan against chip geometry.

:func:`plan_for_geometry` tiles a network for a chip's crossbar size, encoding and bit widths
and checks it against the chip with :func:`check_fits`. The chip file
(:mod:`sim.chip.config`) calls these with its ``[chip]`` and ``[mapping]`` sections and turns a
:class:`FitError` into an error naming the chip file.
"""

from __future__ import annotations

from dataclasses import dataclass

from mappings.tiling import ChipPlan, plan_network

__all__ = ["ChipGeometrySpec", "FitError", "check_fits", "plan_for_geometry"]


class FitError(ValueError):
    """The network does not fit the chip; the message names the ``[chip]`` key to change."""


@dataclass(frozen=True)
class ChipGeometrySpec:
    """What the fit check needs to know of a chip."""

    grid_rows: int
    grid_cols: int
    core_rows: int
    core_cols: int
    slot_size: int

    @property
    def n_cores(self) -> int:
        return self.grid_rows * self.grid_cols


def check_fits(plan: ChipPlan, chip: ChipGeometrySpec) -> None:
    """Raise FitError unless ``plan`` fits ``chip``: enough physical cores, ScRRAMBLe cores as
    wide as the crossbar's columns, the chip's slot size."""
    c = chip
    if plan.core_rows and (plan.core_rows, plan.core_cols) != (c.core_rows, c.core_cols):
        raise FitError(
            f"the plan was made for {plan.core_rows} x {plan.core_cols} cores but [chip] has "
            f"core_rows x core_cols = {c.core_rows} x {c.core_cols}"
        )
    for t in plan.layers:
        if t.kind != "scrramble":
            continue
        if t.slot_size != c.slot_size:
            raise FitError(
                f"layer {t.layer} is a ScRRAMBLe layer with {t.slot_size}-wide slots but "
                f"[chip] slot_size = {c.slot_size}; set slot_size = {t.slot_size}"
            )
        if t.block_out != c.core_cols:
            raise FitError(
                f"layer {t.layer} has {t.block_out}-wide ScRRAMBLe cores but [chip] core_cols = "
                f"{c.core_cols}; a ScRRAMBLe core must match the crossbar width "
                f"(set core_cols = {t.block_out})"
            )
    n, m = plan.n_physical_cores, c.n_cores
    if n > m:
        raise FitError(
            f"network needs {n} physical cores for encoding {plan.encoding or '?'}, chip has "
            f"{c.grid_rows} x {c.grid_cols} = {m}"
        )


def plan_for_geometry(
    network,
    chip: ChipGeometrySpec,
    encoding: str,
    *,
    activation_bits: int,
    psum_bits: int,
    check: bool = True,
) -> ChipPlan:
    """:func:`mappings.tiling.plan_network` for ``chip``'s crossbars; ``check`` runs
    :func:`check_fits`. A network that cannot be tiled raises FitError."""
    try:
        plan = plan_network(
            network,
            chip.core_rows,
            chip.core_cols,
            encoding,
            activation_bits=activation_bits,
            psum_bits=psum_bits,
            slot_elements=chip.slot_size,
            address_cores=chip.n_cores,
        )
    except ValueError as exc:
        raise FitError(f"cannot tile the network: {exc}") from None
    if check:
        check_fits(plan, chip)
    return plan
