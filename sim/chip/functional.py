"""Fast noisy functional simulation of a programmed chip on a batch of samples.

Per layer and batch chunk (see docs/simulation.md for the full pipeline and the arguments):

1. ScRRAMBLe routing (digital, exact: ``layer.route``); a dense layer's input is its one block.
2. Input DAC: multilevel codes (one analog read) or sign-magnitude bit planes (one read per
   plane, shift-and-add after the ADC), with the full scale calibrated per layer.
3. Analog MVM per tile as BLAS batched matmuls on contiguous float32 arrays:
   ``I = G_eff @ x`` with G_eff = g_pos (- g_neg) and the reference column as an extra row.
4. Read noise, exact in distribution and cheap: a column current is a sum of independent
   Gaussian device currents, so it is Gaussian with variance ``V = S2 @ x**2`` where
   S2 = sigma_read(G)^2 per device (one more matmul, or a row sum when sigma is constant);
   one normal per ADC conversion, never one per device.
5. ADC (clip + round, ranges calibrated per tile or column) fused with the noise and the
   digital partial-sum accumulation over row tiles (:func:`sim.chip.kernels.adc_accumulate`).
6. Decode: reference subtraction, rescale to weight units, drift compensation, bias,
   activation, activation quantisation (:func:`sim.chip.kernels.decode_outputs`).

All random numbers come from streams derived from ``SeedSequence(seed, spawn_key=(tag, chunk,
layer))``, so the result is a pure function of the configuration, the instance and the seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from devices.converters import ADCConfig, calibrate_adc
from mappings.network import DenseLayer, Network, ScrrambleLayer
from sim.chip import kernels
from sim.chip.config import ChipConfig
from sim.chip.programming import ChipInstance, LayerDevices, network_fingerprint

SIM_STREAM = 0x53494D00  # spawn-key tags (distinct from programming's layer indices)
CALIB_STREAM = 0x43414C00


_BLAS: ThreadpoolController | None = None


def _single_thread_blas():
    """Context that runs BLAS on one thread. Multi-threaded OpenBLAS sums in another order
    than single-threaded (measured: float32 matmuls differ in the last bits between 1 and 2
    threads), and one ulp can move an ADC or DAC code, so the chip's BLAS calls always run
    single-threaded and only the Numba kernels (row-wise, order-independent) use threads:
    the result does not depend on the thread count."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


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
                f"age {self.age_s:g} s"
            ),
            f"time               {self.seconds:.3f} s",
        ]
        if self.snr_db is not None and self.snr_db_end_to_end is not None:
            lines.append("layer  kind       tiles  SNR dB (layer)  SNR dB (end-to-end)")
            for i, (a, b) in enumerate(zip(self.snr_db, self.snr_db_end_to_end)):
                info = self.layer_info[i] if i < len(self.layer_info) else {}
                lines.append(
                    f"{i:5d}  {info.get('kind', ''):9s}  {info.get('tiles', 0):5d}  "
                    f"{db(a):>14s}  {db(b):>19s}"
                )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- engine


