"""Signed weights -> target conductances: the ``single``, ``differential`` and ``offset`` encodings.

A logical matrix ``M`` (n_out, n_in) maps onto crossbar columns (one per output) and rows (one
per input, two for ``differential``). Every encoding has the ideal decode

    y = out_scale * (I_col - ref_coeff * I_ref)

with ``I_col = g_pos @ x`` (``single``, ``offset``) or ``g_pos @ x - g_neg @ x``
(``differential``: G+ and G- on adjacent rows driven by +x and -x, subtracted on the column) and
``I_ref = g_ref @ x`` (``offset`` only: one reference column per matrix).

- ``single`` (one device per weight): G = g_min + a (M - m_lo), a = (g_max - g_min) /
  (m_hi - m_lo). The term (g_min - a m_lo) is the same for every input of an output, so it
  multiplies sum(x), which is zero on *balanced* inputs (a ScRRAMBLe core's routed input):
  g_min cancels and one positive conductance per signed weight suffices. Level quantisation
  keeps the cancellation exact because the offset stays constant; only M becomes M_q.
- ``differential`` (two devices per weight): G+ = g_min + a max(M, 0), G- = g_min + a max(-M, 0),
  a = (g_max - g_min) / max|M|; works on any input (NeuRRAM, Wan et al., Nature 2022).
- ``offset`` (one device per weight plus one reference column): G = g_min + a (M - m_lo) as for
  ``single``; the reference column holds one constant conductance g_ref on every row (the
  device level closest to the zero-weight conductance g0 = g_min - a m_lo; mid-range when that
  level is 0 uS) and the decode subtracts (g0 / g_ref) * I_ref, so it works on any input
  (the "offset column" style of Sandia CrossSim).

``scaling='core'`` uses one (m_lo, m_hi) or max|M| for the whole matrix; ``scaling='column'``
one per output (crossbar column), with ``out_scale`` (and ``ref_coeff``) per output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.models import DeviceModel

ENCODINGS: tuple[str, ...] = ("single", "differential", "offset")
SCALINGS: tuple[str, ...] = ("core", "column")

_DEVICES_PER_WEIGHT = {"single": 1, "differential": 2, "offset": 1}
_ROWS_PER_INPUT = {"single": 1, "differential": 2, "offset": 1}
_REFERENCE_COLUMNS = {"single": 0, "differential": 0, "offset": 1}


class EncodingError(ValueError):
    """Invalid encoding request: unknown name, bad matrix, or an encoding that cannot work."""


def _check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise EncodingError(f"unknown encoding {encoding!r}; valid encodings: {list(ENCODINGS)}")
    return encoding


def devices_per_weight(encoding: str) -> int:
    """Programmed devices per logical weight (reference columns not included)."""
    return _DEVICES_PER_WEIGHT[_check_encoding(encoding)]


def rows_per_input(encoding: str) -> int:
    """Crossbar rows one input occupies (2 for ``differential``: +x and -x rows)."""
    return _ROWS_PER_INPUT[_check_encoding(encoding)]


def reference_columns(encoding: str) -> int:
    """Crossbar columns per tile taken by reference devices (1 for ``offset``)."""
    return _REFERENCE_COLUMNS[_check_encoding(encoding)]


@dataclass(frozen=True, eq=False)
class EncodedMatrix:
    """Target conductances (uS) of one logical matrix and how to decode column currents.

    ``g_zero`` (n_out,) is the conductance that stands for weight 0 (single / offset: the
    per-output offset g_min - a m_lo; differential: zeros), used by :meth:`weights`.
    """

    encoding: str
    scaling: str
    g_pos: np.ndarray  # (n_out, n_in) float32 target uS
    g_neg: np.ndarray | None  # (n_out, n_in) differential only
    g_ref: np.ndarray | None  # (n_in,) offset only
    out_scale: np.ndarray  # (n_out,) float32, weight units per uS
    ref_coeff: np.ndarray  # (n_out,) float32 (zeros unless offset)
    g_zero: np.ndarray | None = None  # (n_out,) float64 zero-weight conductance

    @property
    def n_out(self) -> int:
        return self.g_pos.shape[0]

    @property
    def n_in(self) -> int:
        return self.g_pos.shape[1]

    def decode(self, i_col: np.ndarray, i_ref=None) -> np.ndarray:
        """Column currents (n_out,) or (n_out, B) -> outputs in weight units.

        ``i_ref`` (offset only) is the reference column's current: a scalar for (n_out,)
        currents, shape (B,) or (1, B) for (n_out, B).
        """
        i_col = np.asarray(i_col)
        if i_col.ndim not in (1, 2) or i_col.shape[0] != self.n_out:
            raise EncodingError(
                f"column currents must be (n_out={self.n_out},) or (n_out, batch), "
                f"got shape {i_col.shape}"
            )
        col = (lambda v: v) if i_col.ndim == 1 else (lambda v: v[:, None])
        if self.encoding != "offset":
            return col(self.out_scale) * i_col
        if i_ref is None:
            raise EncodingError("the offset encoding needs the reference column current i_ref")
        i_ref = np.asarray(i_ref)
        if i_col.ndim == 1:
            if i_ref.size != 1:
                raise EncodingError(f"i_ref must be a scalar for 1-D currents, got {i_ref.shape}")
            ref = i_ref.reshape(())
        else:
            if i_ref.size != i_col.shape[1]:
                raise EncodingError(
                    f"i_ref must hold one current per sample ({i_col.shape[1]}), "
                    f"got shape {i_ref.shape}"
                )
            ref = i_ref.reshape(1, -1)
        return col(self.out_scale) * (i_col - col(self.ref_coeff) * ref)

    def devices(self) -> int:
        """Programmed devices, reference column included."""
        n = self.g_pos.size
        if self.g_neg is not None:
            n += self.g_neg.size
        if self.g_ref is not None:
            n += self.g_ref.size
        return int(n)

    def weights(self) -> np.ndarray:
        """The signed matrix the ideal decode computes, (n_out, n_in) float64: M_q.

        Equals M up to level quantisation: ``decode(I)`` of the ideal currents is ``M_q @ x``
        (for ``single`` only on balanced inputs).
        """
        g = self.g_pos.astype(np.float64)
        if self.g_neg is not None:
            g = g - self.g_neg.astype(np.float64)
        elif self.g_zero is not None:
            g = g - self.g_zero[:, None]
        return self.out_scale.astype(np.float64)[:, None] * g

    def tile(self, rows: slice, cols: slice) -> EncodedMatrix:
        """The sub-matrix of outputs ``rows`` and inputs ``cols`` (one physical tile).

        Its decode (with its own slice of the reference column) gives that tile's partial sum;
        the partial sums of the row tiles add up to the full decode. For ``single`` a row
        tile's inputs need not sum to zero, so its partial sum carries part of the offset
        term; the offsets cancel in the digital sum over row tiles when the whole block was
        encoded with one scale (encode the block, then slice it).
        """
        return EncodedMatrix(
            self.encoding,
            self.scaling,
            self.g_pos[rows, cols],
            None if self.g_neg is None else self.g_neg[rows, cols],
            None if self.g_ref is None else self.g_ref[cols],
            self.out_scale[rows],
            self.ref_coeff[rows],
            None if self.g_zero is None else self.g_zero[rows],
        )


def _range_per_output(m: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """(m_lo, m_hi) per output row (broadcast from one pair for 'core' scaling)."""
    n_out = m.shape[0]
    if m.size == 0:
        return np.zeros(n_out), np.zeros(n_out)
    if scaling == "core":
        return np.full(n_out, m.min()), np.full(n_out, m.max())
    return m.min(axis=1), m.max(axis=1)


def _safe_span(span: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """span where positive, else fallback where positive, else 1 (constant / all-zero rows)."""
    out = np.where(span > 0, span, fallback)
    return np.where(out > 0, out, 1.0)


def _quantize(device: DeviceModel, g: np.ndarray) -> np.ndarray:
    return np.asarray(device.quantize(g), dtype=np.float64)


def encode_matrix(
    M: np.ndarray, encoding: str, scaling: str, device: DeviceModel, *, balanced: bool
) -> EncodedMatrix:
    """Encode ``M`` (n_out, n_in) as target conductances of ``device`` (a DeviceModel).

    ``balanced`` says whether the inputs that will drive this matrix sum to zero (a ScRRAMBLe
    core's routed input); ``single`` needs it and raises :class:`EncodingError` otherwise.
    Targets are quantised onto the device's levels with ``device.quantize``.
    """
    _check_encoding(encoding)
    if not isinstance(device, DeviceModel):
        raise EncodingError(
            f"device must be a devices.DeviceModel (e.g. get_preset(name)), got "
            f"{type(device).__name__}"
        )
    if not isinstance(balanced, (bool, np.bool_)):
        raise EncodingError(f"balanced must be True or False, got {balanced!r}")
    if scaling not in SCALINGS:
        raise EncodingError(f"unknown scaling {scaling!r}; valid scalings: {list(SCALINGS)}")
    try:
        m = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"weight matrix must be numeric (n_out, n_in): {exc}") from None
    if m.ndim != 2:
        raise EncodingError(f"weight matrix must be 2-D (n_out, n_in), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise EncodingError("weight matrix holds NaN or inf; expected finite weights")
    g_min, g_max = device.g_min, device.g_max  # DeviceModel guarantees 0 <= g_min < g_max
    if encoding == "single" and not balanced:
        raise EncodingError(
            "the 'single' encoding needs balanced inputs (every input vector summing to zero, "
            "as a ScRRAMBLe core's routed input does): its per-output offset g_min - a*m_lo "
            "only cancels then. This matrix is driven by unbalanced inputs (e.g. a dense "
            "layer); use 'differential' or 'offset' instead"
        )
    n_out = m.shape[0]
    g_range = g_max - g_min

    if encoding == "differential":
        if m.size == 0:
            peak = np.zeros(n_out)
        elif scaling == "core":
            peak = np.full(n_out, np.abs(m).max())
        else:
            peak = np.abs(m).max(axis=1)
        a = g_range / _safe_span(peak, peak)
        g_pos = _quantize(device, g_min + a[:, None] * np.maximum(m, 0.0))
        g_neg = _quantize(device, g_min + a[:, None] * np.maximum(-m, 0.0))
        return EncodedMatrix(
            encoding,
            scaling,
            np.ascontiguousarray(g_pos, dtype=np.float32),
            np.ascontiguousarray(g_neg, dtype=np.float32),
            None,
            (1.0 / a).astype(np.float32),
            np.zeros(n_out, dtype=np.float32),
            np.zeros(n_out),
        )

    m_lo, m_hi = _range_per_output(m, scaling)
    a = g_range / _safe_span(m_hi - m_lo, np.maximum(np.abs(m_lo), np.abs(m_hi)))
    g_zero = g_min - a * m_lo  # conductance that stands for weight 0, per output
    g_pos = _quantize(device, g_min + a[:, None] * (m - m_lo[:, None]))
    g_ref = None
    ref_coeff = np.zeros(n_out)
    if encoding == "offset":
        g_ref_value = _reference_level(device, g_zero, g_min, g_max)
        g_ref = np.full(m.shape[1], g_ref_value, dtype=np.float32)
        ref_coeff = g_zero / float(np.float32(g_ref_value))
    return EncodedMatrix(
        encoding,
        scaling,
        np.ascontiguousarray(g_pos, dtype=np.float32),
        None,
        g_ref,
        (1.0 / a).astype(np.float32),
        ref_coeff.astype(np.float32),
        g_zero,
    )


def _reference_level(device: DeviceModel, g_zero: np.ndarray, g_min: float, g_max: float) -> float:
    """The reference column's conductance: the level nearest the mean zero-weight conductance,
    or the level nearest mid-range when that is 0 uS (a zero reference carries no signal)."""
    target = float(np.mean(g_zero)) if g_zero.size else 0.5 * (g_min + g_max)
    level = float(_quantize(device, np.array([target]))[0])
    if not level > 0.0:
        level = float(_quantize(device, np.array([0.5 * (g_min + g_max)]))[0])
    if not level > 0.0:  # g_max > 0 is guaranteed, so the top level is positive
        level = float(_quantize(device, np.array([g_max]))[0])
    return level
