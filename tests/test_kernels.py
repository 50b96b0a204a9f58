"""Numba kernels: Philox, the normal generator, DAC, fused noise + ADC, decode.

Statistical checks allow 5 standard errors of the estimate for the sample size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from devices.converters import adc_quantize, bit_planes, dac_codes, dac_quantize, quantize_unsigned
from mappings.activations import Activation
from sim.chip import kernels as K

Z = 5.0
EMPTY = np.zeros((0, 0, 0), np.float64)
NO_PSUM = (0, 0, EMPTY, 1.0)  # s0, psum_limit, psum, psum_weight of adc_accumulate


# ----------------------------------------------------------------------------- Philox


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # known-answer vectors of Random123 (kat_vectors, philox4x32 with 10 rounds)
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(v) for v in K.philox4x32(counter, key)) == expected


def test_philox_words_are_blocks_in_counter_order():
    w = K.philox_words(2, (5, 6), row=7, stream=3, first_group=1)
    per = K.GROUP // 4  # Philox blocks per group of samples
    assert w.size == 2 * K.GROUP
    for q in range(2 * per):
        np.testing.assert_array_equal(w[4 * q : 4 * q + 4],
                                      K.philox4x32((per + q, 7, 3, 0), (5, 6)))


# ----------------------------------------------------------------------------- normals


def _box_muller64(words: np.ndarray) -> np.ndarray:
    """npair radius words, then npair angle words -> the cos samples, then the sin samples."""
    npair = words.size // 2
    u = (words[:npair].astype(np.float64) + 0.5) * 2.0**-32
    theta = 2 * np.pi * (words[npair:].astype(np.float64) + 0.5) * 2.0**-32
    r = np.sqrt(-2 * np.log(u))
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)])


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_normals_match_float64_box_muller(n):
    z = K.standard_normals((3, n), (11, 12), stream=4)
    groups = -(-n // K.GROUP)
    for row in range(3):
        words = K.philox_words(groups, (11, 12), row=row, stream=4)
        ref = np.concatenate([_box_muller64(words[g * K.GROUP : (g + 1) * K.GROUP])
                              for g in range(groups)])[:n]
        np.testing.assert_allclose(z[row], ref, rtol=0, atol=2e-6 * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("start, n", [(0, 10), (1, 1), (3, 17), (1001, 64), (2**33 + 5, 9)])
def test_normals_are_keyed_by_global_sample_index(start, n):
    """A row's normal for sample g does not depend on which batch it is drawn in."""
    first = max(0, start - 13)
    whole = K.standard_normals((2, n + 30), (1, 2), stream=5, start=first)
    part = K.standard_normals((2, n), (1, 2), stream=5, start=start)
    np.testing.assert_array_equal(part, whole[:, start - first : start - first + n])
    one = K.standard_normals((2, 1), (1, 2), stream=5, start=start + n - 1)
    np.testing.assert_array_equal(one[:, 0], part[:, -1])


def test_normals_edge_words_accurate():
    # radius words near 0, 2^31 and 2^32 (u -> 0, 1/2, 1) and every angle quadrant
    radius = np.array(
        [1, 2, 3, 2**16, 2**24 + 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 2, 2**32 - 1, 12345],
        dtype=np.uint64,
    )
    angle = np.array(
        [0, 2**30 - 1, 2**30, 2**31 - 1, 2**31, 3 * 2**30, 2**32 - 1, 1, 5, 2**29, 77],
        dtype=np.uint64,
    )
    words = np.concatenate([radius, angle]).astype(np.uint32)
    z = K.normals_from_words(words)
    ref = _box_muller64(words)
    np.testing.assert_allclose(z, ref, rtol=3e-6, atol=1e-6)