def _stream_key(seed: int, *key: int) -> tuple[int, int]:
    """Two uint32 Philox key words drawn from the Generator of SeedSequence(seed, key)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    k = rng.integers(0, 2**32, size=2, dtype=np.uint64)
    return int(k[0]), int(k[1])


@dataclass
class _LayerState:
    """Per-layer arrays prepared once per simulation, plus the calibrated ranges."""

    layer: Any
    dev: LayerDevices
    geff: np.ndarray  # (blocks, row_tiles, col_tiles, R1, ipt)
    s2: np.ndarray | None  # same layout, full read-noise variance matrix
    s2_const: float  # > 0: sigma^2 * devices per input, the same for every device
    bias: np.ndarray
    out_scale: np.ndarray
    ref_coeff: np.ndarray
    ref_index: np.ndarray
    act: tuple
    last: bool
    balance: bool  # 'single' encoding: subtract g_zero * sum of the applied DAC inputs
    x_max: float = 0.0
    lo: np.ndarray | None = None  # (blocks, row_tiles, col_tiles, L)
    hi: np.ndarray | None = None
    q: tuple = (0, 0.0, 0.0, 0.0, 0.0)  # activation quantiser (levels, lo, hi, inv, step)


def _activation_params(layer) -> tuple:
    a = layer.activation
    if a.kind == "relu":
        return (kernels.ACT_RELU, 1.0, 1.0, 1.0)
    if a.kind == "qrelu":
        step = a.ceiling / a.levels
        return (kernels.ACT_QRELU, a.ceiling, 1.0 / step, step)
    return (kernels.ACT_NONE, 1.0, 1.0, 1.0)


class ChipRunner:
    """A chip instance prepared for one simulation: device arrays laid out for BLAS, the
    converters calibrated, and a batched forward pass. Raises SimulationError (``check``:
    :func:`check_compatible`) when the network or config does not match the instance."""

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
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise SimulationError(f"seed must be an integer >= 0, got {seed!r}")
        self.network = network
        self.balance_correction = bool(balance_correction)
        self.instance = instance
        self.config = config
        self.seed = int(seed)
        dac = config.dac
        self.bit_serial = dac.mode == "bit_serial"
        self.dac_bits = dac.bits
        self.adc: ADCConfig = config.adc
        self.adc_levels = (1 << config.adc.bits) - 1 if config.adc.bits else 0
        self.act_bits = config.mapping.activation_bits
        self._buffers: dict[str, np.ndarray] = {}
        self.jobs = 4 * numba.get_num_threads()  # parallel jobs per ADC kernel call
        self.states = [self._prepare(i, layer) for i, layer in enumerate(network.layers)]
        self.calibrated = False

    # -- preparation

    def _prepare(self, i: int, layer) -> _LayerState:
        dev = self.instance.layers[i]
        t = dev.tiling
        r1 = t.outputs_per_tile + (1 if dev.has_ref else 0)
        shape = (t.n_blocks, t.row_tiles, t.col_tiles, r1, t.inputs_per_tile)
        geff = dev.effective.reshape(shape)
        device = self.config.device
        s2 = None
        s2_const = 0.0
        if not device.read.is_zero():
            if device.read.kind == "constant":
                per_input = 2 if dev.current.g_neg is not None else 1
                s2_const = float(device.read.coeffs[0]) ** 2 * per_input
            else:
                s2 = self.instance.read_variance(i).reshape(shape)
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
        return _LayerState(
            layer, dev, geff, s2, s2_const, bias, out_scale, ref_coeff, ref_index,
            _activation_params(layer), last, balance,
        )

    # -- one layer

    def _blocks(self, st: _LayerState, x: np.ndarray) -> np.ndarray:
        if isinstance(st.layer, ScrrambleLayer):
            return np.ascontiguousarray(st.layer.route(x), dtype=np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)[None]

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

    def _layer(
        self, st: _LayerState, x: np.ndarray, key: tuple[int, int], calibrating: bool
    ) -> np.ndarray:
        """One layer on a feature-major batch x (n_in, B) -> its output (n_out, B).

        Loops: block (DAC of its routed input), column tile (one batched matmul over the
        block's row tiles, then the fused noise + ADC + partial-sum kernel), DAC pass.
        """
        t = st.dev.tiling
        nb, rt, ct, ipt = t.n_blocks, t.row_tiles, t.col_tiles, t.inputs_per_tile
        opt, has_ref = t.outputs_per_tile, int(st.dev.has_ref)
        r1 = opt + has_ref
        nbatch = x.shape[-1]
        blocks = self._blocks(st, x)
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

        xt = self._scratch("xt", (rt, ipt, nbatch))
        x2 = self._scratch("x2", (rt, ipt, nbatch) if want_sq else (1, 1, 1))
        cur_buf = self._scratch("cur", (rt * r1 * nbatch * (n_pass if calibrating else 1),))
        var_buf = self._scratch("var", (rt * r1 * nbatch if want_sq else rt * nbatch,))
        acc = np.zeros((t.n_out, nbatch), np.float32)
        ref_acc = self._scratch("ref", (nb * ct if has_ref else (nb if st.balance else 1), nbatch))
        ref_acc.fill(0.0)
        codes = self._scratch("codes", (1, t.block_in, nbatch), np.int32) if self.bit_serial else None
        k0, k1 = key

        for b in range(nb):
            blk = blocks[b : b + 1]
            if self.bit_serial:
                kernels.dac_codes_kernel(blk, st.x_max, inv_step, codes)
            else:
                kernels.dac_tiles(blk, levels, st.x_max, inv_step, step, xt[None], x2[None], want_sq)
            for c in range(ct):
                rows = has_ref + min(opt, t.block_out - c * opt)  # real rows of this tile
                row_base = (b * rt * ct + c) * r1  # counter row = tile id * r1 + column
                g_u = st.geff[b, :, c, :rows, :]
                s2_u = st.s2[b, :, c, :rows, :] if want_sq else None
                lo_u, hi_u = self._ranges(st, b, c, rows)
                f0 = b * t.block_out + c * opt
                out_rows = acc[f0 : f0 + rows - has_ref]
                ref_row = ref_acc[b * ct + c] if has_ref else ref_acc[0]
                size = rt * rows * nbatch
                var = var_buf[: rt * nbatch].reshape(rt, 1, nbatch)
                if want_sq:
                    var = var_buf[:size].reshape(rt, rows, nbatch)
                for k, (plane, weight) in enumerate(passes):
                    if plane >= 0:
                        kernels.dac_plane(codes, plane, xt, x2, want_sq)
                    if st.balance and c == 0:
                        kernels.accumulate_sum(xt, weight, ref_acc[b])
                    off = k * size if calibrating else 0
                    cur = cur_buf[off : off + size].reshape(rt, rows, nbatch)
                    np.matmul(g_u, xt, out=cur)
                    if want_sq:
                        np.matmul(s2_u, x2, out=var)
                    elif noisy:
                        kernels.scaled_energy(xt, st.s2_const, var)
                    if calibrating:
                        if noisy:
                            kernels.add_read_noise(cur, var, k0, k1, 2 * k, row_base, ct * r1)
                        continue
                    kernels.adc_accumulate(
                        cur, var, noisy, lo_u, hi_u, self.adc_levels, self.adc.noise_lsb,
                        k0, k1, k, row_base, ct * r1, has_ref, weight, out_rows, ref_row,
                        self.jobs,
                    )
                if calibrating:
                    stored = cur_buf[: n_pass * size].reshape(n_pass, rt, rows, nbatch)
                    sample = np.ascontiguousarray(stored.transpose(1, 2, 0, 3)).reshape(
                        rt, rows, n_pass * nbatch
                    )
                    lo, hi = calibrate_adc(sample, self.adc)
                    width = lo.shape[1]
                    st.lo[b, :, c, :width], st.hi[b, :, c, :width] = lo[:, :, 0], hi[:, :, 0]
                    lo_u, hi_u = self._ranges(st, b, c, rows)
                    for k, (_, weight) in enumerate(passes):
                        kernels.adc_accumulate(
                            stored[k], var, False, lo_u, hi_u, self.adc_levels,
                            self.adc.noise_lsb, k0, k1, 2 * k + 1, row_base, ct * r1, has_ref,
                            weight, out_rows, ref_row, self.jobs,
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
        return acc

    @staticmethod
    def _ranges(st: _LayerState, b: int, c: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous (row_tiles, L) ADC ranges of the tiles of (block b, column tile c)."""
        width = rows if st.lo.shape[-1] > 1 else 1
        return (
            np.ascontiguousarray(st.lo[b, :, c, :width]),
            np.ascontiguousarray(st.hi[b, :, c, :width]),
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

    # -- whole network

    def calibrate(self, x: np.ndarray) -> None:
        """Calibrate DAC full scales, ADC ranges and activation quantisers, layer by layer, on
        feature-major calibration inputs (the chip's own outputs feed the next layer)."""
        with _single_thread_blas():
            for i, st in enumerate(self.states):
                key = _stream_key(self.seed, CALIB_STREAM, i)
                x = self._layer(st, x, key, calibrating=True)
        self.calibrated = True

    def forward_layer(self, index: int, x: np.ndarray, chunk: int = 0) -> np.ndarray:
        """One calibrated layer on feature-major inputs (n_in, B) -> its chip output."""
        if not self.calibrated:
            raise SimulationError("ChipRunner.forward_layer needs calibrate() first")
        key = _stream_key(self.seed, SIM_STREAM, chunk, index)
        with _single_thread_blas():
            return self._layer(
                self.states[index], np.asarray(x, np.float32), key, calibrating=False
            )

    def forward(self, x: np.ndarray, chunk: int) -> list[np.ndarray]:
        """Feature-major input (n_in, B) -> every layer's chip output (feature-major)."""
        if not self.calibrated:
            raise SimulationError("ChipRunner.forward needs calibrate() first")
        outs = []
        with _single_thread_blas():
            for i, st in enumerate(self.states):
                key = _stream_key(self.seed, SIM_STREAM, chunk, i)
                x = self._layer(st, x, key, calibrating=False)
                outs.append(x)
        return outs


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


def simulate(
    network: Network,
    instance: ChipInstance,
    samples: Any,
    *,
    labels: Any = None,
    seed: int,
    config: ChipConfig | None = None,
    calibration: Any = None,
    reference: bool = True,
    balance_correction: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run ``samples`` (N, *image_shape) through the programmed chip ``instance``.

    ``config`` (default: the instance's) supplies the read-time settings (DAC, ADC,
    activation bits, batch chunk, calibration samples); its chip geometry, device and encoding
    must be those the instance was programmed with. ``calibration``: samples used to
    calibrate the converters (default: the first ``calibration_samples`` of ``samples``).
    ``reference``: also run the ideal network for ideal accuracy and per-layer SNR.
    ``balance_correction`` ('single' encoding only): the decode subtracts g_zero times the
    digital sum of the DAC inputs, the common-mode current left when DAC rounding breaks the
    exact balance of the routed inputs (see docs/simulation.md); False models a chip without
    that adder; None (default) takes ``[mapping] balance_correction`` from ``config``.
    ``progress(n)`` is called after every chunk with the number of samples done.
    """
    t_start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SimulationError(f"seed must be an integer >= 0, got {seed!r}")
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
    n_cal = config.simulation.calibration_samples
    if calibration is None:
        cal = x_all[:n_cal]
    else:
        cal = _check_samples(network, calibration, "calibration samples")[:n_cal]

    if balance_correction is None:
        balance_correction = config.mapping.balance_correction
    runner = ChipRunner(
        network, instance, config, int(seed), balance_correction=balance_correction,
        check=False,  # checked above
    )
    runner.calibrate(network.input_spec.prepare(cal))

    n_layers = len(network.layers)
    sig = np.zeros(n_layers)
    err = np.zeros(n_layers)
    sig_e2e = np.zeros(n_layers)
    err_e2e = np.zeros(n_layers)
    preds = np.empty(n, dtype=np.int64)
    ideal_preds = np.empty(n, dtype=np.int64) if reference else None
    chunk = config.simulation.batch_chunk
    n_chunks = 0
    for k, start in enumerate(range(0, n, chunk)):
        x = network.input_spec.prepare(x_all[start : start + chunk])
        outs = runner.forward(x, k)
        stop = start + x.shape[1]
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
        calibration_samples=int(cal.shape[0]),
        encoding=instance.config.mapping.encoding,
        dac=dac,
        adc=adc,
        age_s=instance.age_s,
        seed=int(seed),
        layer_info=info,
    )
