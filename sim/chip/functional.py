"""Fast noisy functional simulation of a programmed chip on a batch of samples.

Per layer and batch chunk (see docs/simulation.md for the full pipeline and the arguments):

1. ScRRAMBLe routing (digital, fixed summation order: :func:`sim.chip.kernels.route_slots`); a
   dense layer's input is its one block.
2. Input DAC: multilevel codes (one analog read) or sign-magnitude bit planes (one read per
   plane, shift-and-add after the ADC), with the full scale calibrated per layer.
3. Analog MVM as float32 BLAS products, per row tile over runs of column tiles side by side
   (one wide product instead of one per tile): ``I = G_eff @ x`` with G_eff = g_pos (- g_neg)
   and the reference column as an extra row.
4. Read noise, exact in distribution and cheap: a column current is a sum of independent
   Gaussian device currents, so it is Gaussian with variance ``V = S2 @ x**2`` where
   S2 = sigma_read(G)^2 per device (one more matmul, or a row sum when sigma is constant);
   one normal per ADC conversion, never one per device.
5. ADC (clip + round, ranges calibrated per tile or column) fused with the noise and the
   digital partial-sum accumulation over row tiles (:func:`sim.chip.kernels.adc_accumulate`),
   partial sums of row tiles r > 0 saturated at ``[mapping] psum_bits``.
6. Decode: reference subtraction, rescale to weight units, drift compensation, bias,
   activation, activation quantisation (:func:`sim.chip.kernels.decode_outputs`).

Purity. The result is a function of the network, the instance, the read-time configuration,
the calibration (a value: :func:`calibrate`, computed once from named calibration samples and
reusable across read-noise seeds and sample shards) and the read-noise seed. Every read-noise
normal is keyed by (seed, layer, tile column, DAC pass, *global* sample index), and the analog
matrix products run in BLAS calls over fixed 1024-sample blocks aligned to the global sample
index, so a dataset simulated whole, in shards (``sample_offset``) or with another batch chunk
gives identical predictions. The forward pass takes a chunk through all the layers one block at
a time and converts each row tile's currents right after its products (work arrays that stay
in cache). Thread counts are set per call (Numba's is thread-local; BLAS is
pinned to one thread while any simulation runs, see :class:`_BlasPin`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from devices.converters import ADCConfig, calibrate_adc
from mappings.network import DenseLayer, Network, ScrrambleLayer
from mappings.routing import routing_matrix
from sim.chip import kernels
from sim.chip.config import ChipConfig
from sim.chip.programming import ChipInstance, LayerDevices, network_fingerprint

SIM_STREAM = 0x53494D00  # spawn-key tags (distinct from programming's layer indices)
CALIB_STREAM = 0x43414C00
# Samples per BLAS call of the forward pass, aligned to the global sample index: shards that
# start at multiples of BLOCK need no padding. Measured (dense benchmark network, one thread):
# the analog products take 1.5x as long in calls of 256 samples as in calls of 1024 or more
# (OpenBLAS packs the tile's weights once per call).
BLOCK = 1024
# About how many rows of column tiles are multiplied side by side in one BLAS call (per row
# tile and block; the column tiles are split into runs of equal length). Measured (dense
# benchmark network, one thread): such products run several per cent faster per flop than
# one 256-row product per tile; 512, 1024 and 2048 rows are within the noise of each other.
WIDE_ROWS = 1024
# A row tile's products leave out the inputs that are always zero (ChipRunner._live_inputs)
# when at least this many are (fewer would save little).
SKIP_MIN = 16


class _BlasPin:
    """Pins BLAS to one thread while at least one simulation runs in this process.

    Multi-threaded OpenBLAS may sum in another order than single-threaded, and one ulp can
    move an ADC or DAC code, so the chip's BLAS calls always run single-threaded and only the
    Numba kernels (row-wise, order-independent) use threads. The BLAS thread pool is the one
    process-wide resource the simulation touches; this guard counts its users under a lock, so
    simulations running concurrently in several Python threads neither restore the limit
    under each other's feet nor leave it changed afterwards.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._limiter = ThreadpoolController().limit(limits=1, user_api="blas")
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._limiter is not None:
                    self._limiter.restore_original_limits()
                    self._limiter = None


_PIN_BLAS = _BlasPin()


@contextmanager
def _threads(threads: int | None) -> Iterator[int]:
    """Numba threads of the calling Python thread set to ``threads`` (None: unchanged) for the
    duration of the block (numba.set_num_threads is thread-local), BLAS pinned to one."""
    before = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(threads)
    try:
        with _PIN_BLAS():
            yield numba.get_num_threads()
    finally:
        numba.set_num_threads(before)


def _check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    top = numba.config.NUMBA_NUM_THREADS
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not (
        1 <= threads <= top
    ):
        raise SimulationError(
            f"threads must be an integer in 1..{top} (numba.config.NUMBA_NUM_THREADS), "
            f"got {threads!r}"
        )
    return int(threads)