def test_zero_radius_word_extends_the_tail():
    words = np.array([0, 7], dtype=np.uint32)  # radius word 0: u would be capped at 2^-33
    z = K.normals_from_words(words, key=(1, 2), row=3, stream=4)
    r = math.hypot(float(z[0]), float(z[1]))
    cap = math.sqrt(-2 * math.log(2.0**-33))
    assert np.all(np.isfinite(z)) and r > cap  # the radius goes beyond the 32-bit cap
    # the extension is deterministic
    np.testing.assert_array_equal(z, K.normals_from_words(words, key=(1, 2), row=3, stream=4))


def test_normals_distribution():
    z = K.standard_normals((400, 5000), (3, 9)).astype(np.float64).ravel()
    n = z.size
    assert abs(z.mean()) < Z / math.sqrt(n)
    assert abs(z.var() - 1) < Z * math.sqrt(2 / n)
    assert stats.kstest(z[:200_000], "norm").pvalue > 1e-4
    for t in (1.0, 2.0, 3.0, 4.0):
        p = 2 * stats.norm.sf(t)
        count = np.count_nonzero(np.abs(z) > t)
        assert abs(count - n * p) < Z * math.sqrt(n * p * (1 - p)) + 1


def test_normal_streams_are_independent():
    a = K.standard_normals((2, 200_000), (1, 2), stream=0)
    b = K.standard_normals((1, 200_000), (1, 2), stream=1)
    c = K.standard_normals((1, 200_000), (1, 3), stream=0)
    limit = Z / math.sqrt(200_000)
    for x, y in ((a[0], a[1]), (a[0], b[0]), (a[0], c[0])):
        assert abs(np.corrcoef(x, y)[0, 1]) < limit
    # the two samples of a pair (cos and sin of one angle, half a group apart) are uncorrelated
    pairs = a[0, : 200_000 - 200_000 % K.GROUP].reshape(-1, K.GROUP)
    cos, sin = pairs[:, : K.GROUP // 2].ravel(), pairs[:, K.GROUP // 2 :].ravel()
    assert abs(np.corrcoef(cos, sin)[0, 1]) < Z / math.sqrt(cos.size)
    np.testing.assert_array_equal(a, K.standard_normals((2, 200_000), (1, 2), stream=0))


# ----------------------------------------------------------------------------- DAC


def test_dac_tiles_quantise_and_pad():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2, 10, 5)).astype(np.float32)
    xt = np.full((2, 3, 4, 5), np.nan, np.float32)  # 3 row tiles of 4 inputs, last partial
    x2 = np.full_like(xt, np.nan)
    bits, x_max = 6, 1.5
    step = x_max / (2 ** (bits - 1) - 1)
    rows = K.tile_rows(2, 10, 3, 4)
    K.dac_tiles(x, rows, 2 ** (bits - 1) - 1, x_max, 1 / step, step, xt, x2, True)
    q = dac_quantize(x, bits, x_max)
    flat = xt.reshape(2, 12, 5)
    np.testing.assert_array_equal(flat[:, :10], q)
    np.testing.assert_array_equal(flat[:, 10:], 0)
    np.testing.assert_array_equal(x2, xt * xt)
    K.dac_tiles(x, rows, 0, x_max, 1.0, 1.0, xt, x2, False)  # ideal DAC: a plain copy
    np.testing.assert_array_equal(xt.reshape(2, 12, 5)[:, :10], x)
    # another row table: tile rows take the inputs it names, -1 rows are zero
    rows = np.full((2, 3, 4), -1, np.int64)
    rows[0, 0, :2] = [7, 3]
    rows[1, 2, :3] = [0, 9, 9]
    K.dac_tiles(x, rows, 2 ** (bits - 1) - 1, x_max, 1 / step, step, xt, x2, True)
    expect = np.zeros_like(xt)
    expect[0, 0, :2] = q[0, [7, 3]]
    expect[1, 2, :3] = q[1, [0, 9, 9]]
    np.testing.assert_array_equal(xt, expect)
    np.testing.assert_array_equal(x2, expect * expect)


