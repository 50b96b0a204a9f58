"""A stream of inferences as a task graph and messages for the packet network's trace mode.

Per inference and physical core there is one **MVM task** (the tile's analog matrix-vector
product: DAC passes x read pulse, ADC conversions x columns per ADC, then the digital decode;
:func:`core_cycles`). A tile that accumulates partial sums (row tile 0 of a column tile with
more than one row tile) also has an **ADD task** that starts when every partial sum of the
inference and its own MVM result have arrived, and adds ``(row_tiles - 1) x columns`` values
with one adder per ADC.

Messages, from the mapping's flows (:class:`mappings.flows.Flows`):

- network input: released by the I/O port at ``inference x input_interval``;
- activations: produced by the source tile's MVM task (ADD task if it accumulates), consumed
  by each destination tile's MVM task;
- partial sums: produced by row tile r > 0's MVM task, consumed by the accumulator's ADD task;
- the accumulator's own MVM result, handed to its ADD task through its router's local port
  (a one-flit message from the core to itself);
- network output: the last layer's results, per slot, to the I/O port (consumed by no task).

Unicast sends one message per (flow, destination); multicast one message per flow with all
destinations. Message bits are payload + header (the flow's header for that packet format;
the network's own ``header_bits`` should be 0 so headers are not counted twice).

The arrays follow the trace format of the packet network (``sim.noc``): tasks (core router,
earliest start, duration, number of input (message, destination) entries) and messages
(producer task or -1, release cycle, source router, destinations as CSR with their consuming
task, bits, tag = inference index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mappings.flows import ACTIVATION, INPUT, IO_PORT, PSUM, Flows, address_bits_for
from mappings.tiling import FLOAT_ACTIVATION_BITS, ChipPlan

if TYPE_CHECKING:
    from sim.chip.config import ChipConfig

__all__ = [
    "DECODE_CYCLES",
    "MSG_ACTIVATION",
    "MSG_INPUT",
    "MSG_LOCAL",
    "MSG_OUTPUT",
    "MSG_PSUM",
    "ChipTrace",
    "TraceError",
    "build_inference_trace",
    "core_cycles",
    "default_io_cell",
]

#: Cycles of the digital decode after the last conversion (shift-add, reference subtraction
#: and rescale are pipelined behind the ADCs, one output per ADC per cycle).
DECODE_CYCLES = 1
MSG_ACTIVATION, MSG_PSUM, MSG_INPUT, MSG_LOCAL, MSG_OUTPUT = ACTIVATION, PSUM, INPUT, 3, 4
TASK_MVM, TASK_ADD = 0, 1


class TraceError(ValueError):
    """Bad trace request: inference count, interval, placement or I/O cell."""


def core_cycles(plan: ChipPlan, config: ChipConfig) -> tuple[np.ndarray, np.ndarray]:
    """(MVM cycles, ADD cycles) of every physical core; ADD is 0 for cores that do not
    accumulate partial sums. MVM = the timing model's analog MVM (:func:`sim.chip.timing.
    mvm_timing`) + :data:`DECODE_CYCLES`; ADD = ceil((row_tiles - 1) x columns / ADCs)."""
    from sim.chip.timing import mvm_timing
    from sim.costs.area import adcs_per_core

    mvm = mvm_timing(config, len(plan.layers)).mvm_cycles + DECODE_CYCLES
    lanes = adcs_per_core(config)
    n = plan.n_physical_cores
    add = np.zeros(n, np.int64)
    first = plan.first_core
    for t in plan.layers:
        if t.row_tiles < 2:
            continue
        for b in range(t.n_blocks):
            for c in range(t.col_tiles):
                lo, hi = t.col_range(c)
                add[first[t.layer] + t.tile_id(b, 0, c)] = max(
                    1, math.ceil((t.row_tiles - 1) * (hi - lo) / lanes)
                )
    return np.full(n, mvm, np.int64), add


def default_io_cell(positions: np.ndarray, grid: tuple[int, int]) -> tuple[int, int]:
    """The I/O port's grid cell: the first free edge cell (row-major), else (0, 0), sharing
    that core's router terminal."""
    rows, cols = grid
    used = set(map(tuple, np.asarray(positions).tolist()))
    for r in range(rows):
        for c in range(cols):
            on_edge = r in (0, rows - 1) or c in (0, cols - 1)
            if on_edge and (r, c) not in used:
                return r, c
    return 0, 0


@dataclass(frozen=True, eq=False)
class ChipTrace:
    """Tasks and messages of ``n_inferences`` pipelined inferences (see the module docstring).

    Task ``t`` of inference ``i`` has index ``i * tasks_per_inference + t``; messages are laid
    out the same way (``messages_per_inference``).
    """

    task_core: np.ndarray  # router of the task's core
    task_start: np.ndarray
    task_duration: np.ndarray
    task_inputs: np.ndarray
    task_tile: np.ndarray  # physical core
    task_kind: np.ndarray  # TASK_MVM / TASK_ADD
    task_layer: np.ndarray
    msg_src: np.ndarray
    msg_dst_ptr: np.ndarray
    msg_dst: np.ndarray
    msg_dst_task: np.ndarray
    msg_bits: np.ndarray
    msg_producer: np.ndarray
    msg_cycle: np.ndarray
    msg_tag: np.ndarray  # inference index
    msg_kind: np.ndarray  # MSG_*
    msg_hops: np.ndarray  # links on the XY route (unicast) or of the XY tree (multicast)
    n_inferences: int
    tasks_per_inference: int
    messages_per_inference: int
    io_router: int
    grid: tuple[int, int]
    input_interval: int
    multicast: bool

    @property
    def n_tasks(self) -> int:
        return len(self.task_core)

    @property
    def n_messages(self) -> int:
        return len(self.msg_src)

    @property
    def task_inference(self) -> np.ndarray:
        return np.arange(self.n_tasks) // self.tasks_per_inference

    def to_noc(self):
        """The packet network's :class:`sim.noc.traffic.Trace` of these arrays."""
        from sim.noc.traffic import Trace

        i64 = np.int64
        return Trace(
            msg_src=self.msg_src.astype(i64), msg_dst_ptr=self.msg_dst_ptr.astype(i64),
            msg_dst=self.msg_dst.astype(i64), msg_bits=self.msg_bits.astype(i64),
            msg_producer=self.msg_producer.astype(i64), msg_cycle=self.msg_cycle.astype(i64),
            msg_dst_task=self.msg_dst_task.astype(i64), msg_tag=self.msg_tag.astype(i64),
            task_core=self.task_core.astype(i64), task_start=self.task_start.astype(i64),
            task_duration=self.task_duration.astype(i64), task_inputs=self.task_inputs.astype(i64),
        )


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TraceError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _output_messages(plan: ChipPlan, slot: int, address: int):
    """(src core, payload bits, header bits) of the last layer's results to the I/O port."""
    t = plan.layers[-1]
    act = plan.activation_bits or FLOAT_ACTIVATION_BITS
    first = plan.first_core[-1]
    src, bits = [], []
    for b in range(t.n_blocks):
        for c in range(t.col_tiles):
            lo, hi = t.col_range(c)
            for s0 in range(0, hi - lo, slot):
                src.append(first + t.tile_id(b, 0, c))
                bits.append(min(slot, hi - lo - s0) * act)
    header = address + address_bits_for(-(-t.n_out // slot))
    return np.array(src, np.int64), np.array(bits, np.int64), header


def build_inference_trace(
    plan: ChipPlan,
    config: ChipConfig,
    positions: np.ndarray,
    *,
    n_inferences: int,
    input_interval: int,
    multicast: bool = False,
    grid: tuple[int, int] | None = None,
    io_cell: tuple[int, int] | None = None,
) -> ChipTrace:
    """The task graph and messages of ``n_inferences`` inferences of ``plan`` placed at
    ``positions`` (grid cell per physical core), inference i's input released at cycle
    ``i * input_interval`` (0: all at once, i.e. as fast as the chip accepts them)."""
    n_inf = _check_positive_int(n_inferences, "n_inferences (inference count)")
    if isinstance(input_interval, bool) or not isinstance(input_interval, (int, np.integer)) \
            or input_interval < 0:
        raise TraceError(f"input_interval must be an integer >= 0 cycles, got {input_interval!r}")
    grid = tuple(config.grid if grid is None else grid)
    rows, cols = grid
    n = plan.n_physical_cores
    pos = np.asarray(positions, np.int64)
    if pos.shape != (n, 2):
        raise TraceError(f"positions must be (n_physical_cores={n}, 2), got {pos.shape}")
    if n > rows * cols:
        raise TraceError(
            f"the placement has {n} cores but the {rows}x{cols} mesh has {rows * cols} routers"
        )
    if pos.min() < 0 or pos[:, 0].max() >= rows or pos[:, 1].max() >= cols:
        bad = int(np.flatnonzero((pos < 0).any(1) | (pos[:, 0] >= rows) | (pos[:, 1] >= cols))[0])
        raise TraceError(
            f"core {bad} is placed at {tuple(pos[bad])}, outside the {rows}x{cols} mesh"
        )
    io = default_io_cell(pos, grid) if io_cell is None else tuple(int(v) for v in io_cell)
    if not (0 <= io[0] < rows and 0 <= io[1] < cols):
        raise TraceError(f"io_cell {io} is outside the {rows}x{cols} mesh")
    router = pos[:, 0] * cols + pos[:, 1]
    io_router = io[0] * cols + io[1]
    flows: Flows = plan.flows
    if flows.n_cores != n:
        raise TraceError(f"the flows cover {flows.n_cores} cores but the plan has {n}")

    # ---- tasks of one inference: MVM per core, then ADD per accumulating core
    mvm, add = core_cycles(plan, config)
    acc = np.flatnonzero(add > 0)
    add_task = np.full(n, -1, np.int64)
    add_task[acc] = n + np.arange(len(acc))
    layer_of = np.repeat(np.arange(len(plan.layers)), [t.n_tiles for t in plan.layers])
    t_tile = np.concatenate([np.arange(n), acc])
    t_kind = np.concatenate([np.full(n, TASK_MVM), np.full(len(acc), TASK_ADD)])
    t_dur = np.concatenate([mvm, add[acc]])
    out_task = np.where(add_task >= 0, add_task, np.arange(n))  # who emits a core's results

    # ---- messages of one inference
    f_of_d = flows.flow_of_dst
    hdr = flows.header_bits(multicast)
    bits = flows.payload_bits + hdr
    src_core = flows.src
    is_in = src_core == IO_PORT
    m_src = np.where(is_in, io_router, router[np.maximum(src_core, 0)])
    producer = np.where(
        is_in, -1,
        np.where(flows.kind == PSUM, np.maximum(src_core, 0),
                 out_task[np.maximum(src_core, 0)]),
    )
    consumer = np.where(flows.kind[f_of_d] == PSUM, add_task[flows.dst], flows.dst)
    flow_hops_mc = flows.hops(pos, io, multicast=True)
    f = f_of_d
    d_router = router[flows.dst]
    if multicast:
        ptr = flows.dst_ptr
        m = {
            "src": m_src, "bits": bits, "prod": producer, "kind": flows.kind.astype(np.int64),
            "hops": flow_hops_mc, "dst": d_router, "dst_task": consumer, "ptr": ptr,
        }
    else:
        s = np.concatenate([pos, np.array([io])])[np.where(is_in, n, src_core)[f]]
        uhops = np.abs(s - pos[flows.dst]).sum(axis=1)
        m = {
            "src": m_src[f], "bits": bits[f], "prod": producer[f],
            "kind": flows.kind[f].astype(np.int64), "hops": uhops, "dst": d_router,
            "dst_task": consumer, "ptr": np.arange(len(f) + 1, dtype=np.int64),
        }
    # the accumulator's own MVM result -> its ADD task (local port)
    local_bits = np.ones(len(acc), np.int64)
    # outputs to the I/O port, in packets of the chip's slot size
    o_src, o_payload, o_hdr = _output_messages(plan, config.chip.slot_size, flows.address_bits)
    o_hops = np.abs(pos[o_src] - np.array(io)).sum(axis=1)
    src_all = np.concatenate([m["src"], router[acc], router[o_src]])
    bits_all = np.concatenate([m["bits"], local_bits, o_payload + o_hdr])
    prod_all = np.concatenate([m["prod"], acc, out_task[o_src]])
    kind_all = np.concatenate([m["kind"], np.full(len(acc), MSG_LOCAL),
                               np.full(len(o_src), MSG_OUTPUT)])
    hops_all = np.concatenate([m["hops"], np.zeros(len(acc), np.int64), o_hops])
    fan = np.concatenate([np.diff(m["ptr"]), np.ones(len(acc) + len(o_src), np.int64)])
    dst_all = np.concatenate([m["dst"], router[acc], np.full(len(o_src), io_router)])
    dtask_all = np.concatenate([m["dst_task"], add_task[acc], np.full(len(o_src), -1)])
    T = len(t_tile)
    M = len(src_all)
    K = len(dst_all)
    t_inputs = np.bincount(dtask_all[dtask_all >= 0], minlength=T)

    # ---- replicate over inferences
    i_m = np.repeat(np.arange(n_inf), M)
    i_k = np.repeat(np.arange(n_inf), K)
    prod = np.tile(prod_all, n_inf)
    prod = np.where(prod >= 0, prod + i_m * T, -1)
    dtask = np.tile(dtask_all, n_inf)
    dtask = np.where(dtask >= 0, dtask + i_k * T, -1)
    cycle = np.where(prod >= 0, 0, i_m * int(input_interval))
    ptr = np.concatenate([[0], np.cumsum(np.tile(fan, n_inf))]).astype(np.int64)
    return ChipTrace(
        task_core=np.tile(router[t_tile], n_inf),
        task_start=np.zeros(T * n_inf, np.int64),
        task_duration=np.tile(t_dur, n_inf).astype(np.int64),
        task_inputs=np.tile(t_inputs, n_inf).astype(np.int64),
        task_tile=np.tile(t_tile, n_inf),
        task_kind=np.tile(t_kind, n_inf),
        task_layer=np.tile(layer_of[t_tile], n_inf),
        msg_src=np.tile(src_all, n_inf).astype(np.int64),
        msg_dst_ptr=ptr,
        msg_dst=np.tile(dst_all, n_inf).astype(np.int64),
        msg_dst_task=dtask.astype(np.int64),
        msg_bits=np.tile(bits_all, n_inf).astype(np.int64),
        msg_producer=prod.astype(np.int64),
        msg_cycle=cycle.astype(np.int64),
        msg_tag=i_m.astype(np.int64),
        msg_kind=np.tile(kind_all, n_inf).astype(np.int64),
        msg_hops=np.tile(hops_all, n_inf).astype(np.int64),
        n_inferences=n_inf,
        tasks_per_inference=T,
        messages_per_inference=M,
        io_router=int(io_router),
        grid=(rows, cols),
        input_interval=int(input_interval),
        multicast=bool(multicast),
    )