class SimulationError(ValueError):
    """Invalid simulation input: samples, labels, or a network / config that does not match
    the chip instance."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Outcome of :func:`simulate`.

    ``snr_db[l]``: layer l's output SNR with the ideal layer applied to the chip's own input
    of that layer (the error this layer adds); ``snr_db_end_to_end[l]``: against the ideal
    network run from the samples (the error accumulated up to layer l). Both compare the
    activations a layer sends on (post-activation, after activation quantisation). None
    when references were not computed; inf when the outputs are identical.
    """

    predictions: np.ndarray
    n_samples: int
    accuracy: float | None
    ideal_accuracy: float | None
    snr_db: tuple[float, ...] | None
    snr_db_end_to_end: tuple[float, ...] | None
    n_devices: int
    faults: dict[str, int]
    seconds: float
    n_chunks: int
    calibration_samples: int
    encoding: str
    dac: str
    adc: str
    age_s: float
    seed: int
    layer_info: tuple[dict, ...] = field(default=())
    sample_offset: int = 0
    threads: int = 1
    calibration_seed: int = 0
    drift_compensation: str = "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite SNRs become None)."""

        def clean(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "n_samples": self.n_samples,
            "accuracy": self.accuracy,
            "ideal_accuracy": self.ideal_accuracy,
            "snr_db": None if self.snr_db is None else [clean(v) for v in self.snr_db],
            "snr_db_end_to_end": None
            if self.snr_db_end_to_end is None
            else [clean(v) for v in self.snr_db_end_to_end],
            "n_devices": self.n_devices,
            "faults": dict(self.faults),
            "seconds": self.seconds,
            "n_chunks": self.n_chunks,
            "calibration_samples": self.calibration_samples,
            "encoding": self.encoding,
            "dac": self.dac,
            "adc": self.adc,
            "age_s": self.age_s,
            "seed": self.seed,
            "sample_offset": self.sample_offset,
            "numba_threads": self.threads,
            "calibration_seed": self.calibration_seed,
            "drift_compensation": self.drift_compensation,
            "layers": [dict(d) for d in self.layer_info],
        }

    def table(self) -> str:
        """Human-readable summary."""

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f} %"

        def db(v):
            return "inf" if not math.isfinite(v) else f"{v:.2f}"

        f = self.faults
        lines = [
            (
                f"samples            {self.n_samples} ({self.n_chunks} chunks, "
                f"{self.calibration_samples} calibration samples)"
            ),
            f"chip accuracy      {pct(self.accuracy)}",
            f"ideal accuracy     {pct(self.ideal_accuracy)}",
            (
                f"devices            {self.n_devices} (stuck at g_min {f['stuck_at_gmin']}, "
                f"at g_max {f['stuck_at_gmax']})"
            ),
            (
                f"converters         DAC {self.dac}, ADC {self.adc}; encoding {self.encoding}; "
                f"age {self.age_s:g} s (drift compensation {self.drift_compensation})"
            ),
            f"time               {self.seconds:.3f} s",
        ]
        if self.snr_db is not None and self.snr_db_end_to_end is not None:
            lines.append(
                "layer  kind       tiles  SNR dB (layer)  SNR dB (end-to-end)  clipped at 0"
            )
            for i, (a, b) in enumerate(zip(self.snr_db, self.snr_db_end_to_end)):
                info = self.layer_info[i] if i < len(self.layer_info) else {}
                clip = info.get("clipped_fraction")
                clip_s = "n/a" if clip is None else f"{100 * clip:.3f} %"
                lines.append(
                    f"{i:5d}  {info.get('kind', ''):9s}  {info.get('tiles', 0):5d}  "
                    f"{db(a):>14s}  {db(b):>19s}  {clip_s:>12s}"
                )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- calibration


@dataclass(frozen=True, eq=False)
class LayerCalibration:
    """Converter settings of one layer: the DAC full scale, the ADC ranges (blocks, row_tiles,
    col_tiles, 1 or columns) and the activation quantiser (levels, lo, hi, 1/step, step) of
    the layer's output."""

    x_max: float
    lo: np.ndarray
    hi: np.ndarray
    quantiser: tuple[int, float, float, float, float]


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibrated converters of one chip instance under one set of read-time settings: a
    value (frozen, picklable), computed once by :func:`calibrate` and reusable across
    read-noise seeds and sample shards.

    ``context`` records what it was calibrated for (the instance and the DAC / ADC /
    activation / partial-sum settings); :func:`simulate` refuses it for anything else.
    ``samples_sha256``: SHA-256 of the float32 calibration samples, ``seed``: the seed of the
    read noise during calibration.
    """

    layers: tuple[LayerCalibration, ...]
    n_samples: int
    seed: int
    samples_sha256: str
    context: str  # JSON

    def describe_mismatch(self, other_context: str) -> str | None:
        """None when ``other_context`` equals this calibration's, else what differs."""
        if other_context == self.context:
            return None
        mine, theirs = json.loads(self.context), json.loads(other_context)
        keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        return ", ".join(keys)


def _context(instance: ChipInstance, config: ChipConfig, balance: bool) -> str:
    """What a calibration depends on besides its samples and seed (JSON)."""
    return json.dumps(
        {
            "instance": [
                instance.fingerprint, instance.seed, instance.age_s, instance.age_seed,
                [float(d.compensation) for d in instance.layers],
            ],
            "encoding": instance.config.mapping.encoding,
            "dac": asdict(config.dac),
            "adc": asdict(config.adc),
            "activation_bits": config.mapping.activation_bits,
            "psum_bits": config.mapping.psum_bits,
            "balance_correction": bool(balance),
        },
        sort_keys=True,
    )


# ----------------------------------------------------------------------------- engine