def test_dac_codes_and_planes_match_converters():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (1, 9, 6)).astype(np.float32)
    bits, x_max = 5, 2.0
    codes, step = dac_codes(x, bits, x_max)
    got = np.empty_like(codes)
    K.dac_codes_kernel(x, x_max, 1 / step, got)
    np.testing.assert_array_equal(got, codes)
    planes = bit_planes(codes, bits)
    xt = np.empty((3, 4, 6), np.float32)  # 3 row tiles of 4 (last has 1 input + padding)
    x2 = np.empty_like(xt)
    for p in range(bits - 1):
        K.dac_plane(codes, p, xt, x2, True)
        flat = xt.reshape(12, 6)
        np.testing.assert_array_equal(flat[:9], planes[p, 0])
        np.testing.assert_array_equal(flat[9:], 0)
        np.testing.assert_array_equal(x2, np.abs(xt))


def test_accumulate_sum_and_scaled_energy():
    rng = np.random.default_rng(2)
    xt = rng.normal(0, 1, (3, 4, 7)).astype(np.float32)
    out = np.ones(7, np.float32)
    K.accumulate_sum(xt, 0.5, out)
    np.testing.assert_allclose(out, 1 + 0.5 * xt.sum(axis=(0, 1)), rtol=1e-6)
    energy = np.empty((3, 1, 7), np.float32)
    K.scaled_energy(xt, 2.0, energy)
    np.testing.assert_allclose(energy[:, 0], 2 * (xt * xt).sum(axis=1), rtol=1e-6)


# ----------------------------------------------------------------------------- ADC


def _unit(rng, rt=3, rows=5, n=64, per_column=False):
    cur = rng.normal(0, 2, (rt, rows, n)).astype(np.float32)
    width = rows if per_column else 1
    lo = rng.uniform(-4, -2, (rt, width)).astype(np.float32)
    hi = rng.uniform(2, 4, (rt, width)).astype(np.float32)
    return cur, lo, hi


@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("has_ref", [0, 1])
def test_adc_accumulate_matches_adc_quantize(per_column, has_ref):
    rng = np.random.default_rng(3)
    cur, lo, hi = _unit(rng, per_column=per_column)
    bits = 5
    acc = rng.normal(0, 1, (cur.shape[1] - has_ref, cur.shape[2])).astype(np.float32)
    ref = rng.normal(0, 1, cur.shape[2]).astype(np.float32)
    acc0, ref0 = acc.copy(), ref.copy()
    K.adc_accumulate(
        cur, np.zeros((3, 1, 1), np.float32), False, lo, hi, 2**bits - 1, 0.0, 1, 2, 0, 0, 5,
        has_ref, 0.75, acc, ref, 3, *NO_PSUM,
    )
    q = adc_quantize(cur, lo[:, :, None], hi[:, :, None], bits).sum(axis=0)
    expect = 0.75 * q
    np.testing.assert_allclose(acc, acc0 + expect[has_ref:], rtol=1e-6, atol=1e-5)
    if has_ref:
        np.testing.assert_allclose(ref, ref0 + expect[0], rtol=1e-6, atol=1e-5)
    else:
        np.testing.assert_array_equal(ref, ref0)


