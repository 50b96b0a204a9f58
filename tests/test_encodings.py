"""Weight -> conductance encodings: exact decode, offset cancellation, scaling, quantisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.models import DeviceModel
from devices.presets import get_preset
from mappings.encodings import (
    ENCODINGS,
    SCALINGS,
    EncodingError,
    devices_per_weight,
    encode_matrix,
    reference_columns,
    rows_per_input,
)

IDEAL = DeviceModel(name="ideal")  # 0-40 uS, continuous
HIGH_GMIN = DeviceModel(name="high_gmin", g_min=50.0, g_max=225.0)  # on/off 4.5, continuous


def currents(enc, x):
    """Ideal column and reference currents of an encoded matrix for inputs x (n_in, B)."""
    x = np.asarray(x, dtype=np.float64)
    i_col = enc.g_pos.astype(np.float64) @ x
    if enc.g_neg is not None:
        i_col -= enc.g_neg.astype(np.float64) @ x
    i_ref = None if enc.g_ref is None else enc.g_ref.astype(np.float64) @ x
    return i_col, i_ref


def decoded(enc, x):
    return enc.decode(*currents(enc, x))


def balanced(rng, n_in, batch=7):
    x = rng.standard_normal((n_in, batch))
    return x - x.mean(axis=0, keepdims=True)


def unbalanced(rng, n_in, batch=7):
    return rng.random((n_in, batch)) + 0.5  # all positive: sums far from zero


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("device", [IDEAL, HIGH_GMIN], ids=["gmin0", "gmin50"])
def test_decode_exact_on_balanced_inputs(encoding, scaling, device, rng):
    M = rng.standard_normal((12, 20)) * 0.3 + 0.05
    x = balanced(rng, 20)
    enc = encode_matrix(M, encoding, scaling, device, balanced=True)
    y = decoded(enc, x)
    np.testing.assert_allclose(y, M @ x, rtol=1e-5, atol=1e-5 * np.abs(M @ x).max())
    # 1-D inputs decode the same way
    y1 = enc.decode(*[None if c is None else c[..., 0] for c in currents(enc, x)])
    np.testing.assert_allclose(y1, y[:, 0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_differential_and_offset_exact_on_unbalanced_inputs(encoding, scaling, rng):
    M = rng.standard_normal((9, 16))
    x = unbalanced(rng, 16)
    enc = encode_matrix(M, encoding, scaling, HIGH_GMIN, balanced=False)
    np.testing.assert_allclose(decoded(enc, x), M @ x, rtol=1e-5, atol=1e-4)


def test_single_gmin_cancels_exactly_on_balanced_inputs_only(rng):
    M = rng.standard_normal((8, 32))
    xb, xu = balanced(rng, 32), unbalanced(rng, 32)
    outs_b, errs_u = [], []
    for g_min in (0.0, 5.0, 20.0, 35.0):
        dev = DeviceModel(name="d", g_min=g_min, g_max=40.0)
        enc = encode_matrix(M, "single", "core", dev, balanced=True)
        outs_b.append(decoded(enc, xb))
        err = decoded(enc, xu) - M @ xu
        # the offset term: out_scale * g_zero * sum(x) per output and sample
        expected = (enc.out_scale.astype(np.float64) * enc.g_zero)[:, None] * xu.sum(axis=0)
        np.testing.assert_allclose(err, expected, rtol=1e-4, atol=1e-3)
        errs_u.append(np.abs(err).max())
    for y in outs_b:
        np.testing.assert_allclose(y, M @ xb, rtol=1e-5, atol=1e-4)
    # on unbalanced inputs the error is large and grows with g_min: it does not cancel
    assert min(errs_u) > 1.0
    assert errs_u == sorted(errs_u) and errs_u[-1] > 2 * errs_u[0]


def test_single_shared_offset_on_weights_cancels(rng):
    M = rng.standard_normal((6, 24))
    x = balanced(rng, 24)
    a = encode_matrix(M, "single", "column", HIGH_GMIN, balanced=True)
    b = encode_matrix(M + 3.7, "single", "column", HIGH_GMIN, balanced=True)
    np.testing.assert_allclose(a.g_pos, b.g_pos, rtol=1e-5)
    np.testing.assert_allclose(decoded(b, x), M @ x, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(decoded(b, x), (M + 3.7) @ x, rtol=1e-5, atol=1e-4)
    xu = unbalanced(rng, 24)
    assert np.abs(decoded(b, xu) - (M + 3.7) @ xu).max() > 1.0


def test_per_column_vs_per_core_scaling(rng):
    M = rng.standard_normal((4, 30))
    M[1] *= 0.01  # a row of small weights
    for encoding in ENCODINGS:
        core = encode_matrix(M, encoding, "core", IDEAL, balanced=True)
        col = encode_matrix(M, encoding, "column", IDEAL, balanced=True)
        assert np.all(core.out_scale == core.out_scale[0])
        assert not np.allclose(col.out_scale, col.out_scale[0])
        # per-column scaling spreads every row over the whole window
        for enc in (col,):
            span = enc.g_pos.max(axis=1) - enc.g_pos.min(axis=1)
            if enc.g_neg is not None:
                span = np.maximum(enc.g_pos.max(axis=1), enc.g_neg.max(axis=1)) - IDEAL.g_min
            np.testing.assert_allclose(span, IDEAL.g_range, rtol=1e-5)
        row_span = core.g_pos[1].max() - core.g_pos[1].min()
        assert row_span < 0.05 * IDEAL.g_range
    offset_col = encode_matrix(M, "offset", "column", IDEAL, balanced=False)
    assert not np.allclose(offset_col.ref_coeff, offset_col.ref_coeff[0])  # per-row g0


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_quantised_levels_decode_to_dequantised_weights(encoding, scaling, rng):
    dev = DeviceModel(name="q", g_min=10.0, g_max=40.0, n_levels=8)
    M = rng.standard_normal((10, 40))
    x = balanced(rng, 40)
    enc = encode_matrix(M, encoding, scaling, dev, balanced=True)
    levels = dev.levels().astype(np.float32)
    for g in (enc.g_pos, enc.g_neg, enc.g_ref):
        if g is not None:
            assert np.all(np.isin(g, levels))
    Mq = enc.weights()
    np.testing.assert_allclose(decoded(enc, x), Mq @ x, rtol=1e-5, atol=1e-4)
    # quantisation changed M, by at most half a level step (per encoding: one or two devices)
    step = (dev.g_max - dev.g_min) / (dev.n_levels - 1) * enc.out_scale.astype(np.float64)
    err = np.abs(Mq - M)
    assert err.max() > 1e-3
    # differential: one of G+ / G- is exactly g_min (a level), so only one device rounds
    assert np.all(err <= step[:, None] * 0.5 + 1e-6)


def test_quantised_single_cancellation_stays_exact(rng):
    M = rng.standard_normal((5, 16))
    x = balanced(rng, 16)
    for g_min in (0.0, 13.0):
        dev = DeviceModel(name="q", g_min=g_min, g_max=40.0, n_levels=16)
        enc = encode_matrix(M, "single", "core", dev, balanced=True)
        np.testing.assert_allclose(decoded(enc, x), enc.weights() @ x, rtol=1e-5, atol=1e-4)


def test_device_counts_and_geometry(rng):
    M = rng.standard_normal((7, 11))
    n = M.size
    got = {e: encode_matrix(M, e, "core", IDEAL, balanced=True).devices() for e in ENCODINGS}
    assert got == {"single": n, "differential": 2 * n, "offset": n + 11}
    assert [devices_per_weight(e) for e in ENCODINGS] == [1, 2, 1]
    assert [rows_per_input(e) for e in ENCODINGS] == [1, 2, 1]
    assert [reference_columns(e) for e in ENCODINGS] == [0, 0, 1]
    with pytest.raises(EncodingError, match="valid encodings"):
        rows_per_input("pairs")


def test_offset_tiles_partial_sums_add_up(rng):
    M = rng.standard_normal((6, 20))
    x = unbalanced(rng, 20)
    enc = encode_matrix(M, "offset", "column", HIGH_GMIN, balanced=False)
    parts = [enc.tile(slice(None), slice(a, b)) for a, b in ((0, 8), (8, 16), (16, 20))]
    total = sum(decoded(p, x[sl]) for p, sl in zip(parts, (slice(0, 8), slice(8, 16),
                                                           slice(16, 20))))
    np.testing.assert_allclose(total, M @ x, rtol=1e-5, atol=1e-4)
    assert sum(p.devices() for p in parts) == M.size + 20


def test_single_row_tiles_cancel_in_the_partial_sum(rng):
    M = rng.standard_normal((5, 16))
    x = balanced(rng, 16)
    enc = encode_matrix(M, "single", "core", HIGH_GMIN, balanced=True)
    halves = [(enc.tile(slice(None), slice(a, a + 8)), x[a : a + 8]) for a in (0, 8)]
    parts = [decoded(t, xs) for t, xs in halves]
    # each half sees unbalanced inputs and is off by its share of the offset term ...
    assert np.abs(parts[0] - M[:, :8] @ x[:8]).max() > 1.0
    # ... which cancels in the digital sum of the partial sums
    np.testing.assert_allclose(parts[0] + parts[1], M @ x, rtol=1e-5, atol=1e-3)


def test_single_refuses_unbalanced_inputs():
    with pytest.raises(EncodingError, match="balanced") as exc:
        encode_matrix(np.ones((2, 3)), "single", "core", IDEAL, balanced=False)
    assert "differential" in str(exc.value) and "offset" in str(exc.value)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_all_zero_matrix(encoding, scaling, rng):
    M = np.zeros((4, 6))
    x = balanced(rng, 6)
    with np.errstate(all="raise"):
        enc = encode_matrix(M, encoding, scaling, get_preset("rram_wan2022"), balanced=True)
        y = decoded(enc, x)
    assert np.all(np.isfinite(enc.out_scale)) and np.all(np.isfinite(enc.ref_coeff))
    np.testing.assert_allclose(y, 0.0, atol=1e-9)
    np.testing.assert_allclose(enc.weights(), 0.0, atol=1e-9)


def test_constant_row_with_column_scaling(rng):
    M = rng.standard_normal((3, 8))
    M[2] = 0.7  # zero span in one row
    x = balanced(rng, 8)
    for encoding in ENCODINGS:
        enc = encode_matrix(M, encoding, "column", IDEAL, balanced=True)
        np.testing.assert_allclose(decoded(enc, x), M @ x, rtol=1e-5, atol=1e-5)


def test_invalid_arguments():
    with pytest.raises(EncodingError, match="unknown encoding"):
        encode_matrix(np.ones((2, 2)), "pairs", "core", IDEAL, balanced=True)
    with pytest.raises(EncodingError, match="unknown scaling"):
        encode_matrix(np.ones((2, 2)), "single", "row", IDEAL, balanced=True)
    with pytest.raises(EncodingError, match="2-D"):
        encode_matrix(np.ones(3), "single", "core", IDEAL, balanced=True)
    with pytest.raises(EncodingError, match="NaN"):
        encode_matrix(np.array([[1.0, np.nan]]), "offset", "core", IDEAL, balanced=True)
    with pytest.raises(EncodingError, match="DeviceModel"):
        encode_matrix(np.ones((2, 2)), "offset", "core", {"g_min": 0.0}, balanced=True)
    with pytest.raises(EncodingError, match="balanced must be True or False"):
        encode_matrix(np.ones((2, 2)), "single", "core", IDEAL, balanced="no")
    enc = encode_matrix(np.ones((2, 3)), "offset", "core", IDEAL, balanced=False)
    with pytest.raises(EncodingError, match="i_ref"):
        enc.decode(np.zeros((2, 4)))
    with pytest.raises(EncodingError, match="n_out=2"):
        enc.decode(np.zeros((3, 4)), np.zeros(4))


@settings(max_examples=40, deadline=None)
@given(
    n_out=st.integers(1, 6),
    n_in=st.integers(2, 9),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-5, 5),
    encoding=st.sampled_from(ENCODINGS),
    scaling=st.sampled_from(SCALINGS),
    seed=st.integers(0, 2**16),
)
def test_decode_property(n_out, n_in, scale, shift, encoding, scaling, seed):
    r = np.random.default_rng(seed)
    M = (r.standard_normal((n_out, n_in)) + shift) * scale
    x = balanced(r, n_in, 3)
    enc = encode_matrix(M, encoding, scaling, HIGH_GMIN, balanced=True)
    ref = M @ x
    tol = 1e-4 * (np.abs(M).max() * np.abs(x).sum(axis=0).max() + 1e-12)
    np.testing.assert_allclose(decoded(enc, x), ref, rtol=0, atol=tol)