def _stream_key(seed: int, *key: int) -> tuple[int, int]:
    """Two uint32 Philox key words drawn from the Generator of SeedSequence(seed, key)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    k = rng.integers(0, 2**32, size=2, dtype=np.uint64)
    return int(k[0]), int(k[1])


def _align_up(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


@dataclass(frozen=True)
class _LiveInputs:
    """The inputs of a layer that can be nonzero, per block and row tile: ``rows`` (blocks,
    row_tiles, ipt) is a kernels.dac_tiles row table with each row tile's live inputs first
    (in order) and -1 after them, ``counts`` (blocks, row_tiles) how many are live (ipt: the
    row tile is multiplied whole)."""

    rows: np.ndarray
    counts: np.ndarray


@dataclass
class _LayerState:
    """Per-layer arrays prepared once per runner, plus the calibrated ranges."""

    layer: Any
    dev: LayerDevices
    geff: np.ndarray  # (blocks, row_tiles, col_tiles * R1, ipt): column tiles side by side
    s2: np.ndarray | None  # same layout, full read-noise variance matrix
    s2_const: float  # > 0: sigma^2 * devices per input, the same for every device
    bias: np.ndarray
    out_scale: np.ndarray
    ref_coeff: np.ndarray
    ref_index: np.ndarray
    act: tuple
    last: bool
    balance: bool  # 'single' encoding: subtract g_zero * sum of the applied DAC inputs
    route: tuple | None  # ScRRAMBLe: (row_ptr, src, sign, slots_in, slots_out) of route_slots
    psum_limit: int  # 2**(psum_bits - 1) when partial sums saturate, else 0
    psum_collect: bool  # bit-serial: saturate the code sums over the passes (psum_finish)
    x_max: float = 0.0
    lo: np.ndarray | None = None  # (blocks, row_tiles, col_tiles, L)
    hi: np.ndarray | None = None
    q: tuple = (0, 0.0, 0.0, 0.0, 0.0)  # activation quantiser (levels, lo, hi, inv, step)
    dac_rows: np.ndarray | None = None  # kernels.dac_tiles row table: inputs in order
    live: _LiveInputs | None = None  # the inputs that can be nonzero, when enough cannot
    # (block, column group, row tile) -> the live inputs' conductance and variance columns
    live_cache: dict = field(default_factory=dict)


def _activation_params(layer) -> tuple:
    a = layer.activation
    if a.kind == "relu":
        return (kernels.ACT_RELU, 1.0, 1.0, 1.0)
    if a.kind == "qrelu":
        step = a.ceiling / a.levels
        return (kernels.ACT_QRELU, a.ceiling, 1.0 / step, step)
    return (kernels.ACT_NONE, 1.0, 1.0, 1.0)


def _route_table(layer: ScrrambleLayer) -> tuple:
    """CSR table of the routing matrix by destination slot, sources in increasing order."""
    r = routing_matrix(layer.routing, np.float32)  # (source slots, destination slots)
    cols = np.ascontiguousarray(r.T)
    nz = cols != 0
    row_ptr = np.zeros(cols.shape[0] + 1, np.int64)
    row_ptr[1:] = np.cumsum(nz.sum(axis=1))
    d_idx, s_idx = np.nonzero(nz)  # row-major: sorted by destination, then source
    return (row_ptr, s_idx.astype(np.int64), cols[d_idx, s_idx].astype(np.float32),
            r.shape[0], r.shape[1])


class ChipRunner:
    """A chip instance prepared for simulation: device arrays laid out for BLAS and a batched
    forward pass; :meth:`calibrate` or :meth:`use` sets the converters. Raises
    SimulationError (``check``: :func:`check_compatible`) when the network or config does not
    match the instance. ``seed``: the read-noise seed of :meth:`forward`."""

    def __init__(
        self,
        network: Network,
        instance: ChipInstance,
        config: ChipConfig,
        seed: int,
        *,
        balance_correction: bool = True,
        check: bool = True,
    ):
        if check:  # check_compatible (hashes the network's weights)
            check_compatible(network, instance, config)
        self.seed = _check_seed(seed, "seed")
        self.network = network
        self.balance_correction = bool(balance_correction)
        self.instance = instance
        self.config = config
        dac = config.dac
        self.bit_serial = dac.mode == "bit_serial"
        self.dac_bits = dac.bits
        self.adc: ADCConfig = config.adc
        self.adc_levels = (1 << config.adc.bits) - 1 if config.adc.bits else 0
        self.act_bits = config.mapping.activation_bits
        self.context = _context(instance, config, self.balance_correction)
        self._buffers: dict[str, np.ndarray] = {}
        self.states = [self._prepare(i, layer) for i, layer in enumerate(network.layers)]
        self.calibration: Calibration | None = None
        # seconds per stage of the forward pass when a dict (benchmarks/bench_chip.py)
        self.stage_seconds: dict[str, float] | None = None
        self.skip_zero_inputs = config.simulation.skip_zero_inputs
        # [inputs left out of the products, inputs] over the forward passes' row tiles
        self.skipped_inputs = [0, 0]

    def _tick(self, stage: str, t0: float) -> float:
        """Add the time since t0 to ``stage`` (when timing stages); return now."""
        if self.stage_seconds is None:
            return 0.0
        now = time.perf_counter()
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + now - t0
        return now

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    # -- preparation

    def _prepare(self, i: int, layer) -> _LayerState:
        dev = self.instance.layers[i]
        t = dev.tiling
        r1 = t.outputs_per_tile + (1 if dev.has_ref else 0)
        # the column tiles of a row tile side by side: (C R1, ipt) rows, one wide product
        shape = (t.n_blocks, t.row_tiles, t.col_tiles * r1, t.inputs_per_tile)
        geff = np.ascontiguousarray(dev.effective, dtype=np.float32).reshape(shape)
        device = self.config.device
        s2 = None
        s2_const = 0.0
        if not device.read.is_zero():
            if device.read.kind == "constant":
                per_input = 2 if dev.current.g_neg is not None else 1
                s2_const = float(device.read.coeffs[0]) ** 2 * per_input
            else:
                s2 = np.ascontiguousarray(self.instance.read_variance(i)).reshape(shape)
        n_out = t.n_out
        bias = (
            np.asarray(layer.bias, dtype=np.float32)
            if isinstance(layer, DenseLayer)
            else np.zeros(n_out, np.float32)
        )
        out_scale = (dev.out_scale * np.float32(dev.compensation)).astype(np.float32)
        pos = np.arange(n_out) % t.block_out
        block = np.arange(n_out) // t.block_out
        ref_coeff = np.ascontiguousarray(dev.ref_coeff, dtype=np.float32)
        balance = dev.encoding == "single" and self.balance_correction
        if dev.has_ref:  # reference column of the output's column tile
            ref_index = (block * t.col_tiles + pos // t.outputs_per_tile).astype(np.int64)
        elif balance:  # digital sum of the block's DAC inputs
            ref_index = block.astype(np.int64)
            # the common-mode current is g_zero(t) * sum(q) with g_zero(t) ~ g_zero / comp
            # (what the drift compensation assumes), so subtract it in the drifted units
            ref_coeff = np.ascontiguousarray(
                dev.g_zero / np.float32(dev.compensation), dtype=np.float32
            )
        else:
            ref_index = np.full(n_out, -1, dtype=np.int64)
        last = i == len(self.network.layers) - 1
        route = _route_table(layer) if isinstance(layer, ScrrambleLayer) else None
        # partial sums: a row tile's code (sums over bit-serial passes) needs adc + planes bits
        limit, collect = 0, False
        if self.adc_levels and t.row_tiles > 1:
            planes = self.dac_bits - 1 if self.bit_serial else 0
            psum_bits = self.config.mapping.psum_bits
            if psum_bits < self.adc.bits + planes:
                limit, collect = 1 << (psum_bits - 1), self.bit_serial
        state = _LayerState(
            layer, dev, geff, s2, s2_const, bias, out_scale, ref_coeff, ref_index,
            _activation_params(layer), last, balance, route, limit, collect,
        )
        state.dac_rows = kernels.tile_rows(t.n_blocks, t.block_in, t.row_tiles, t.inputs_per_tile)
        state.live = self._live_inputs(i, state)
        return state

    def _live_inputs(self, i: int, st: _LayerState) -> _LiveInputs | None:
        """The inputs of layer i that can be nonzero, or None when no row tile has SKIP_MIN
        inputs that are always zero. Always zero, for any samples: the zero padding of the
        input images (``InputSpec``; routed through a ScRRAMBLe first layer, an input is zero
        when all its sources are) and the rows of a partial row tile beyond the block's
        inputs. They drive no current, so leaving them out of the products changes no current
        and no read-noise variance (docs/simulation.md). The set is fixed per layer, so the
        results do not depend on which samples share a block (shards, batch chunks)."""
        t = st.dev.tiling
        nb, rt, ipt = t.n_blocks, t.row_tiles, t.inputs_per_tile
        live = np.zeros((nb, rt * ipt), np.bool_)
        if i == 0:  # the features that are not zero padding, routed like the samples
            spec = self.network.input_spec
            real = spec.prepare(np.ones((1, *spec.image_shape), np.float32))[:, 0] != 0
            if st.route is None:
                live[:, : t.block_in] = real[None, : t.block_in]
            else:
                row_ptr, src, sign, n_src, n_dst = st.route
                routed = np.empty((n_dst, st.layer.slot_size), np.float32)
                kernels.route_slots(real.astype(np.float32).reshape(n_src, -1), row_ptr, src,
                                    np.abs(sign), routed)
                live[:, : t.block_in] = routed.reshape(nb, t.block_in) != 0
        else:
            live[:, : t.block_in] = True
        live = live.reshape(nb, rt, ipt)
        counts = live.sum(axis=2)
        counts[ipt - counts < SKIP_MIN] = ipt  # not worth it: the whole row tile
        if np.all(counts == ipt):
            return None
        rows = st.dac_rows.copy()  # in order; the skipping row tiles: live inputs first
        for b, r in zip(*np.nonzero(counts < ipt)):
            rows[b, r] = -1
            rows[b, r, : counts[b, r]] = np.flatnonzero(live[b, r]) + r * ipt
        return _LiveInputs(rows, counts)

    # -- one layer

    def _blocks(self, st: _LayerState, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if st.route is None:
            return x[None]
        row_ptr, src, sign, n_src, n_dst = st.route
        layer = st.layer
        nbatch = x.shape[-1]
        out = self._scratch("routed", (n_dst, layer.slot_size * nbatch))
        kernels.route_slots(x.reshape(n_src, -1), row_ptr, src, sign, out)
        return out.reshape(layer.n_dst_cores, layer.core_size, nbatch)

    def _passes(self, st: _LayerState) -> list[tuple[int, float]]:
        """(plane or -1, digital weight) for every analog read of an input vector."""
        if not self.bit_serial:
            return [(-1, 1.0)]
        step = st.x_max / ((1 << (self.dac_bits - 1)) - 1)
        return [(p, float(np.float32((1 << p) * step))) for p in range(self.dac_bits - 1)]

    def _dac_params(self, st: _LayerState) -> tuple[int, float, float]:
        if self.dac_bits == 0:
            return 0, 1.0, 1.0
        step = st.x_max / ((1 << (self.dac_bits - 1)) - 1)
        return (1 << (self.dac_bits - 1)) - 1, 1.0 / step, step

    @staticmethod
    def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, blocked: bool) -> None:
        """out = a @ b; ``blocked``: in BLAS calls of exactly BLOCK columns (the batch is
        padded to whole blocks aligned to the global sample index), so a sample's result does
        not depend on the batch it is in (BLAS picks kernels by the matrix sizes)."""
        if not blocked:
            np.matmul(a, b, out=out)
            return
        for k in range(0, b.shape[-1], BLOCK):
            np.matmul(a, b[..., k : k + BLOCK], out=out[..., k : k + BLOCK])

    def _layer(
        self, st: _LayerState, x: np.ndarray, key: tuple[int, int], calibrating: bool,
        s0: int, out: np.ndarray | None = None,
    ) -> np.ndarray:
        """One layer on a feature-major batch x (n_in, B) -> its output (n_out, B), written
        into ``out`` (C-contiguous, float32) when given; the batch's samples have the global
        indices s0 .. s0 + B - 1 (forward: B = BLOCK and s0 a multiple of it).

        Loops: block (DAC of its routed input), run of column tiles (:meth:`_column_groups`,
        multiplied side by side), then in the forward pass with one analog read per input:
        row tile (its two products, then the fused noise + ADC + partial-sum kernel per
        column tile, the sums over row tiles kept in a work array); otherwise DAC pass (the
        products of all row tiles in one batched call, then the kernel per column tile).
        """
        t = st.dev.tiling
        nb, rt, ct, ipt = t.n_blocks, t.row_tiles, t.col_tiles, t.inputs_per_tile
        opt, has_ref = t.outputs_per_tile, int(st.dev.has_ref)
        r1 = opt + has_ref
        nbatch = x.shape[-1]
        blocked = not calibrating
        timing = self.stage_seconds is not None and not calibrating
        clock = time.perf_counter() if timing else 0.0
        blocks = self._blocks(st, x)
        if timing:
            clock = self._tick("routing", clock)
        if calibrating:
            peak = float(np.max(np.abs(blocks))) if blocks.size else 0.0
            st.x_max = peak if peak > 0 else 1.0
            width = r1 if self.adc.granularity == "column" else 1
            st.lo = np.zeros((nb, rt, ct, width), np.float32)
            st.hi = np.ones_like(st.lo)
        noisy = st.s2 is not None or st.s2_const > 0
        want_sq = st.s2 is not None
        passes = self._passes(st)
        n_pass = len(passes)
        levels, inv_step, step = self._dac_params(st)
        jobs = 4 * numba.get_num_threads()  # parallel jobs per ADC kernel call

        xt = self._scratch("xt", (rt, ipt, nbatch))
        x2 = self._scratch("x2", (rt, ipt, nbatch) if want_sq else (1, 1, 1))
        groups = self._column_groups(st)
        m_max = max(rows_g for _, _, rows_g in groups)
        size_max = rt * m_max * nbatch
        cur_buf = self._scratch("cur", (size_max * (n_pass if calibrating else 1),))
        var_buf = self._scratch("var", (size_max if want_sq else rt * nbatch,))
        if out is None:
            acc = np.zeros((t.n_out, nbatch), np.float32)
        else:
            acc = out
            acc.fill(0.0)
        ref_acc = self._scratch("ref", (nb * ct if has_ref else (nb if st.balance else 1), nbatch))
        ref_acc.fill(0.0)
        codes = self._scratch("codes", (1, t.block_in, nbatch), np.int32) if self.bit_serial else None
        psum_all = self._scratch("psum", (size_max,), np.float64) if st.psum_collect else None
        if psum_all is not None:
            psum_all.fill(0.0)
        no_psum = np.zeros((0, 0, 0), np.float64)
        k0, k1 = key
        w_sum = float(sum(np.float32(w) for _, w in passes))

        def convert(cur, var, use_var, lo_u, hi_u, stream, row_base, weight, k, out_rows,
                    ref_row, psum, first, rows, row_acc=None, r_offset=0, last=True):
            kernels.adc_accumulate(
                cur, var, use_var, lo_u, hi_u, self.adc_levels, self.adc.noise_lsb, k0, k1,
                stream, row_base, ct * r1, has_ref, weight, out_rows, ref_row, jobs, s0,
                0 if psum.shape[0] else st.psum_limit, psum, float(1 << k), first, rows,
                row_acc, r_offset, last,
            )

        # forward, one analog read per input: the row tiles one at a time, each tile's
        # currents converted right after its products (work arrays that stay in cache)
        by_row_tile = not calibrating and not self.bit_serial

        for b in range(nb):
            blk = blocks[b : b + 1]
            # skip zero inputs: each row tile's live inputs first, the products use those rows
            skip = by_row_tile and self.skip_zero_inputs and st.live is not None
            if self.bit_serial:
                kernels.dac_codes_kernel(blk, st.x_max, inv_step, codes)
            else:
                rows = (st.live.rows if skip else st.dac_rows)[b : b + 1]
                kernels.dac_tiles(blk, rows, levels, st.x_max, inv_step, step, xt[None],
                                  x2[None], want_sq)
            if skip:
                self.skipped_inputs[0] += int(rt * ipt - st.live.counts[b].sum())
                self.skipped_inputs[1] += rt * ipt
            if timing:
                clock = self._tick("dac", clock)
            for c0, c1, m in groups:  # column tiles c0 .. c1 - 1: m rows side by side
                tiles = [(c, (c - c0) * r1, has_ref + min(opt, t.block_out - c * opt))
                         for c in range(c0, c1)]  # (column tile, first row, real rows)
                g_u = st.geff[b, :, c0 * r1 : c0 * r1 + m, :]
                s2_u = st.s2[b, :, c0 * r1 : c0 * r1 + m, :] if want_sq else None
                row_base = (b * rt * ct + c0) * r1  # counter row = tile id * r1 + column
                size = rt * m * nbatch
                var = var_buf[: rt * nbatch].reshape(rt, 1, nbatch)
                if want_sq:
                    var = var_buf[:size].reshape(rt, m, nbatch)
                psum = no_psum
                if psum_all is not None:
                    psum = psum_all[:size].reshape(rt, m, nbatch)
                if by_row_tile:
                    weight = passes[0][1]
                    if st.balance and c0 == 0:
                        kernels.accumulate_sum(xt, weight, ref_acc[b])
                    if noisy and not want_sq:
                        var_c = var_buf[: rt * nbatch].reshape(rt, 1, nbatch)
                        kernels.scaled_energy(xt, st.s2_const, var_c)
                    if timing:
                        clock = self._tick("noise variance", clock)
                    row_acc = self._scratch("row_acc", (m, nbatch)) if rt > 1 else None
                    cur = cur_buf[: m * nbatch].reshape(1, m, nbatch)
                    for r in range(rt):
                        g_r, s2_r, x_r, x2_r = g_u[r], None, xt[r], None
                        if want_sq:
                            s2_r, x2_r = s2_u[r], x2[r]
                        if skip:  # the live inputs (all of them, or not enough dead)
                            k = st.live.counts[b, r]
                            if k < ipt:
                                g_r, s2_r = self._live_columns(st, (b, c0, r), g_r, s2_r)
                                x_r = xt[r, :k]
                                if want_sq:
                                    x2_r = x2[r, :k]
                        self._matmul(g_r, x_r, cur[0], blocked)
                        if timing:
                            clock = self._tick("mvm", clock)
                        if want_sq:
                            var = var_buf[: m * nbatch].reshape(1, m, nbatch)
                            self._matmul(s2_r, x2_r, var[0], blocked)
                        else:
                            var = var_c[r : r + 1] if noisy else var_buf[:nbatch].reshape(1, 1, -1)
                        if timing:
                            clock = self._tick("noise variance", clock)
                        for c, first, rows in tiles:
                            lo_u, hi_u = self._ranges(st, b, c, rows)
                            f0 = b * t.block_out + c * opt
                            ref_row = ref_acc[b * ct + c] if has_ref else ref_acc[0]
                            convert(cur, var, noisy, lo_u[r : r + 1], hi_u[r : r + 1], 0,
                                    row_base + first + r * ct * r1, weight, 0,
                                    acc[f0 : f0 + rows - has_ref], ref_row, no_psum, first, rows,
                                    row_acc, r, r == rt - 1)
                        if timing:
                            clock = self._tick("noise + ADC + partial sums", clock)
                    continue
                for k, (plane, weight) in enumerate(passes):
                    if plane >= 0:
                        kernels.dac_plane(codes, plane, xt, x2, want_sq)
                    if st.balance and c0 == 0:
                        kernels.accumulate_sum(xt, weight, ref_acc[b])
                    if timing:
                        clock = self._tick("dac", clock)
                    off = k * size if calibrating else 0
                    cur = cur_buf[off : off + size].reshape(rt, m, nbatch)
                    self._matmul(g_u, xt, cur, blocked)
                    if timing:
                        clock = self._tick("mvm", clock)
                    if want_sq:
                        self._matmul(s2_u, x2, var, blocked)
                    elif noisy:
                        kernels.scaled_energy(xt, st.s2_const, var)
                    if timing:
                        clock = self._tick("noise variance", clock)
                    if calibrating:
                        if noisy:
                            kernels.add_read_noise(cur, var, k0, k1, 2 * k, row_base, ct * r1, s0)
                        continue
                    for c, first, rows in tiles:
                        lo_u, hi_u = self._ranges(st, b, c, rows)
                        f0 = b * t.block_out + c * opt
                        ref_row = ref_acc[b * ct + c] if has_ref else ref_acc[0]
                        convert(cur, var, noisy, lo_u, hi_u, k, row_base + first, weight, k,
                                acc[f0 : f0 + rows - has_ref], ref_row, psum, first, rows)
                    if timing:
                        clock = self._tick("noise + ADC + partial sums", clock)
                for c, first, rows in tiles:
                    f0 = b * t.block_out + c * opt
                    out_rows = acc[f0 : f0 + rows - has_ref]
                    ref_row = ref_acc[b * ct + c] if has_ref else ref_acc[0]
                    if calibrating:
                        stored = cur_buf[: n_pass * size].reshape(n_pass, rt, m, nbatch)
                        sample = np.ascontiguousarray(
                            stored[:, :, first : first + rows].transpose(1, 2, 0, 3)
                        ).reshape(rt, rows, n_pass * nbatch)
                        lo, hi = calibrate_adc(sample, self.adc)
                        width = lo.shape[1]
                        st.lo[b, :, c, :width], st.hi[b, :, c, :width] = lo[:, :, 0], hi[:, :, 0]
                        lo_u, hi_u = self._ranges(st, b, c, rows)
                        for k, (_, weight) in enumerate(passes):
                            convert(stored[k], var, False, lo_u, hi_u, 2 * k + 1,
                                    row_base + first, weight, k, out_rows, ref_row, psum, first,
                                    rows)
                    if psum.shape[0]:  # one column tile per group (see _column_groups)
                        lo_u, hi_u = self._ranges(st, b, c, rows)
                        kernels.psum_finish(
                            psum, lo_u, hi_u, self.adc_levels, st.psum_limit, passes[0][1], w_sum,
                            has_ref, out_rows, ref_row,
                        )

        kind, ceiling, a_inv, a_step = st.act
        if calibrating:
            kernels.decode_outputs(
                acc, ref_acc, st.ref_index, st.out_scale, st.ref_coeff, st.bias, kind, ceiling,
                a_inv, a_step, 0, 0.0, 0.0, 1.0, 1.0,
            )
            st.q = self._activation_quantiser(st, acc)
            levels_q, qlo, qhi, qinv, qstep = st.q
            if levels_q:
                np.clip(acc, np.float32(qlo), np.float32(qhi), out=acc)
                acc *= np.float32(qinv)
                np.rint(acc, out=acc)
                acc *= np.float32(qstep)
            return acc
        levels_q, qlo, qhi, qinv, qstep = st.q
        kernels.decode_outputs(
            acc, ref_acc, st.ref_index, st.out_scale, st.ref_coeff, st.bias, kind, ceiling,
            a_inv, a_step, levels_q, qlo, qhi, qinv, qstep,
        )
        if timing:
            self._tick("decode", clock)
        return acc

    def _live_columns(self, st: _LayerState, where: tuple, g: np.ndarray,
                      s2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The live inputs' columns (in the order of st.live.rows) of a row tile's conductance
        and read-variance matrices (rows, ipt), gathered once per (block, column group, row
        tile)."""
        hit = st.live_cache.get(where)
        if hit is None:
            b, _, r = where
            idx = st.live.rows[b, r, : st.live.counts[b, r]] - r * st.dev.tiling.inputs_per_tile
            hit = (np.take(g, idx, axis=1), None if s2 is None else np.take(s2, idx, axis=1))
            st.live_cache[where] = hit
        return hit

    @staticmethod
    def _column_groups(st: _LayerState) -> list[tuple[int, int, int]]:
        """(first, stop, rows): runs of column tiles c = first .. stop - 1 whose matrices are
        multiplied side by side in one BLAS call per row tile (their rows are adjacent in
        ``geff``; ``rows``: the run's real rows, the last column tile may be narrower). The
        column tiles are split into runs of equal length, about WIDE_ROWS rows each (one
        column tile with bit-serial partial sums, whose per-tile sums
        :func:`sim.chip.kernels.psum_finish` completes)."""
        t = st.dev.tiling
        opt, has_ref, ct = t.outputs_per_tile, int(st.dev.has_ref), t.col_tiles
        r1 = opt + has_ref
        per = 1
        if not st.psum_collect:  # about WIDE_ROWS rows per run, runs of equal size
            runs = max(1, round(ct * r1 / WIDE_ROWS))
            per = -(-ct // runs)
        groups = []
        for c0 in range(0, ct, per):
            c1 = min(ct, c0 + per)
            rows = (c1 - 1 - c0) * r1 + has_ref + min(opt, t.block_out - (c1 - 1) * opt)
            groups.append((c0, c1, rows))
        return groups

    @staticmethod
    def _ranges(st: _LayerState, b: int, c: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous, writable (row_tiles, L) ADC ranges of the tiles of (block b, column
        tile c): one argument type for the kernels whether or not the calibration's arrays
        are read-only (Numba compiles a specialisation per type)."""
        width = rows if st.lo.shape[-1] > 1 else 1
        return (
            np.require(st.lo[b, :, c, :width], np.float32, ("C", "W")),
            np.require(st.hi[b, :, c, :width], np.float32, ("C", "W")),
        )

    def _scratch(self, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        """A C-contiguous work array reused across layers and chunks (grown as needed), so
        that large buffers are not re-allocated and page-faulted for every chunk."""
        size = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._buffers[name] = buf
        return buf[:size].reshape(shape)

    def _activation_quantiser(self, st: _LayerState, y: np.ndarray) -> tuple:
        """(levels, lo, hi, 1/step, step) of the quantiser between this layer and the next."""
        bits = self.act_bits
        if st.last or bits == 0:
            return (0, 0.0, 0.0, 1.0, 1.0)
        kind, ceiling = st.act[0], st.act[1]
        if kind == kernels.ACT_QRELU:
            top = ceiling
        else:
            top = float(np.max(np.abs(y))) if y.size else 0.0
            top = top if top > 0 else 1.0
        if kind == kernels.ACT_NONE:  # signed activations: symmetric quantiser
            levels = (1 << (bits - 1)) - 1 if bits > 1 else 1
            step = top / levels
            return (levels, -top, top, 1.0 / step, step)
        levels = (1 << bits) - 1
        step = top / levels
        return (levels, 0.0, top, 1.0 / step, step)

    # -- calibration

    def calibrate(self, x: np.ndarray, *, seed: int | None = None) -> Calibration:
        """Calibrate DAC full scales, ADC ranges and activation quantisers, layer by layer, on
        feature-major calibration inputs (the chip's own outputs feed the next layer), with
        the read noise of ``seed`` (default: the runner's seed); returns the calibration and
        uses it."""
        seed = self.seed if seed is None else _check_seed(seed, "calibration seed")
        x = np.ascontiguousarray(x, dtype=np.float32)
        digest = hashlib.sha256(x.tobytes()).hexdigest()
        n = int(x.shape[-1])
        with _PIN_BLAS():
            for i, st in enumerate(self.states):
                key = _stream_key(seed, CALIB_STREAM, i)
                x = self._layer(st, x, key, calibrating=True, s0=0)
        layers = []
        for st in self.states:
            for a in (st.lo, st.hi):
                a.setflags(write=False)
            layers.append(LayerCalibration(float(st.x_max), st.lo, st.hi, tuple(st.q)))
        self.calibration = Calibration(tuple(layers), n, seed, digest, self.context)
        return self.calibration

    def use(self, calibration: Calibration) -> None:
        """Use a calibration made by :func:`calibrate` for this instance and these settings."""
        if not isinstance(calibration, Calibration):
            raise SimulationError(
                f"calibration must be a Calibration (from calibrate()), got "
                f"{type(calibration).__name__}"
            )
        diff = calibration.describe_mismatch(self.context)
        if diff is not None or len(calibration.layers) != len(self.states):
            raise SimulationError(
                "the calibration was made for another chip instance or other read-time "
                f"settings (differs in: {diff or 'layers'}); calibrate again"
            )
        for st, lc in zip(self.states, calibration.layers):
            st.x_max, st.lo, st.hi, st.q = lc.x_max, lc.lo, lc.hi, tuple(lc.quantiser)
        self.calibration = calibration

    # -- forward

    def _padded(self, x: np.ndarray, sample_offset: int) -> tuple[np.ndarray, int, int]:
        """x (n, B) padded with zero samples to whole BLOCKs aligned to the global index:
        (padded, global index of its column 0, column of x's first sample)."""
        o = sample_offset % BLOCK
        nbatch = x.shape[-1]
        width = _align_up(o + nbatch)
        if o == 0 and width == nbatch:
            return np.ascontiguousarray(x, np.float32), sample_offset, 0
        pad = np.zeros((x.shape[0], width), np.float32)
        pad[:, o : o + nbatch] = x
        return pad, sample_offset - o, o

    def _check_offset(self, sample_offset: Any) -> int:
        if not self.calibrated:
            raise SimulationError("ChipRunner.forward needs calibrate() or use() first")
        return _check_seed(sample_offset, "sample_offset")

    def forward_layer(self, index: int, x: np.ndarray, sample_offset: int = 0) -> np.ndarray:
        """One calibrated layer on feature-major inputs (n_in, B) whose samples have the
        global indices sample_offset .. + B - 1 -> its chip output."""
        s0 = self._check_offset(sample_offset)
        return self._run(np.asarray(x, np.float32), s0, index, index + 1, True)[0]

    def forward(self, x: np.ndarray, sample_offset: int = 0) -> list[np.ndarray]:
        """Feature-major input (n_in, B), samples with the global indices sample_offset ..
        + B - 1 -> every layer's chip output (feature-major)."""
        s0 = self._check_offset(sample_offset)
        return self._run(np.asarray(x, np.float32), s0, 0, len(self.states), True)

    def output(self, x: np.ndarray, sample_offset: int = 0) -> np.ndarray:
        """The last layer's chip output of :meth:`forward` (the hidden layers' outputs are not
        kept, so they need no memory of their own)."""
        s0 = self._check_offset(sample_offset)
        return self._run(np.asarray(x, np.float32), s0, 0, len(self.states), False)[-1]

    def _run(
        self, x: np.ndarray, s0: int, first: int, stop: int, keep: bool
    ) -> list[np.ndarray]:
        """Layers first .. stop - 1 on x (n_in, B) of the global samples s0 ..: the batch,
        padded to whole BLOCKs aligned to the global index, goes through all the layers one
        BLOCK at a time (contiguous BLOCK-wide matrix products, work arrays that stay in
        cache). Returns every layer's output for the B samples (``keep``), else the last's."""
        n = x.shape[-1]
        xp, base, o = self._padded(x, s0)
        width = xp.shape[-1]
        layers = range(first, stop)
        keys = [_stream_key(self.seed, SIM_STREAM, i) for i in layers]
        outs = [  # exactly the B samples, contiguous
            np.empty((self.states[i].dev.tiling.n_out, n), np.float32)
            if keep or i == stop - 1 else None
            for i in layers
        ]
        whole = width == n == BLOCK  # one unpadded block: layers write their outputs in place
        with _PIN_BLAS():
            for a in range(0, width, BLOCK):
                y = xp[:, a : a + BLOCK]
                if width != BLOCK:
                    y = self._scratch("input", y.shape)
                    np.copyto(y, xp[:, a : a + BLOCK])
                lo, hi = max(a, o), min(a + BLOCK, o + n)  # this block's samples, padded index
                for i, key in zip(layers, keys):
                    out = outs[i - first]
                    if out is not None and whole:
                        work = out
                    else:  # hidden layers alternate between two work arrays
                        shape = (self.states[i].dev.tiling.n_out, BLOCK)
                        work = self._scratch(f"layer_out{(i - first) % 2}", shape)
                    y = self._layer(self.states[i], y, key, calibrating=False, s0=base + a,
                                    out=work)
                    if out is not None and work is not out:
                        out[:, lo - o : hi - o] = y[:, lo - a : hi - a]
        return [y for y in outs if y is not None]


# ----------------------------------------------------------------------------- entry point


def check_compatible(network: Network, instance: ChipInstance, config: ChipConfig) -> None:
    """Raise SimulationError unless ``instance`` was programmed for ``network`` with the
    [chip], [device] and [mapping] encoding / scaling of ``config``."""
    for section in ("chip", "device"):
        if getattr(config, section) != getattr(instance.config, section):
            raise SimulationError(
                f"{config.source}: [{section}] differs from the configuration the chip instance "
                "was programmed with; program the chip again"
            )
    for key in ("encoding", "scaling"):
        if getattr(config.mapping, key) != getattr(instance.config.mapping, key):
            raise SimulationError(
                f"{config.source}: [mapping] {key} differs from the chip instance's "
                f"({getattr(instance.config.mapping, key)!r}); program the chip again"
            )
    if len(network.layers) != len(instance.layers) or (
        network_fingerprint(network) != instance.fingerprint
    ):
        raise SimulationError("the chip instance was programmed for a different network")


def _check_seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SimulationError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def _check_samples(network: Network, samples: Any, what: str) -> np.ndarray:
    try:
        x = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SimulationError(f"{what} must be a numeric array: {exc}") from None
    spec = network.input_spec
    n_img = int(np.prod(spec.image_shape))
    if x.ndim < 1 or x.shape[0] == 0 or int(np.prod(x.shape[1:])) != n_img:
        raise SimulationError(
            f"{what} must be shaped (N, {', '.join(map(str, spec.image_shape))}) or "
            f"(N, {n_img}) with N >= 1, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise SimulationError(f"{what} hold NaN or infinite values")
    return x


def _snr_db(signal: float, error: float) -> float:
    if error <= 0:
        return math.inf
    if signal <= 0:
        return -math.inf
    return 10.0 * math.log10(signal / error)


def calibrate(
    network: Network,
    instance: ChipInstance,
    samples: Any,
    *,
    config: ChipConfig | None = None,
    seed: int = 0,
    balance_correction: bool | None = None,
    threads: int | None = None,
) -> Calibration:
    """Calibrate the converters of ``instance`` on the first ``[simulation]
    calibration_samples`` of ``samples`` (N, *image_shape): DAC full scales, ADC ranges and
    activation quantisers, layer by layer, with the calibration reads' own read noise
    (``seed``). ``config`` (default: the instance's) and ``balance_correction`` as in
    :func:`simulate`. The result is a frozen, picklable value for any number of
    :func:`simulate` calls (read-noise seeds, sample shards) with the same instance and
    read-time settings. Use samples that are not scored (e.g. the training split)."""
    config = instance.config if config is None else config
    seed = _check_seed(seed, "calibration seed")
    threads = _check_threads(threads)
    check_compatible(network, instance, config)
    x = _check_samples(network, samples, "calibration samples")
    x = x[: config.simulation.calibration_samples]
    if balance_correction is None:
        balance_correction = config.mapping.balance_correction
    runner = ChipRunner(
        network, instance, config, seed, balance_correction=balance_correction, check=False
    )
    with _threads(threads):
        return runner.calibrate(network.input_spec.prepare(x), seed=seed)


def _chunks(start: int, stop: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Global [a, b) ranges of about ``chunk`` samples. A chunk of at least BLOCK / 2 is
    rounded to the nearest whole number of BLOCKs and the inner boundaries fall on multiples
    of BLOCK, so only the shard's ends need padding; smaller chunks are taken as they are
    (each then computes whole padded blocks)."""
    if chunk >= BLOCK // 2:
        chunk = max(1, round(chunk / BLOCK)) * BLOCK
    a = start
    while a < stop:
        b = a + chunk
        if chunk >= BLOCK:
            b -= b % BLOCK
        b = min(stop, b)
        yield a, b
        a = b


def simulate(
    network: Network,
    instance: ChipInstance,
    samples: Any,
    *,
    labels: Any = None,
    seed: int,
    config: ChipConfig | None = None,
    calibration: Calibration | Any = None,
    sample_offset: int = 0,
    threads: int | None = None,
    reference: bool = True,
    balance_correction: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run ``samples`` (N, *image_shape) through the programmed chip ``instance``.

    ``config`` (default: the instance's) supplies the read-time settings (DAC, ADC,
    activation and partial-sum bits, batch chunk, calibration samples); its chip geometry,
    device and encoding must be those the instance was programmed with.
    ``calibration`` (required): a :class:`Calibration` from :func:`calibrate`, or calibration
    samples, which are then calibrated on with the read-noise ``seed``. The samples scored are
    never used for calibration unless passed here explicitly.
    ``seed``: the read-noise seed. ``sample_offset``: global index of ``samples[0]`` in the
    dataset; every read-noise draw is keyed by the global sample index, so shards of a
    dataset simulated separately give the same predictions as the whole.
    ``threads``: Numba threads for this call (default: the calling thread's current count);
    results do not depend on it.
    ``reference``: also run the ideal network for ideal accuracy and per-layer SNR.
    ``balance_correction`` ('single' encoding only): the decode subtracts g_zero times the
    digital sum of the DAC inputs, the common-mode current left when DAC rounding breaks the
    exact balance of the routed inputs (see docs/simulation.md); False models a chip without
    that adder; None (default) takes ``[mapping] balance_correction`` from ``config``.
    ``progress(n)`` is called after every chunk with the number of samples done.
    """
    t_start = time.perf_counter()
    seed = _check_seed(seed, "seed")
    offset = _check_seed(sample_offset, "sample_offset")
    threads = _check_threads(threads)
    config = instance.config if config is None else config
    check_compatible(network, instance, config)
    x_all = _check_samples(network, samples, "samples")
    n = x_all.shape[0]
    y_true = None
    if labels is not None:
        y_true = np.asarray(labels)
        if y_true.shape != (n,) or not np.issubdtype(y_true.dtype, np.integer):
            raise SimulationError(
                f"labels must be integers shaped ({n},) like the samples, got "
                f"{y_true.dtype} {y_true.shape}"
            )
    if calibration is None:
        raise SimulationError(
            "calibration is required: a Calibration from calibrate(), or calibration samples "
            "(e.g. from the training split; pass the scored samples themselves only on purpose)"
        )
    if balance_correction is None:
        balance_correction = config.mapping.balance_correction
    runner = ChipRunner(
        network, instance, config, seed, balance_correction=balance_correction,
        check=False,  # checked above
    )
    with _threads(threads) as n_threads:
        if isinstance(calibration, Calibration):
            runner.use(calibration)
        else:
            cal = _check_samples(network, calibration, "calibration samples")
            cal = cal[: config.simulation.calibration_samples]
            runner.calibrate(network.input_spec.prepare(cal), seed=seed)
        cal_used = runner.calibration

        n_layers = len(network.layers)
        sig = np.zeros(n_layers)
        err = np.zeros(n_layers)
        sig_e2e = np.zeros(n_layers)
        err_e2e = np.zeros(n_layers)
        preds = np.empty(n, dtype=np.int64)
        ideal_preds = np.empty(n, dtype=np.int64) if reference else None
        n_chunks = 0
        for a, b in _chunks(offset, offset + n, config.simulation.batch_chunk):
            start, stop = a - offset, b - offset
            x = network.input_spec.prepare(x_all[start:stop])
            outs = runner.forward(x, a) if reference else [runner.output(x, a)]
            preds[start:stop] = np.argmax(network.readout.scores(outs[-1]), axis=1)
            if reference:
                ideal = network.forward_features(x)
                ideal_preds[start:stop] = np.argmax(network.readout.scores(ideal[-1]), axis=1)
                inputs = [x] + outs[:-1]
                for i, layer in enumerate(network.layers):
                    local = layer.activation.apply(layer.preactivation(inputs[i]))
                    d = outs[i].astype(np.float64) - local
                    sig[i] += float(np.sum(np.square(local, dtype=np.float64)))
                    err[i] += float(np.sum(d * d))
                    d = outs[i].astype(np.float64) - ideal[i]
                    sig_e2e[i] += float(np.sum(np.square(ideal[i], dtype=np.float64)))
                    err_e2e[i] += float(np.sum(d * d))
            n_chunks += 1
            if progress is not None:
                progress(stop)

    accuracy = None if y_true is None else float(np.mean(preds == y_true))
    ideal_acc = None
    if reference and y_true is not None:
        ideal_acc = float(np.mean(ideal_preds == y_true))
    info = tuple(
        {
            "kind": "scrramble" if isinstance(layer, ScrrambleLayer) else "dense",
            "tiles": st.dev.tiling.n_tiles,
            "devices": st.dev.n_devices,
            "dac_full_scale": st.x_max,
            "compensation": st.dev.compensation,
            "clipped_fraction": st.dev.clipped_fraction,
            "psum_saturation": bool(st.psum_limit),
        }
        for layer, st in zip(network.layers, runner.states)
    )
    dac = "ideal" if config.dac.bits == 0 else f"{config.dac.bits}-bit {config.dac.mode}"
    adc = "ideal" if config.adc.bits == 0 else (
        f"{config.adc.bits}-bit {config.adc.calibration}/{config.adc.granularity}"
    )
    return SimulationResult(
        predictions=preds,
        n_samples=n,
        accuracy=accuracy,
        ideal_accuracy=ideal_acc,
        snr_db=tuple(_snr_db(s, e) for s, e in zip(sig, err)) if reference else None,
        snr_db_end_to_end=tuple(_snr_db(s, e) for s, e in zip(sig_e2e, err_e2e))
        if reference
        else None,
        n_devices=instance.n_devices,
        faults=instance.fault_counts(),
        seconds=time.perf_counter() - t_start,
        n_chunks=n_chunks,
        calibration_samples=cal_used.n_samples,
        encoding=instance.config.mapping.encoding,
        dac=dac,
        adc=adc,
        age_s=instance.age_s,
        seed=seed,
        layer_info=info,
        sample_offset=offset,
        threads=n_threads,
        calibration_seed=cal_used.seed,
        drift_compensation=instance.config.retention.drift_compensation,
    )