def test_adc_ideal_sums_currents_and_jobs_do_not_matter():
    rng = np.random.default_rng(4)
    cur, lo, hi = _unit(rng)
    var = np.abs(rng.normal(0, 1, cur.shape)).astype(np.float32)
    acc = np.zeros((5, cur.shape[2]), np.float32)
    K.adc_accumulate(cur, var, False, lo, hi, 0, 0.0, 1, 2, 0, 0, 5, 0, 1.0, acc, acc[0], 2,
                     *NO_PSUM)
    np.testing.assert_allclose(acc, cur.sum(axis=0), rtol=1e-6)
    outs = []
    for jobs in (1, 2, 5):
        a = np.zeros((5, cur.shape[2]), np.float32)
        K.adc_accumulate(cur, var, True, lo, hi, 31, 0.3, 9, 8, 2, 100, 7, 0, 1.0, a, a[0], jobs,
                         *NO_PSUM)
        outs.append(a)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_adc_noise_uses_the_documented_normals():
    """Ideal ADC: the kernel adds sqrt(V) * z with z the normals of the documented rows."""
    rng = np.random.default_rng(5)
    rt, rows, n = 2, 3, 101
    cur = rng.normal(0, 1, (rt, rows, n)).astype(np.float32)
    var = rng.uniform(0.1, 2.0, (rt, rows, n)).astype(np.float32)
    acc = np.zeros((rows, n), np.float32)
    key, stream, base, stride, s0 = (21, 22), 6, 40, 10, 13
    K.adc_accumulate(
        cur, var, True, np.zeros((rt, 1), np.float32), np.ones((rt, 1), np.float32), 0, 0.0,
        key[0], key[1], stream, base, stride, 0, 1.0, acc, acc[0], 2, s0, 0, EMPTY, 1.0,
    )
    z = K.standard_normals((base + rt * stride, n), key, stream, start=s0)
    expect = np.zeros((rows, n))
    for r in range(rt):
        for j in range(rows):
            expect[j] += cur[r, j] + np.sqrt(var[r, j]) * z[base + r * stride + j]
    np.testing.assert_allclose(acc, expect, rtol=1e-5, atol=1e-5)
    # add_read_noise (calibration reads) uses the same rows
    noisy = cur.copy()
    K.add_read_noise(noisy, var, key[0], key[1], stream, base, stride, s0)
    np.testing.assert_allclose(noisy.sum(axis=0), expect, rtol=1e-5, atol=1e-5)


def test_adc_noise_lsb_statistics():
    """ADC input noise of s LSB: the code error has variance s^2 + 1/12 (uniform rounding)."""
    rng = np.random.default_rng(6)
    n = 40_000
    lo, hi, bits, s = -8.0, 8.0, 6, 0.7
    step = (hi - lo) / (2**bits - 1)
    cur = rng.uniform(-4, 4, (1, 1, n)).astype(np.float32)
    acc = np.zeros((1, n), np.float32)
    K.adc_accumulate(
        cur, np.zeros((1, 1, 1), np.float32), False, np.full((1, 1), lo, np.float32),
        np.full((1, 1), hi, np.float32), 2**bits - 1, s, 3, 4, 0, 0, 1, 0, 1.0, acc, acc[0], 1,
        *NO_PSUM,
    )
    err = (acc[0] - cur[0, 0]) / step
    target = s**2 + 1 / 12
    assert abs(err.mean()) < Z * math.sqrt(target / n)
    assert abs(err.var() - target) < Z * target * math.sqrt(2 / n) + 0.01


def _codes(cur, lo, hi, bits):
    step = (hi - lo) / np.float32(2**bits - 1)
    return np.clip(np.rint((cur - lo[:, :, None]) / step[:, :, None]), 0, 2**bits - 1), step


@pytest.mark.parametrize("psum_bits", [3, 5, 8])
def test_adc_partial_sums_saturate_at_psum_bits(psum_bits):
    """Row tiles r > 0 send their ADC code as a signed psum_bits word (code - 2**(bits-1)):
    saturated when psum_bits < bits, exact otherwise; row tile 0 keeps its code."""
    rng = np.random.default_rng(8)
    cur, lo, hi = _unit(rng, rt=3, rows=4, n=200, per_column=True)
    cur *= 2  # currents beyond the range too
    bits = 6
    acc = np.zeros((4, 200), np.float32)
    K.adc_accumulate(cur, np.zeros((3, 1, 1), np.float32), False, lo, hi, 2**bits - 1, 0.0,
                     1, 2, 0, 0, 4, 0, 1.0, acc, acc[0], 2, 0, 2 ** (psum_bits - 1), EMPTY, 1.0)
    code, step = _codes(cur, lo, hi, bits)
    half, limit = 2 ** (bits - 1), 2 ** (psum_bits - 1)
    sat = code.copy()
    sat[1:] = np.clip(code[1:], half - limit, half + limit - 1)
    expect = (sat * step[:, :, None] + lo[:, :, None]).sum(axis=0)
    np.testing.assert_allclose(acc, expect, rtol=1e-5, atol=1e-4)
    plain = (code * step[:, :, None] + lo[:, :, None]).sum(axis=0)
    assert np.allclose(acc, plain, atol=1e-4) == (psum_bits >= bits)


@pytest.mark.parametrize("per_column, has_ref, use_var", [(False, 1, True), (True, 0, False)])
def test_adc_tile_rows_in_a_wider_array_and_row_tiles_one_at_a_time(per_column, has_ref,
                                                                    use_var):
    """A column tile's rows inside a wider currents array (first_row, n_rows: several column
    tiles from one product), and its row tiles converted one call at a time with the sums
    kept in row_acc (r_offset, last): bit-identical to the one call on the tile alone, read
    noise, ADC noise and partial-sum saturation included."""
    rng = np.random.default_rng(12)
    rt, rows, n, first, wide = 3, 5, 300, 7, 16
    cur, lo, hi = _unit(rng, rt=rt, rows=rows, n=n, per_column=per_column)
    cur *= 2
    var = np.abs(rng.normal(0, 0.5, cur.shape)).astype(np.float32)
    bits, limit, base, stride, s0 = 6, 8, 40, 100, 2048 + 17
    args = (2**bits - 1, 0.3, 5, 6, 1, base, stride, has_ref, 0.75)

    def fresh():
        return (rng.normal(0, 1, (rows - has_ref, n)).astype(np.float32),
                rng.normal(0, 1, n).astype(np.float32))

    acc0, ref0 = fresh()
    acc, ref = acc0.copy(), ref0.copy()
    K.adc_accumulate(cur, var, use_var, lo, hi, *args, acc, ref, 3, s0, limit, EMPTY, 1.0)
    big = rng.normal(0, 1, (rt, wide, n)).astype(np.float32)  # other tiles' rows around it
    big[:, first : first + rows] = cur
    big_var = np.abs(rng.normal(0, 0.5, big.shape)).astype(np.float32)
    big_var[:, first : first + rows] = var
    a1, r1 = acc0.copy(), ref0.copy()
    K.adc_accumulate(big, big_var, use_var, lo, hi, *args, a1, r1, 2, s0, limit, EMPTY, 1.0,
                     first, rows)
    np.testing.assert_array_equal(a1, acc)
    np.testing.assert_array_equal(r1, ref)
    a2, r2 = acc0.copy(), ref0.copy()
    row_acc = np.full((wide, n), np.nan, np.float32)  # reset by the first row tile
    for r in range(rt):
        k_args = (2**bits - 1, 0.3, 5, 6, 1, base + r * stride, stride, has_ref, 0.75)
        K.adc_accumulate(big[r : r + 1], big_var[r : r + 1], use_var, lo[r : r + 1],
                         hi[r : r + 1], *k_args, a2, r2, 4, s0, limit, EMPTY, 1.0, first, rows,
                         row_acc, r, r == rt - 1)
        if r < rt - 1:  # nothing reaches acc before the last row tile
            np.testing.assert_array_equal(a2, acc0)
    np.testing.assert_array_equal(a2, acc)
    np.testing.assert_array_equal(r2, ref)


@pytest.mark.parametrize("psum_bits", [6, 9, 30])
def test_bit_serial_partial_sums_collect_and_finish(psum_bits):
    """Bit-serial: a row tile's partial sum is its signed code sum over the planes,
    S = sum_k 2^k (code_k - 2**(bits-1)), saturated at psum_bits for row tiles r > 0."""
    rng = np.random.default_rng(9)
    planes, bits, w0 = 3, 5, 0.25
    curs = [_unit(rng, rt=2, rows=3, n=50)[0] * 2 for _ in range(planes)]
    lo = np.full((2, 1), -3.0, np.float32)
    hi = np.full((2, 1), 3.0, np.float32)
    psum = np.zeros((2, 3, 50), np.float64)
    acc = np.zeros((3, 50), np.float32)
    zero_var = np.zeros((2, 1, 1), np.float32)
    for k in range(planes):
        K.adc_accumulate(curs[k], zero_var, False, lo, hi, 2**bits - 1, 0.0, 1, 2, k, 0, 3, 0,
                         w0 * 2**k, acc, acc[0], 2, 0, 0, psum, float(2**k))
    assert not acc.any()  # collected, not accumulated yet
    half, limit = 2 ** (bits - 1), 2 ** (psum_bits - 1)
    w_sum = w0 * (2**planes - 1)
    K.psum_finish(psum, lo, hi, 2**bits - 1, limit, w0, w_sum, 0, acc, acc[0])
    assert not psum.any()  # zeroed for the next column tile
    total = sum(2**k * (_codes(curs[k], lo, hi, bits)[0] - half) for k in range(planes))
    total[1:] = np.clip(total[1:], -limit, limit - 1)
    step = 6.0 / (2**bits - 1)
    expect = (step * w0 * total + (-3.0 + half * step) * w_sum).sum(axis=0)
    np.testing.assert_allclose(acc, expect, rtol=1e-5, atol=1e-4)
    plain = sum(w0 * 2**k * (_codes(curs[k], lo, hi, bits)[0] * step - 3.0) for k in range(planes))
    assert np.allclose(acc, plain.sum(axis=0), atol=1e-4) == (psum_bits >= bits + planes)


def test_route_slots_matches_routing_matrix():
    rng = np.random.default_rng(10)
    r = rng.integers(-1, 2, (6, 8)).astype(np.float32)  # (source slots, destination slots)
    x = rng.normal(0, 1, (6, 5 * 7)).astype(np.float32)
    cols = r.T
    nz = cols != 0
    row_ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int64)
    d, src = np.nonzero(nz)
    out = np.empty((8, 35), np.float32)
    K.route_slots(x, row_ptr, src.astype(np.int64), cols[d, src].astype(np.float32), out)
    np.testing.assert_allclose(out, r.T @ x, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- decode


@pytest.mark.parametrize("act", [Activation("none"), Activation("relu"), Activation("qrelu", 3, 2.0)])
@pytest.mark.parametrize("q_bits", [0, 4])
def test_decode_outputs(act, q_bits):
    rng = np.random.default_rng(7)
    n_out, n = 6, 9
    acc = rng.normal(0, 3, (n_out, n)).astype(np.float32)
    ref = rng.normal(0, 3, (2, n)).astype(np.float32)
    ref_index = np.array([0, 0, 1, 1, -1, -1])
    scale = rng.uniform(0.5, 2, n_out).astype(np.float32)
    coeff = rng.uniform(0.5, 2, n_out).astype(np.float32)
    bias = rng.normal(0, 1, n_out).astype(np.float32)
    expect = acc.copy()
    has = ref_index >= 0
    expect[has] -= coeff[has, None] * ref[ref_index[has]]
    expect = scale[:, None] * expect + bias[:, None]
    expect = act.apply(expect.astype(np.float32))
    q_max = 2.5
    if q_bits:
        expect = quantize_unsigned(expect, q_bits, q_max)
    kind = {"none": K.ACT_NONE, "relu": K.ACT_RELU, "qrelu": K.ACT_QRELU}[act.kind]
    a_step = act.ceiling / act.levels if act.kind == "qrelu" else 1.0
    q_step = q_max / (2**q_bits - 1) if q_bits else 1.0
    K.decode_outputs(
        acc, ref, ref_index, scale, coeff, bias, kind, act.ceiling, 1 / a_step, a_step,
        2**q_bits - 1 if q_bits else 0, 0.0, q_max, 1 / q_step, q_step,
    )
    np.testing.assert_allclose(acc, expect, rtol=1e-5, atol=1e-5)
